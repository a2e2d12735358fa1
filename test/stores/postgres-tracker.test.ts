/**
 * Against the local PostgreSQL server (see postgres-helpers.ts; in CI an unreachable server fails,
 * locally it skips). Each test uses its own table and drops only that one.
 */

import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { action, ApplicationBuilder, type StepTracker } from '../../src/app/index.ts';
import { PostgresTracker, type PostgresTrackerOptions } from '../../src/stores/index.ts';
import { capturingLogger } from '../models/helpers.ts';
import { describePostgres, POSTGRES_URL as url, testTable } from './postgres-helpers.ts';
import { trackerContract } from './tracker-contract.ts';

const add = action({ reads: ['n'], writes: ['n'] }, (state) => {
  const n = (state.get('n') as number) + 1;
  return [{ n }, state.update({ n })];
});

function counterApp(appId: string, tracker: StepTracker, logger = capturingLogger(), partitionKey = 'tenant') {
  return new ApplicationBuilder()
    .withActions({ add })
    .withTransitions(['add', 'add'])
    .withState({ n: 0 })
    .withEntrypoint('add')
    .withIdentifiers(appId, partitionKey)
    .withTracker(tracker)
    .withOptions({ logger })
    .build();
}

/** Trackers on a table of their own; `done()` closes them and drops the table. */
function trackers(options: PostgresTrackerOptions = {}) {
  const table = testTable();
  const opened: PostgresTracker[] = [];
  const open = (more: PostgresTrackerOptions = {}) => {
    const t = new PostgresTracker({ connectionString: url, table, logger: capturingLogger(), ...options, ...more });
    opened.push(t);
    return t;
  };
  const done = async () => {
    for (const t of opened) await t.close();
    await dropTable(table);
  };
  return { table, open, done };
}

/** Drops a table with a client of its own (the trackers' pools may be ended). */
async function dropTable(table: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(`DROP TABLE IF EXISTS "${table}"`);
  } finally {
    await client.end();
  }
}

function hookFailures(logger: ReturnType<typeof capturingLogger>) {
  return logger.records.filter((r) => r.level === 'error' && r.msg === 'The postRunStep hook failed');
}

await describePostgres('PostgresTracker (real server)', () => {
  trackerContract(async () => {
    const table = testTable();
    const opened: PostgresTracker[] = [];
    const open = () => {
      const t = new PostgresTracker({ connectionString: url, table, logger: capturingLogger() });
      opened.push(t);
      return t;
    };
    return {
      tracker: open(),
      reopen: open,
      cleanup: async () => {
        for (const t of opened) await t.close();
        await dropTable(table);
      },
    };
  });

  test('two server instances (two pools) on one table see each other’s steps, apps and runs', async () => {
    const table = testTable();
    const a = new PostgresTracker({ connectionString: url, table, logger: capturingLogger() });
    const b = new PostgresTracker({ connectionString: url, table, logger: capturingLogger() });
    try {
      // Both create the table at once, as two instances starting together would.
      await Promise.all([a.initialize(), b.initialize()]);
      const onA = await counterApp('on-a', a);
      const onB = await counterApp('on-b', b);
      await onA.step();
      await onB.step();
      await onA.step();
      await sleep(5);
      await onB.step();
      for (const tracker of [a, b]) {
        assert.deepEqual((await tracker.listApps()).map((x) => [x.appId, x.partitionKey, x.steps, x.lastStatus]), [
          ['on-b', 'tenant', 2, 'completed'],
          ['on-a', 'tenant', 2, 'completed'],
        ]);
        assert.deepEqual((await tracker.listRuns('on-a', { partitionKey: 'tenant' })).map((r) => [r.sequenceId, r.state]), [
          [1, { n: 2 }],
          [0, { n: 1 }],
        ]);
      }
      assert.equal((await a.listRuns('on-b'))[0]?.runId, onB.runs.at(-1)?.id, 'the run id of the other instance’s step');
    } finally {
      await a.close();
      await b.close();
      await dropTable(table);
    }
  });

  test('the table: run_id is the key, times are timestamptz, streamed is boolean, state and result json', async () => {
    const { table, open, done } = trackers();
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      await open().initialize();
      const { rows } = await client.query<{ column_name: string; data_type: string }>(
        'SELECT column_name, data_type FROM information_schema.columns WHERE table_name = $1 ORDER BY ordinal_position',
        [table],
      );
      const types = Object.fromEntries(rows.map((r) => [r.column_name, r.data_type]));
      assert.equal(types.started_at, 'timestamp with time zone');
      assert.equal(types.ended_at, 'timestamp with time zone');
      assert.equal(types.streamed, 'boolean');
      assert.equal(types.state, 'json');
      assert.equal(types.result, 'json');
      assert.equal(types.time_to_first_item_ms, 'double precision');
      const pk = await client.query<{ attname: string }>(
        `SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
         WHERE i.indrelid = $1::regclass AND i.indisprimary`,
        [table],
      );
      assert.deepEqual(pk.rows.map((r) => r.attname), ['run_id']);
    } finally {
      await client.end();
      await done();
    }
  });

  test('PostgreSQL unreachable or silent: every step commits, the failure is logged, the wait is bounded by connectTimeoutMs', { timeout: 15_000 }, async () => {
    // Nothing listening: refused at once.
    const closed = await listen();
    const port = (closed.address() as { port: number }).port;
    await new Promise((resolve) => closed.close(resolve));
    // Accepts and never answers: only the timeout ends the wait.
    const sockets: Socket[] = [];
    const silent = await listen((socket) => sockets.push(socket));
    const silentPort = (silent.address() as { port: number }).port;
    const refused = new PostgresTracker({ connectionString: `postgres://postgres@127.0.0.1:${port}/test`, logger: capturingLogger() });
    const hanging = new PostgresTracker({ connectionString: `postgres://postgres@127.0.0.1:${silentPort}/test`, connectTimeoutMs: 300, logger: capturingLogger() });
    try {
      for (const tracker of [refused, hanging]) {
        const logger = capturingLogger();
        const app = await counterApp('offline', tracker, logger);
        const started = performance.now();
        assert.equal((await app.step())?.[2].get('n'), 1);
        assert.equal((await app.step())?.[2].get('n'), 2);
        const elapsed = performance.now() - started;
        assert.ok(elapsed < 3_000, `two steps took ${elapsed.toFixed(0)} ms`);
        assert.equal(hookFailures(logger).length, 2);
        await assert.rejects(Promise.resolve().then(() => tracker.listRuns('offline')));
      }
      assert.ok(sockets.length > 0, 'the silent server was reached');
    } finally {
      await refused.close();
      await hanging.close();
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });

  test('a statement that waits too long is cancelled after queryTimeoutMs: the step commits, the next one is recorded', { timeout: 15_000 }, async () => {
    const { table, open, done } = trackers({ queryTimeoutMs: 300 });
    const tracker = open();
    const locker = new pg.Client({ connectionString: url });
    await locker.connect();
    try {
      await tracker.initialize();
      await locker.query('BEGIN');
      await locker.query(`LOCK TABLE "${table}" IN ACCESS EXCLUSIVE MODE`);
      const logger = capturingLogger();
      const app = await counterApp('locked', tracker, logger);
      const started = performance.now();
      assert.equal((await app.step())?.[2].get('n'), 1);
      const elapsed = performance.now() - started;
      assert.ok(elapsed >= 250 && elapsed < 2_000, `the step waited ${elapsed.toFixed(0)} ms`);
      const [failure] = hookFailures(logger);
      assert.equal((failure?.obj.err as { code?: string }).code, '57014', 'canceled by statement_timeout');
      await assert.rejects(tracker.listRuns('locked'), { code: '57014' });
      await locker.query('COMMIT');
      await app.step();
      assert.deepEqual((await tracker.listRuns('locked')).map((r) => r.sequenceId), [1]);
    } finally {
      await locker.end();
      await done();
    }
  });

  test('a connection the server drops (a restart) is logged, not a crash; the next step is recorded', { timeout: 15_000 }, async () => {
    const name = `sluice_tracker_${process.pid}_${Date.now()}`;
    const logger = capturingLogger();
    const table = testTable();
    const tracker = new PostgresTracker({ connectionString: `${url}${url.includes('?') ? '&' : '?'}application_name=${name}`, table, logger });
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    try {
      const app = await counterApp('restarted', tracker);
      await app.step(); // leaves an idle connection in the pool
      const killed = await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1', [name]);
      assert.ok(killed.rowCount !== null && killed.rowCount > 0);
      for (let i = 0; i < 100 && !logger.records.some((r) => r.level === 'warn'); i++) await sleep(10);
      const [warning] = logger.records.filter((r) => r.level === 'warn');
      assert.match(warning?.msg ?? '', /PostgresTracker: connection problem/);
      assert.equal(warning?.obj.table, table);
      await app.step();
      assert.deepEqual((await tracker.listRuns('restarted')).map((r) => r.sequenceId), [1, 0]);
    } finally {
      await admin.end();
      await tracker.drop();
      await tracker.close();
    }
  });

  test('options: the table is an identifier, timeouts are positive; a pool of the caller’s stays open', async () => {
    assert.throws(() => new PostgresTracker({ connectionString: url, table: 'x"; DROP TABLE y; --' }), /plain SQL identifier/);
    assert.throws(() => new PostgresTracker({ connectionString: url, connectTimeoutMs: 0 }), /connectTimeoutMs must be a number ≥ 1/);
    assert.throws(() => new PostgresTracker({ connectionString: url, queryTimeoutMs: Number.NaN }), /queryTimeoutMs must be a number ≥ 1/);
    const pool = new pg.Pool({ connectionString: url });
    const tracker = new PostgresTracker({ pool, table: testTable() });
    try {
      assert.deepEqual(await tracker.listApps(), []);
      await tracker.close();
      assert.equal((await pool.query('SELECT 1 AS one')).rows[0]?.one, 1);
    } finally {
      await tracker.drop();
      await pool.end();
    }
  });
});

function listen(onConnection: (socket: Socket) => void = () => {}): Promise<Server> {
  return new Promise((resolve) => {
    const server = createServer(onConnection);
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
}
