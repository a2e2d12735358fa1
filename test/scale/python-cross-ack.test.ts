// Rasa's barge-in flow across instances with a stock Python grpcio client: WebhookStream on A,
// AckStreamChunks on B. Stubs are generated from proto/ as in test/transports/grpc/python-client.test.ts
// (python3 with grpcio + protobuf, and grpc_tools or protoc + grpc_python_plugin). When CI=true a
// missing toolchain or Redis fails the test; elsewhere it is skipped with the reason.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { promisify } from 'node:util';
import { REDIS_URL, dropPrefix, redisSkip, testPrefix } from '../stores/redis-helpers.ts';
import { startInstance, type Instance } from './cluster.ts';

const exec = promisify(execFile);
const PROTO_DIR = new URL('../../proto/', import.meta.url).pathname;
const SCRIPT = new URL('./fixtures/python_cross_ack.py', import.meta.url).pathname;

/** A python with grpc and protobuf, and a directory of generated stubs; or the reason there is none. */
async function pythonWithStubs(): Promise<{ python: string; stubs: string } | { missing: string }> {
  let python: string | undefined;
  for (const candidate of [process.env.SLUICE_PYTHON, '/usr/bin/python3', 'python3'].filter((c): c is string => !!c)) {
    try {
      await exec(candidate, ['-c', 'import grpc, google.protobuf']);
      python = candidate;
      break;
    } catch {
      // next
    }
  }
  if (python === undefined) return { missing: 'no python3 with grpcio and protobuf' };
  const stubs = await mkdtemp(join(tmpdir(), 'sluice-py-cross-'));
  const attempts: [string, string[]][] = [[python, ['-m', 'grpc_tools.protoc', `-I${PROTO_DIR}`, `--python_out=${stubs}`, `--grpc_python_out=${stubs}`, 'action_webhook.proto']]];
  try {
    const { stdout } = await exec('sh', ['-c', 'command -v grpc_python_plugin']);
    attempts.push(['protoc', [`-I${PROTO_DIR}`, `--python_out=${stubs}`, `--grpc_python_out=${stubs}`, `--plugin=protoc-gen-grpc_python=${stdout.trim()}`, 'action_webhook.proto']]);
  } catch {
    // only grpc_tools then
  }
  for (const [command, args] of attempts) {
    try {
      await exec(command, args, { cwd: PROTO_DIR });
      await exec(python, ['-c', `import sys; sys.path.insert(0, ${JSON.stringify(stubs)}); import action_webhook_pb2_grpc`]);
      return { python, stubs };
    } catch {
      // next generator
    }
  }
  await rm(stubs, { recursive: true, force: true });
  return { missing: 'cannot generate Python stubs (grpc_tools or protoc + grpc_python_plugin)' };
}

const prefix = testPrefix();
const instances: Instance[] = [];
let stubsDir = '';

after(async () => {
  await Promise.allSettled(instances.map((i) => i.stop()));
  await dropPrefix(prefix);
  if (stubsDir !== '') await rm(stubsDir, { recursive: true, force: true });
});

test('stock grpcio client: WebhookStream on A, AckStreamChunks on B stops the stream', { timeout: 90_000 }, async (t) => {
  const skip = await redisSkip();
  if (skip !== undefined) return t.skip(skip);
  const found = await pythonWithStubs();
  if ('missing' in found) {
    if (process.env.CI === 'true') assert.fail(`Python gRPC interop is required in CI: ${found.missing}`);
    return t.skip(found.missing);
  }
  stubsDir = found.stubs;
  const [a, b] = await Promise.all([startInstance(REDIS_URL, prefix), startInstance(REDIS_URL, prefix)]);
  instances.push(a, b);
  const { stdout } = await exec(found.python, [SCRIPT, found.stubs, a.grpc, b.grpc], { timeout: 60_000 });
  const out = JSON.parse(stdout) as { events: { kind: string; body: Record<string, unknown> }[]; error: unknown; ack: string; seconds: number };
  assert.equal(out.error, null);
  assert.ok(typeof out.ack === 'string' && out.ack !== '', 'AckStreamChunks on B answered');
  const kinds = out.events.map((e) => e.kind);
  // Rasa's wire after a barge-in: the chunk that was delivered, then no chunk_end, then the result.
  assert.deepEqual(kinds, ['chunk_start', 'chunk', 'final_result']);
  assert.equal(out.events[1]!.body.text, 'delivered');
  assert.ok(!JSON.stringify(out.events).includes('never delivered'));
  assert.ok(out.seconds < 8, `stopped long before the 10 s the action would talk: ${out.seconds} s`);
});
