import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, test } from 'node:test';
import { action, ApplicationBuilder, streamingAction } from '../../src/app/index.ts';
import { SQLiteTracker } from '../../src/stores/index.ts';

describe('SQLiteTracker (real file)', () => {
  test('per step and per stream: time to first item, item count, duration, outcome; listRuns(appId) newest first', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-tracker-'));
    const tracker = new SQLiteTracker({ dataDir: dir });
    try {
      const slowStart = streamingAction({ reads: [], writes: ['text'] }, async function* (state, inputs) {
        await sleep(15);
        let text = '';
        for (const word of ['a', 'b', 'c']) {
          text += word;
          yield [word, null];
        }
        if (inputs.fail === true) throw new Error('model down');
        yield [text, state.update({ text })];
      });
      const plain = action({ reads: [], writes: ['n'] }, (state) => [1, state.update({ n: 1 })]);
      const app = await new ApplicationBuilder()
        .withActions({ talk: slowStart, plain })
        .withTransitions(['talk', 'plain'], ['plain', 'talk'])
        .withState({})
        .withEntrypoint('talk')
        .withIdentifiers('tracked-app', 'p1')
        .withTracker(tracker)
        .withOptions({ graceMs: 0 })
        .build();

      await (await app.streamResult({ haltAfter: ['talk'] }))[1].get();
      await app.step();
      const [, interrupted] = await app.streamResult({ haltAfter: ['talk'] });
      for await (const _ of interrupted) break;
      await app.step();
      await assert.rejects(app.step({ inputs: { fail: true } }), /model down/);

      // Read back through a second connection, as the HTTP route would.
      const reader = new SQLiteTracker({ dataDir: dir });
      const runs = reader.listRuns('tracked-app');
      reader.close();
      assert.deepEqual(runs.map((r) => [r.sequenceId, r.action, r.status, r.itemCount]), [
        [4, 'talk', 'failed', 3],
        [3, 'plain', 'completed', 0],
        [2, 'talk', 'interrupted', 1],
        [1, 'plain', 'completed', 0],
        [0, 'talk', 'completed', 3],
      ]);
      const [failed, , cut, plainRun, done] = runs;
      assert.equal(failed?.error, 'model down');
      assert.equal(cut?.error, 'The consumer stopped reading the stream');
      assert.equal(plainRun?.streamed, false);
      assert.equal(plainRun?.timeToFirstItemMs, null);
      assert.ok(done !== undefined && done.streamed);
      assert.ok((done.timeToFirstItemMs as number) >= 14, `time to first item includes the slow start (${done.timeToFirstItemMs})`);
      assert.ok(done.durationMs >= (done.timeToFirstItemMs as number));
      assert.equal(done.runId, app.runs[0]?.id);
      assert.equal(tracker.listRuns('tracked-app', { limit: 2 }).length, 2);
      assert.equal(tracker.listRuns('tracked-app', { partitionKey: 'other' }).length, 0);
      assert.deepEqual(tracker.listRuns('unknown-app'), []);
    } finally {
      tracker.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
