import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { action, ApplicationBuilder, MemoryPersister, type PersistedStep } from '../../src/app/index.ts';
import { persisterContract } from '../stores/contract.ts';
import { HookRecorder, spell } from './helpers.ts';

describe('MemoryPersister', () => {
  persisterContract(async () => {
    const persister = new MemoryPersister();
    return { persister, reopen: () => persister, cleanup: async () => {} };
  });
});

describe('commit semantics with a persister', () => {
  test('a save that fails fails the step: the state is not advanced and its sequence id is not used', async () => {
    const persister = new MemoryPersister();
    let down = true;
    const flakyStore = {
      save: (step: PersistedStep) => {
        if (down) throw new Error('disk full');
        persister.save(step);
      },
      load: persister.load.bind(persister),
      list: persister.list.bind(persister),
      listAppIds: persister.listAppIds.bind(persister),
    };
    const hooks = new HookRecorder();
    const inc = action({ reads: ['n'], writes: ['n'] }, (s) => [null, s.update({ n: (s.get('n') as number) + 1 })]);
    const app = await new ApplicationBuilder()
      .withActions({ inc })
      .withTransitions(['inc', 'inc'])
      .withState({ n: 0 })
      .withEntrypoint('inc')
      .withIdentifiers('flaky-store')
      .withPersister(flakyStore)
      .withHooks(hooks)
      .build();
    await assert.rejects(app.step(), /disk full/);
    assert.equal(app.state.get('n'), 0);
    assert.equal(app.sequenceId, null);
    assert.equal(hooks.events('postRunStep')[0]?.status, 'failed');
    assert.equal((app.runs[0]?.events().at(-2) as { type: string }).type, 'error', 'no result event was sent for an uncommitted step');
    down = false;
    await app.step();
    assert.deepEqual(persister.list('flaky-store').map((r) => [r.sequenceId, r.state.n]), [[0, 1]]);
  });

  test('without an app id, initializeFromPersister resumes the newest app of the partition and adopts its id', async () => {
    const persister = new MemoryPersister();
    const build = (appId?: string) =>
      new ApplicationBuilder()
        .withActions({ talk: spell('sync') })
        .withTransitions(['talk', 'talk'])
        .withState({ prompt: 'yo', response: '' })
        .withEntrypoint('talk')
        .withIdentifiers(appId, 'user-9')
        .withPersister(persister)
        .initializeFromPersister(persister)
        .build();
    const first = await build('conversation-a');
    await first.step();
    const resumed = await build();
    assert.equal(resumed.appId, 'conversation-a');
    assert.equal(resumed.sequenceId, 0);
    assert.equal(resumed.state.get('response'), 'yo');
  });
});
