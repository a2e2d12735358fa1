/**
 * Against the local PostgreSQL server (`DATABASE_URL`, default postgres://postgres@127.0.0.1:5432/test).
 * Each test gets its own table. In CI (`CI=true`) an unreachable server fails; locally it skips.
 */

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import pg from 'pg';
import { PostgresPersister } from '../../src/stores/index.ts';
import { persisterContract } from './contract.ts';

const url = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

async function probe(): Promise<string | null> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3_000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
    return null;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  } finally {
    await client.end().catch(() => {});
  }
}

const unreachable = await probe();
const redacted = url.replace(/\/\/([^:@/]+):[^@/]*@/, '//$1:***@');

if (unreachable !== null && process.env.CI === 'true') {
  test('PostgreSQL is reachable (required in CI)', () => {
    assert.fail(`PostgreSQL at ${redacted} is unreachable: ${unreachable}`);
  });
} else {
  describe('PostgresPersister (real server)', { skip: unreachable === null ? false : `PostgreSQL at ${redacted} is unreachable: ${unreachable}` }, () => {
    persisterContract(async () => {
      const table = `sluice_test_${process.pid}_${randomBytes(4).toString('hex')}`;
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
      const table = `sluice_test_${process.pid}_${randomBytes(4).toString('hex')}`;
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
}
