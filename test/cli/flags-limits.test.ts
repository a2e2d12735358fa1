/** The limit flags: parsed into each layer's options, bad values refused naming the flag. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { limitsFlags, limitsFromFlags, parseSize } from '../../src/cli/flags/limits.ts';
import { parseCommandLine } from '../../src/cli/flags/parse.ts';

describe('limit flags', () => {
  it('every flag has a SLUICE_* variable and is taken by serve and dev', () => {
    for (const flag of limitsFlags) {
      assert.match(flag.env ?? '', /^SLUICE_[A-Z_]+$/, flag.name);
      assert.deepEqual([...flag.commands], ['serve', 'dev']);
    }
  });

  it('flags become executor, HTTP and voice socket options', () => {
    const { values } = parseCommandLine(
      ['serve', '--max-runs', '50', '--max-run-duration', '1.5', '--retain-ended-bytes', '8MiB', '--stall-timeout', '5', '--ws-message-rate', '10', '--max-depth', '32', '--headers-timeout', '2'],
      limitsFlags,
      {},
    );
    const limits = limitsFromFlags(values);
    assert.equal(limits.executor.maxConcurrentRuns, 50);
    assert.equal(limits.executor.maxRunDurationMs, 1_500);
    assert.equal(limits.executor.retainEndedRunsBytes, 8 * 1024 * 1024);
    assert.equal(limits.http.maxDepth, 32);
    assert.equal(limits.http.sse?.stallTimeoutMs, 5_000);
    assert.equal(limits.http.ws?.stallTimeoutMs, 5_000);
    assert.equal(limits.http.limits?.headersTimeoutMs, 2_000);
    assert.deepEqual(limits.voiceWs, { messageRate: 10, messageBurst: 20 });
    assert.equal(limits.executor.maxConcurrentRunsPerOwner, undefined, 'absent: the layer default applies');
  });

  it('the environment fills absent flags', () => {
    const { values } = parseCommandLine(['serve'], limitsFlags, { SLUICE_MAX_CONNECTIONS: '300' });
    assert.equal(limitsFromFlags(values).http.limits?.maxConnections, 300);
  });

  it('bad values are refused with a message naming the flag', () => {
    assert.throws(() => limitsFromFlags({ 'max-runs': '0' }), /--max-runs must be a positive integer \(got '0'\)/);
    assert.throws(() => limitsFromFlags({ 'max-run-duration': 'soon' }), /--max-run-duration must be a number of seconds/);
    assert.throws(() => limitsFromFlags({ 'retain-ended-bytes': '12XB' }), /--retain-ended-bytes must be a size in bytes/);
    assert.equal(parseSize('x', '1g'), 1024 ** 3);
    assert.equal(parseSize('x', '1048576'), 1024 * 1024);
  });
});
