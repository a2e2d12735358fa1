/**
 * The persister contract, run against every implementation: what is saved per step, lookups,
 * the unique key that makes a double commit impossible, transactions, and an application resuming
 * from it after a "restart" (a new persister on the same storage).
 */

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';
import { setImmediate as tick } from 'node:timers/promises';
import { action, ApplicationBuilder, expr, type PersistedStep, type Persister, streamingAction } from '../../src/app/index.ts';

/** A fresh, isolated storage: `persister` and `reopen()` (another connection to the same data). */
export interface Fixture {
  persister: Persister;
  reopen(): Persister | Promise<Persister>;
  cleanup(): Promise<void>;
}

function step(overrides: Partial<PersistedStep> = {}): PersistedStep {
  return {
    appId: 'app-1',
    partitionKey: 'user-1',
    sequenceId: 0,
    action: 'respond',
    status: 'completed',
    state: { chat: [{ role: 'user', content: 'héllo ✓' }], n: 1, nested: { deep: [1, null, true] } },
    result: { text: 'hi' },
    error: null,
    startedAt: 1_700_000_000_000.25,
    endedAt: 1_700_000_000_123.5,
    ...overrides,
  };
}

const counter = action({ reads: ['count'], writes: ['count'] }, (state) => {
  const count = (state.get('count') as number) + 1;
  return [{ count }, state.update({ count })];
});

const flakyCalls = { n: 0 };
const flaky = action({ reads: ['count'], writes: ['count'] }, (state) => {
  flakyCalls.n++;
  if (flakyCalls.n === 1) throw new Error('transient');
  return [null, state.update({ count: (state.get('count') as number) + 100 })];
});

const talk = streamingAction({ reads: ['count'], writes: ['said'] }, async function* (state) {
  const words = ['one', 'two', 'three', 'four'];
  for (const w of words) {
    await tick();
    yield [w, null];
  }
  yield [words.join(' '), state.update({ said: words.join(' ') })];
});

function appOn(persister: Persister, appId: string, options: Parameters<ApplicationBuilder['initializeFromPersister']>[1] = {}) {
  return new ApplicationBuilder()
    .withActions({ counter, flaky, talk })
    .withTransitions(['counter', 'counter', expr((s) => (s.get('count') as number) < 3)], ['counter', 'talk'], ['talk', 'flaky'], ['flaky', 'counter'])
    .withState({ count: 0, said: '' })
    .withEntrypoint('counter')
    .withIdentifiers(appId, 'tenant-a')
    .withPersister(persister)
    .initializeFromPersister(persister, options)
    .withOptions({ graceMs: 0 })
    .build();
}

/** Registers the contract tests; `make` gives each test its own storage. */
export function persisterContract(make: () => Promise<Fixture>): void {
  const withFixture = (name: string, fn: (f: Fixture) => Promise<void>) =>
    test(name, async () => {
      const fixture = await make();
      try {
        await fixture.persister.initialize?.();
        await fn(fixture);
      } finally {
        await fixture.cleanup();
      }
    });

  withFixture('saves state (JSON), status, sequence id, action and timestamps per step; loads them back', async ({ persister }) => {
    const saved = [step(), step({ sequenceId: 1, status: 'interrupted', result: { text: 'partial', itemCount: 2 }, error: 'The consumer stopped reading the stream' })];
    for (const s of saved) await persister.save(s);
    await persister.save(step({ sequenceId: 2, status: 'failed', result: null, error: 'boom', state: { n: 1 } }));
    const listed = await persister.list('app-1', 'user-1');
    assert.deepEqual(listed.map((r) => [r.sequenceId, r.status]), [[0, 'completed'], [1, 'interrupted'], [2, 'failed']]);
    const first = listed[0] as PersistedStep;
    assert.deepEqual(first.state, saved[0]?.state);
    assert.deepEqual(first.result, { text: 'hi' });
    assert.equal(first.action, 'respond');
    assert.ok(Math.abs(first.startedAt - 1_700_000_000_000.25) < 0.01);
    assert.ok(Math.abs(first.endedAt - 1_700_000_000_123.5) < 0.01);
    assert.equal(listed[2]?.error, 'boom');
    assert.equal(listed[2]?.result, null);
  });

  withFixture('loads the newest step, a given sequence id, or the newest app of a partition; partitions are separate', async ({ persister }) => {
    await persister.save(step({ sequenceId: 0, endedAt: 1 }));
    await persister.save(step({ sequenceId: 1, endedAt: 2 }));
    await persister.save(step({ appId: 'app-2', sequenceId: 0, endedAt: 3 }));
    await persister.save(step({ appId: 'app-1', partitionKey: 'user-2', sequenceId: 7, endedAt: 4 }));
    assert.equal((await persister.load({ appId: 'app-1', partitionKey: 'user-1' }))?.sequenceId, 1);
    assert.equal((await persister.load({ appId: 'app-1', partitionKey: 'user-1', sequenceId: 0 }))?.sequenceId, 0);
    assert.equal((await persister.load({ partitionKey: 'user-1' }))?.appId, 'app-2');
    assert.equal((await persister.load({ appId: 'app-1', partitionKey: 'user-2' }))?.sequenceId, 7);
    assert.equal(await persister.load({ appId: 'nope', partitionKey: 'user-1' }), null);
    assert.equal(await persister.load({ appId: 'app-1', partitionKey: 'user-1', sequenceId: 5 }), null);
    assert.deepEqual(await persister.listAppIds('user-1'), ['app-2', 'app-1']);
  });

  withFixture('unique (app id, partition key, sequence id): a second commit of a step is rejected with already_exists', async ({ persister }) => {
    await persister.save(step());
    await assert.rejects(Promise.resolve().then(() => persister.save(step({ status: 'failed' }))), (e: Error & { code?: string; details?: Record<string, unknown> }) => {
      assert.equal(e.code, 'already_exists');
      assert.equal(e.details?.reason, 'duplicate_step');
      return true;
    });
    await persister.save(step({ partitionKey: 'other' }));
    await persister.save(step({ appId: 'app-2' }));
    assert.equal((await persister.list('app-1', 'user-1')).length, 1);
    assert.equal((await persister.list('app-1', 'user-1'))[0]?.status, 'completed', 'the first commit stands');
  });

  withFixture('two connections racing to commit the same step: exactly one wins', async ({ persister, reopen }) => {
    const other = await reopen();
    const outcomes = await Promise.allSettled([
      Promise.resolve().then(() => persister.save(step({ result: 'mine' }))),
      Promise.resolve().then(() => other.save(step({ result: 'theirs' }))),
    ]);
    assert.equal(outcomes.filter((o) => o.status === 'fulfilled').length, 1);
    const rejected = outcomes.find((o) => o.status === 'rejected') as PromiseRejectedResult;
    assert.equal((rejected.reason as { code?: string }).code, 'already_exists');
    assert.equal((await persister.list('app-1', 'user-1')).length, 1);
    await other.close?.();
  });

  withFixture('a failed save leaves nothing behind and no transaction open', async ({ persister }) => {
    await assert.rejects(Promise.resolve().then(() => persister.save(step({ status: 'bogus' as never }))));
    assert.equal(await persister.load({ appId: 'app-1', partitionKey: 'user-1' }), null);
    await persister.save(step());
    assert.equal((await persister.list('app-1', 'user-1')).length, 1);
  });

  withFixture('an app resumes after a restart: after the last committed step; a failed step re-runs; an interrupted one does not', async ({ persister, reopen }) => {
    flakyCalls.n = 0;
    const appId = `resume-${randomUUID()}`;
    const first = await appOn(persister, appId);
    await first.run({ haltAfter: ['counter'] });
    assert.equal(first.state.get('count'), 1);

    // Restart: a new connection, a new app object.
    const storage2 = await reopen();
    const second = await appOn(storage2, appId);
    assert.equal(second.sequenceId, 0);
    assert.equal(second.nextAction, 'counter');
    assert.equal(second.state.get('count'), 1);
    const [, container] = await second.streamResult({ haltAfter: ['talk'] });
    for await (const word of container) if (word === 'two') break;
    assert.equal(container.status, 'interrupted');

    const third = await appOn(await reopen(), appId);
    assert.equal(third.nextAction, 'flaky', 'an interrupted step is committed: resume goes on after it');
    assert.equal(third.sequenceId, 3);
    await assert.rejects(third.step(), /transient/);

    const fourth = await appOn(await reopen(), appId);
    assert.equal(fourth.nextAction, 'flaky', 'a failed step runs again');
    assert.equal(fourth.sequenceId, 4);
    const out = await fourth.step();
    assert.equal(out?.[2].get('count'), 103);

    const rows = await persister.list(appId, 'tenant-a');
    assert.deepEqual(rows.map((r) => [r.sequenceId, r.action, r.status]), [
      [0, 'counter', 'completed'],
      [1, 'counter', 'completed'],
      [2, 'counter', 'completed'],
      [3, 'talk', 'interrupted'],
      [4, 'flaky', 'failed'],
      [5, 'flaky', 'completed'],
    ]);
    assert.deepEqual(rows[3]?.result, { text: 'onetwo', itemCount: 2 }, 'the partial output is saved, not lost');
    assert.equal(rows[4]?.state.count, 3, 'a failed row holds the state before the step');
    await storage2.close?.();
  });

  withFixture('resume by sequence id (the newest only), fork from an older one, or keep the state and restart at the entrypoint', async ({ persister }) => {
    const appId = `fork-${randomUUID()}`;
    const app = await appOn(persister, appId);
    await app.run({ haltAfter: ['counter'] });
    await app.run({ haltAfter: ['counter'] });
    await app.run({ haltAfter: ['counter'] });
    assert.equal(app.sequenceId, 2);

    const exact = await appOn(persister, appId, { sequenceId: 2 });
    assert.equal(exact.state.get('count'), 3);
    await assert.rejects(appOn(persister, appId, { sequenceId: 0 }), /use forkFrom/);
    await assert.rejects(appOn(persister, appId, { sequenceId: 9 }), /has no step 9/);

    const forkId = `${appId}-fork`;
    const fork = await appOn(persister, forkId, { forkFrom: { appId, sequenceId: 0 } });
    assert.equal(fork.appId, forkId);
    assert.equal(fork.state.get('count'), 1);
    assert.equal(fork.sequenceId, 0);
    await fork.step();
    assert.deepEqual((await persister.list(forkId, 'tenant-a')).map((r) => [r.sequenceId, r.state.count]), [[1, 2]]);
    assert.equal((await persister.list(appId, 'tenant-a')).length, 3, 'the source is untouched');
    await assert.rejects(appOn(persister, forkId, { forkFrom: { appId } }), /already has saved steps/);

    const fresh = await appOn(persister, appId, { resumeAtNextAction: false });
    assert.equal(fresh.nextAction, 'counter');
    assert.equal(fresh.position, null);
    assert.equal(fresh.state.get('count'), 3);

    const unknown = await appOn(persister, `new-${randomUUID()}`, { defaultState: { count: 40, said: '' } });
    assert.equal(unknown.state.get('count'), 40);
    assert.equal(unknown.sequenceId, null);
  });
}
