/**
 * The tracker contract, run against every SQL tracker (SQLite, PostgreSQL): what is recorded per
 * step of a real application, listRuns (newest first, partition filter, limits), listApps (most
 * recently active first, steps, lastStatus), values given back as written, a run recorded twice,
 * and that a tracker which cannot record never fails a step.
 */

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { action, ApplicationBuilder, type PostRunStepEvent, State, type StepTracker, streamingAction } from '../../src/app/index.ts';
import type { Run } from '../../src/runtime/run.ts';
import { trackedLimit } from '../../src/stores/step-rows.ts';
import { capturingLogger } from '../models/helpers.ts';

/** A tracker under test: it lists apps and can be closed. */
export type ContractTracker = StepTracker & Required<Pick<StepTracker, 'listApps'>> & { close(): void | Promise<void> };

/** A fresh, isolated storage: `tracker`, and `reopen()` (another connection to the same data). */
export interface TrackerFixture {
  tracker: ContractTracker;
  reopen(): ContractTracker;
  cleanup(): Promise<void>;
}

/** A `postRunStep` event as an application sends it (only what trackers read is real). */
function event(overrides: Partial<Omit<PostRunStepEvent, 'run'>> & { runId?: string } = {}): PostRunStepEvent {
  const { runId = randomUUID(), ...fields } = overrides;
  return {
    appId: 'app-1',
    partitionKey: 'user-1',
    action: 'respond',
    sequenceId: 0,
    run: { id: runId } as Run,
    status: 'completed',
    state: new State({ n: 1 }),
    result: { text: 'hi' },
    inputs: {},
    startedAt: 1_700_000_000_000.25,
    endedAt: 1_700_000_000_123.5,
    ...fields,
  };
}

const add = action({ reads: ['n'], writes: ['n'] }, (state) => {
  const n = (state.get('n') as number) + 1;
  return [{ n }, state.update({ n })];
});

function counterApp(appId: string, tracker: StepTracker, options: { partitionKey?: string; logger?: ReturnType<typeof capturingLogger> } = {}) {
  return new ApplicationBuilder()
    .withActions({ add })
    .withTransitions(['add', 'add'])
    .withState({ n: 0 })
    .withEntrypoint('add')
    .withIdentifiers(appId, options.partitionKey)
    .withTracker(tracker)
    .withOptions(options.logger === undefined ? {} : { logger: options.logger })
    .build();
}

async function counter(appId: string, tracker: StepTracker, steps: number, partitionKey?: string): Promise<void> {
  const app = await counterApp(appId, tracker, partitionKey === undefined ? {} : { partitionKey });
  for (let i = 0; i < steps; i++) await app.step();
}

/** Registers the contract tests; `make` gives each test its own storage. */
export function trackerContract(make: () => Promise<TrackerFixture>): void {
  const withFixture = (name: string, fn: (f: TrackerFixture) => Promise<void>) =>
    test(name, async () => {
      const fixture = await make();
      try {
        await fn(fixture);
      } finally {
        await fixture.cleanup();
      }
    });

  withFixture('per step and per stream: time to first item, item count, duration, outcome; listRuns(appId) newest first', async ({ tracker, reopen }) => {
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
    const reader = reopen();
    const runs = await reader.listRuns('tracked-app');
    await reader.close();
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
    assert.equal(plainRun?.streamDurationMs, null);
    assert.ok(done !== undefined && done.streamed);
    assert.ok((done.timeToFirstItemMs as number) >= 14, `time to first item includes the slow start (${done.timeToFirstItemMs})`);
    assert.ok(done.durationMs >= (done.timeToFirstItemMs as number));
    assert.ok((done.streamDurationMs as number) >= (done.timeToFirstItemMs as number));
    assert.equal(done.runId, app.runs[0]?.id);
    assert.equal(done.partitionKey, 'p1');
    assert.equal((await tracker.listRuns('tracked-app', { limit: 2 })).length, 2);
    assert.equal((await tracker.listRuns('tracked-app', { partitionKey: 'p1' })).length, 5);
    assert.equal((await tracker.listRuns('tracked-app', { partitionKey: 'other' })).length, 0);
    assert.deepEqual(await tracker.listRuns('unknown-app'), []);
  });

  withFixture('state and result per step; app instances most recently active first', async ({ tracker }) => {
    await counter('first', tracker, 2);
    await sleep(5); // distinct end times: the order is by the newest step's end
    await counter('second', tracker, 3);
    const runs = await tracker.listRuns('second');
    assert.deepEqual(runs.map((r) => [r.sequenceId, r.state, r.result]), [
      [2, { n: 3 }, { n: 3 }],
      [1, { n: 2 }, { n: 2 }],
      [0, { n: 1 }, { n: 1 }],
    ]);
    const apps = await tracker.listApps();
    assert.deepEqual(apps.map((a) => [a.appId, a.steps, a.lastStatus]), [
      ['second', 3, 'completed'],
      ['first', 2, 'completed'],
    ]);
    assert.equal(apps[0]?.lastEndedAt, runs[0]?.endedAt);
    assert.deepEqual((await tracker.listApps({ limit: 1 })).map((a) => a.appId), ['second']);
  });

  withFixture("an app instance is an app id and a partition key; lastStatus is its newest step's, even with a lower sequence id", async ({ tracker }) => {
    await tracker.postRunStep?.(event({ sequenceId: 0, endedAt: 1_000 }));
    await tracker.postRunStep?.(event({ sequenceId: 1, status: 'failed', result: undefined, error: new Error('boom'), endedAt: 3_000 }));
    await tracker.postRunStep?.(event({ partitionKey: 'user-2', sequenceId: 0, endedAt: 2_000 }));
    // A restarted app without a persister counts from 0 again; its newest step is still the last one.
    await tracker.postRunStep?.(event({ appId: 'app-2', sequenceId: 5, endedAt: 4_000 }));
    await tracker.postRunStep?.(event({ appId: 'app-2', sequenceId: 0, status: 'interrupted', endedAt: 5_000 }));
    const apps = await tracker.listApps();
    assert.deepEqual(apps.map((a) => [a.appId, a.partitionKey, a.steps, a.lastEndedAt, a.lastStatus]), [
      ['app-2', 'user-1', 2, 5_000, 'interrupted'],
      ['app-1', 'user-1', 2, 3_000, 'failed'],
      ['app-1', 'user-2', 1, 2_000, 'completed'],
    ]);
    const runs = await tracker.listRuns('app-1');
    assert.deepEqual(runs.map((r) => [r.partitionKey, r.sequenceId, r.status, r.error]), [
      ['user-1', 1, 'failed', 'boom'],
      ['user-2', 0, 'completed', null], // same sequence id: the one that ended last first
      ['user-1', 0, 'completed', null],
    ]);
    assert.deepEqual((await tracker.listRuns('app-2')).map((r) => r.sequenceId), [5, 0], 'by sequence id, newest first');
  });

  withFixture('values come back as written: JSON null is not "not recorded", key order and text survive, times to the microsecond', async ({ tracker }) => {
    await tracker.postRunStep?.(
      event({ runId: 'r-1', state: new State({ z: 1, a: [1, null, true], text: 'héllo ✓ "quoted" \\ \u0000' }), result: null, startedAt: 1_700_000_000_000.25 }),
    );
    await tracker.postRunStep?.(event({ runId: 'r-2', sequenceId: 1, result: undefined, status: 'failed', error: 'nope' }));
    await tracker.postRunStep?.(event({ runId: 'r-3', sequenceId: 2, result: { big: 1n } }));
    const [notJson, failed, first] = await tracker.listRuns('app-1');
    assert.equal(first?.runId, 'r-1');
    assert.deepEqual(first?.state, { z: 1, a: [1, null, true], text: 'héllo ✓ "quoted" \\ \u0000' });
    assert.deepEqual(Object.keys(first?.state as object), ['z', 'a', 'text']);
    assert.equal(first?.result, null);
    assert.ok(Math.abs((first?.startedAt as number) - 1_700_000_000_000.25) < 0.001);
    assert.ok(Math.abs((first?.endedAt as number) - 1_700_000_000_123.5) < 0.001);
    assert.ok(Math.abs((first?.durationMs as number) - 123.25) < 0.002);
    assert.equal(failed?.result, undefined, 'a failed step has no result');
    assert.equal(failed?.error, 'nope');
    assert.equal(notJson?.result, undefined, 'a result that is not JSON is not recorded');
  });

  withFixture('listings are bounded: 100 by default, the given limit, at most 10,000', async ({ tracker }) => {
    for (let i = 0; i < 105; i++) await tracker.postRunStep?.(event({ sequenceId: i, endedAt: 1_000 + i }));
    for (let i = 0; i < 100; i++) await tracker.postRunStep?.(event({ appId: `other-${i}`, endedAt: 500 + i }));
    const runs = await tracker.listRuns('app-1');
    assert.equal(runs.length, 100);
    assert.equal(runs[0]?.sequenceId, 104);
    assert.equal(runs.at(-1)?.sequenceId, 5);
    assert.equal((await tracker.listRuns('app-1', { limit: 3 })).length, 3);
    assert.equal((await tracker.listRuns('app-1', { limit: 1_000_000 })).length, 105);
    const apps = await tracker.listApps();
    assert.equal(apps.length, 100);
    assert.equal(apps[0]?.appId, 'app-1');
    assert.equal(apps.at(-1)?.appId, 'other-1', 'the least recently active is cut');
    assert.equal((await tracker.listApps({ limit: 1_000_000 })).length, 101);
    // Both trackers take their limit from trackedLimit: a huge one is capped, not refused.
    assert.equal(trackedLimit(1_000_000), 10_000);
    assert.equal(trackedLimit(0), 1);
  });

  withFixture('a run recorded twice: the second record is refused (the step would log it), the first stands', async ({ tracker }) => {
    const first = event({ runId: 'same-run' });
    await tracker.postRunStep?.(first);
    await assert.rejects(async () => tracker.postRunStep?.({ ...first, status: 'failed' }));
    // The key is the run: another run of the same step (an app restarted without a persister) is recorded.
    await tracker.postRunStep?.(event({ runId: 'other-run' }));
    const runs = await tracker.listRuns('app-1');
    assert.deepEqual(runs.map((r) => [r.runId, r.status]).sort(), [
      ['other-run', 'completed'],
      ['same-run', 'completed'],
    ]);
  });

  withFixture('a tracker that cannot record never fails a step: the step commits, the failure is logged', async ({ tracker, reopen }) => {
    const broken = reopen();
    await broken.close();
    const logger = capturingLogger();
    const app = await counterApp('untracked', broken, { logger });
    const out = await app.step();
    assert.equal(out?.[2].get('n'), 1);
    assert.equal(app.sequenceId, 0);
    assert.equal((await app.step())?.[2].get('n'), 2, 'the next step runs too');
    const failures = logger.records.filter((r) => r.level === 'error' && r.msg === 'The postRunStep hook failed');
    assert.equal(failures.length, 2);
    assert.ok(failures[0]?.obj.err instanceof Error);
    assert.deepEqual(await tracker.listRuns('untracked'), []);
  });
}
