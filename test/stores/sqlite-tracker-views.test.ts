// What the tracking view reads that the tracker contract (tracker-contract.ts) does not cover: a
// SQLite table made before the state and result columns existed, and MemoryTracker's app instances.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { describe, test } from 'node:test';
import { action, ApplicationBuilder } from '../../src/app/index.ts';
import { MemoryTracker } from '../../src/app/tracking.ts';
import { SQLiteTracker } from '../../src/stores/index.ts';

const pause = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 5));

async function counter(appId: string, tracker: MemoryTracker, steps: number): Promise<void> {
  const add = action({ reads: ['n'], writes: ['n'] }, (state) => {
    const n = (state.get('n') as number) + 1;
    return [{ n }, state.update({ n })];
  });
  const app = await new ApplicationBuilder().withActions({ add }).withTransitions(['add', 'add']).withState({ n: 0 }).withEntrypoint('add').withIdentifiers(appId).withTracker(tracker).build();
  for (let i = 0; i < steps; i++) await app.step();
}

describe('tracker views', () => {
  test('SQLite: a table from before state/result were kept gets the columns; old rows read as not recorded', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-tracker-old-'));
    const path = join(dir, 'old.db');
    const db = new DatabaseSync(path);
    db.exec(`CREATE TABLE "sluice_step_runs" (run_id TEXT PRIMARY KEY, app_id TEXT NOT NULL, partition_key TEXT NOT NULL, sequence_id INTEGER NOT NULL,
      action TEXT NOT NULL, status TEXT NOT NULL, started_at REAL NOT NULL, ended_at REAL NOT NULL, streamed INTEGER NOT NULL,
      time_to_first_item_ms REAL, item_count INTEGER NOT NULL, stream_duration_ms REAL, error TEXT)`);
    db.prepare(`INSERT INTO "sluice_step_runs" VALUES ('r1', 'old', '', 0, 'a', 'completed', 1, 2, 0, NULL, 0, NULL, NULL)`).run();
    db.close();
    const tracker = new SQLiteTracker({ path });
    try {
      const [row] = tracker.listRuns('old');
      assert.equal(row?.runId, 'r1');
      assert.equal(row?.state, undefined);
      assert.equal(row?.result, undefined);
    } finally {
      tracker.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('MemoryTracker lists app instances too', async () => {
    const tracker = new MemoryTracker();
    await counter('m1', tracker, 1);
    await pause();
    await counter('m2', tracker, 2);
    assert.deepEqual(tracker.listApps().map((a) => [a.appId, a.steps]), [
      ['m2', 2],
      ['m1', 1],
    ]);
    assert.deepEqual(tracker.records.at(-1)?.state, { n: 2 });
  });
});
