// Two real `sluice serve --apps` processes on loopback sharing one Redis (a random key prefix) and one
// PostgreSQL table: an app's step started on A is resumed on B; B refuses a second step while A runs
// one; after kill -9 of A mid-step, B's reader gets `producer lost`, the app's lock frees itself
// after the lease, and B re-runs the step from the last committed state.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { SluiceEvent } from '../../src/protocol/events.ts';
import { readSseEvents } from '../../src/client/sse.ts';
import { POSTGRES_URL, dropTables, postgresSkip, testTable } from '../stores/postgres-helpers.ts';
import { REDIS_URL, dropPrefix, redisSkip, testPrefix } from '../stores/redis-helpers.ts';
import { drain, startInstance, type Instance } from './cluster.ts';

const skip = (await redisSkip()) ?? (await postgresSkip());
const APPS = join(import.meta.dirname, 'fixtures', 'apps.ts');

async function postStep(http: string, appId: string, inputs: Record<string, unknown>): Promise<{ status: number; runId: string | null; sequenceId: string | null; events: AsyncGenerator<SluiceEvent> | null; body: any }> {
  const response = await fetch(`${http}/apps/${appId}/stream?detach=true`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
    body: JSON.stringify({ inputs }),
  });
  if (response.status !== 200 || response.body === null) return { status: response.status, runId: null, sequenceId: null, events: null, body: await response.json() };
  return {
    status: 200,
    runId: response.headers.get('x-sluice-run-id'),
    sequenceId: response.headers.get('x-sluice-sequence-id'),
    events: readSseEvents(response.body),
    body: null,
  };
}

async function readStep(http: string, appId: string, runId: string, after?: number): Promise<SluiceEvent[]> {
  const response = await fetch(`${http}/apps/${appId}/runs/${runId}/events${after === undefined ? '' : `?after=${after}`}`);
  assert.equal(response.status, 200, await (response.status === 200 ? '' : response.text()));
  return drain(readSseEvents(response.body!));
}

async function stateOf(http: string, appId: string): Promise<any> {
  return (await fetch(`${http}/apps/${appId}/state`)).json();
}

describe('two sluice serve --apps processes sharing Redis and PostgreSQL', { skip, timeout: 120_000 }, () => {
  const prefix = testPrefix();
  const table = testTable();
  const env = { SLUICE_TEST_APPS_TABLE: table, DATABASE_URL: POSTGRES_URL };
  let a: Instance;
  let b: Instance;
  before(async () => {
    [a, b] = await Promise.all([startInstance(REDIS_URL, prefix, env, ['--apps', APPS]), startInstance(REDIS_URL, prefix, env, ['--apps', APPS])]);
  });
  after(async () => {
    await Promise.allSettled([a?.stop(), b?.stop()]);
    await dropPrefix(prefix);
    await dropTables(table, `${table}_runs`);
  });

  test('a step started on A: B refuses a second one (409 naming it), resumes it gap-free, then steps on from its commit', async () => {
    const first = await postStep(a.http, 'chat', { words: 40, intervalMs: 10 });
    assert.equal(first.status, 200);
    const onA = drain(first.events!);
    const refused = await postStep(b.http, 'chat', {});
    assert.equal(refused.status, 409);
    assert.equal(refused.body.runId, first.runId);
    const onB = await readStep(b.http, 'chat', first.runId!);
    const resumed = await readStep(b.http, 'chat', first.runId!, 7);
    const all = await onA;
    assert.deepEqual(onB, all);
    assert.deepEqual(resumed, all.slice(7));
    assert.equal(all.at(-1)?.type, 'run-end');

    const second = await postStep(b.http, 'chat', { words: 2 });
    assert.equal(second.status, 200);
    assert.equal(second.sequenceId, '1');
    await drain(second.events!);
    const state = await stateOf(a.http, 'chat');
    assert.equal(state.sequenceId, 1);
    assert.equal(state.state.count, 2);
    assert.equal(state.lastStep.runId, second.runId);

    // Both instances track into one table: each lists both steps, and the app.
    for (const http of [a.http, b.http]) {
      const runs = (await (await fetch(`${http}/apps/chat/runs`)).json()) as { tracked: boolean; runs: { runId: string; sequenceId: number; status: string }[] };
      assert.deepEqual(runs.runs.map((r) => [r.sequenceId, r.runId, r.status]), [[1, second.runId, 'completed'], [0, first.runId, 'completed']]);
      const apps = (await (await fetch(`${http}/apps`)).json()) as { apps: { appId: string; steps: number }[] };
      assert.deepEqual(apps.apps.find((x) => x.appId === 'chat')?.steps, 2);
    }
  });

  test('kill -9 A mid-step: B’s reader gets producer lost; after the lease B re-runs the step from the last commit', async () => {
    const done = await postStep(a.http, 'crash', { words: 1 });
    await drain(done.events!);
    const step = await postStep(a.http, 'crash', { words: 100_000, intervalMs: 10 });
    assert.equal(step.status, 200);
    assert.equal(step.sequenceId, '1');
    const reading = readStep(b.http, 'crash', step.runId!);
    await new Promise((resolve) => setTimeout(resolve, 150));
    const killedAt = Date.now();
    await a.kill();
    const seen = await reading;
    const errors = seen.filter((e) => e.type === 'error') as { code: string; message: string }[];
    assert.equal(errors.length, 1);
    assert.equal(errors[0]!.code, 'unavailable');
    assert.match(errors[0]!.message, /producer lost/);
    assert.equal(seen.at(-1)?.type, 'run-end');

    // The dead instance's lock frees itself within its lease (3 s); until then B answers 409.
    let retry: Awaited<ReturnType<typeof postStep>>;
    for (;;) {
      retry = await postStep(b.http, 'crash', { words: 2 });
      if (retry.status !== 409) break;
      assert.ok(Date.now() - killedAt < 3_000 + 2_000, 'the lock expires within the lease');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.equal(retry.status, 200);
    assert.equal(retry.sequenceId, '1', 'the step the dead instance never committed is run again, from step 0');
    await drain(retry.events!);
    const state = await stateOf(b.http, 'crash');
    assert.equal(state.sequenceId, 1);
    assert.equal(state.state.count, 2);
  });
});
