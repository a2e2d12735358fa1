/**
 * Shared by the PostgreSQL tests: the URL (`DATABASE_URL`, default the local server's `test`
 * database), whether it answers (when CI=true a missing server fails the tests; elsewhere they are
 * skipped with a message), and a fresh table name per test.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';

export const POSTGRES_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/** Undefined when PostgreSQL answers; else the reason to skip (or, under CI, throws). */
export async function postgresSkip(): Promise<string | undefined> {
  const client = new pg.Client({ connectionString: POSTGRES_URL, connectionTimeoutMillis: 3_000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
    return undefined;
  } catch (error) {
    const reason = `PostgreSQL is not reachable at ${POSTGRES_URL.replace(/\/\/([^:@/]+):[^@/]*@/, '//$1:***@')} (${(error as Error).message}); skipping`;
    if (process.env.CI === 'true') throw new Error(reason);
    return reason;
  } finally {
    await client.end().catch(() => {});
  }
}

/** A table name of this test's own. */
export function testTable(what = 'steps'): string {
  return `sluice_test_${what}_${randomBytes(5).toString('hex')}`;
}

/** Drops tables this test created. */
export async function dropTables(...tables: string[]): Promise<void> {
  const client = new pg.Client({ connectionString: POSTGRES_URL, connectionTimeoutMillis: 3_000 });
  await client.connect();
  try {
    for (const table of tables) await client.query(`DROP TABLE IF EXISTS "${table}"`);
  } finally {
    await client.end();
  }
}
