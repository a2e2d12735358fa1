/**
 * Against the local PostgreSQL server (`DATABASE_URL`, default postgres://postgres@127.0.0.1:5432/test).
 * Each test gets its own table. In CI (`CI=true`) an unreachable server fails; locally it skips.
 */

import assert from 'node:assert/strict';
import { test } from 'node:test';
import pg from 'pg';
import { PostgresPersister } from '../../src/stores/index.ts';
import { capturingLogger } from '../models/helpers.ts';
import { persisterContract } from './contract.ts';
import { describePostgres, POSTGRES_URL as url, testTable } from './postgres-helpers.ts';

await describePostgres('PostgresPersister (real server)', () => {
  persisterContract(async () => {
    const table = testTable();
    const opened: PostgresPersister[] = [];
    const open = () => {
      const p = new PostgresPersister({ connectionString: url, table });
      opened.push(p);
      return p;
    };
    return {
      persister: open(),
      reopen: open,
      cleanup: async () => {
        await (opened[0] as PostgresPersister).drop();
        for (const p of opened) await p.close();
      },
    };
  });

  test('state is jsonb and timestamps are timestamptz; the key is (app_id, partition_key, sequence_id)', async () => {
    const table = testTable();
    const persister = new PostgresPersister({ connectionString: url, table });
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      await persister.initialize();
      const { rows } = await client.query<{ column_name: string; data_type: string }>(
        'SELECT column_name, data_type FROM information_schema.columns WHERE table_name = $1 ORDER BY ordinal_position',
        [table],
      );
      const types = Object.fromEntries(rows.map((r) => [r.column_name, r.data_type]));
      assert.equal(types.state, 'jsonb');
      assert.equal(types.started_at, 'timestamp with time zone');
      const pk = await client.query<{ attname: string }>(
        `SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
         WHERE i.indrelid = $1::regclass AND i.indisprimary ORDER BY array_position(i.indkey, a.attnum)`,
        [table],
      );
      assert.deepEqual(pk.rows.map((r) => r.attname), ['app_id', 'partition_key', 'sequence_id']);
    } finally {
      await persister.drop();
      await persister.close();
      await client.end();
    }
  });

  test('a connection the server drops (a restart) is logged, not a crash; the next save works', { timeout: 15_000 }, async () => {
    const name = `sluice_persister_${process.pid}_${Date.now()}`;
    const logger = capturingLogger();
    const persister = new PostgresPersister({ connectionString: `${url}${url.includes('?') ? '&' : '?'}application_name=${name}`, table: testTable(), logger });
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    const step = (sequenceId: number) => ({ appId: 'a', partitionKey: '', sequenceId, action: 'x', status: 'completed' as const, state: {}, result: null, error: null, startedAt: 1, endedAt: 2 });
    try {
      await persister.save(step(0)); // leaves an idle connection in the pool
      const killed = await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1', [name]);
      assert.ok(killed.rowCount !== null && killed.rowCount > 0);
      for (let i = 0; i < 100 && !logger.records.some((r) => r.level === 'warn'); i++) await new Promise((resolve) => setTimeout(resolve, 10));
      assert.match(logger.records.find((r) => r.level === 'warn')?.msg ?? '', /PostgresPersister: connection problem/);
      await persister.save(step(1));
      assert.deepEqual((await persister.list('a')).map((r) => r.sequenceId), [0, 1]);
    } finally {
      await admin.end();
      await persister.drop();
      await persister.close();
    }
  });

  test('a statement that waits too long is cancelled after queryTimeoutMs (a locked table), with the server’s error', { timeout: 15_000 }, async () => {
    const table = testTable();
    const persister = new PostgresPersister({ connectionString: url, table, queryTimeoutMs: 300 });
    await persister.initialize();
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    try {
      await admin.query('BEGIN');
      await admin.query(`LOCK TABLE "${table}" IN ACCESS EXCLUSIVE MODE`);
      const started = Date.now();
      await assert.rejects(persister.load({ appId: 'a', partitionKey: '' }), (error: any) => error.code === '57014');
      assert.ok(Date.now() - started < 2_000);
      await admin.query('ROLLBACK');
      assert.equal(await persister.load({ appId: 'a', partitionKey: '' }), null);
    } finally {
      await admin.end();
      await persister.drop();
      await persister.close();
    }
  });
});
