/**
 * Against the local PostgreSQL server (`DATABASE_URL`, default postgres://postgres@127.0.0.1:5432/test).
 * Each test gets its own table. In CI (`CI=true`) an unreachable server fails; locally it skips.
 */

import assert from 'node:assert/strict';
import { test } from 'node:test';
import pg from 'pg';
import { PostgresPersister } from '../../src/stores/index.ts';
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
});
