/**
 * Shared by the PostgreSQL tests: the URL (`DATABASE_URL`, default
 * postgres://postgres@127.0.0.1:5432/test), whether the server answers (when CI=true an unreachable
 * server fails the tests; elsewhere they are skipped with a message), a random table name per test,
 * and dropping the tables a test made (never anyone else's).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import pg from 'pg';

export const POSTGRES_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

const redacted = POSTGRES_URL.replace(/\/\/([^:@/]+):[^@/]*@/, '//$1:***@');

/** Null when PostgreSQL answers; else why not. */
async function probe(): Promise<string | null> {
  const client = new pg.Client({ connectionString: POSTGRES_URL, connectionTimeoutMillis: 3_000 });
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

/**
 * Registers a suite that needs the real server: skipped with the reason when it does not answer,
 * except in CI, where a failing test says so instead.
 */
export async function describePostgres(name: string, fn: () => void): Promise<void> {
  const unreachable = await probe();
  if (unreachable !== null && process.env.CI === 'true') {
    test('PostgreSQL is reachable (required in CI)', () => {
      assert.fail(`PostgreSQL at ${redacted} is unreachable: ${unreachable}`);
    });
    return;
  }
  describe(name, { skip: unreachable === null ? false : `PostgreSQL at ${redacted} is unreachable: ${unreachable}` }, fn);
}

/** For suites that need Redis as well (see `redisSkip`): undefined when PostgreSQL answers, else the reason to skip (under CI, throws). */
export async function postgresSkip(): Promise<string | undefined> {
  const unreachable = await probe();
  if (unreachable === null) return undefined;
  const reason = `PostgreSQL at ${redacted} is unreachable (${unreachable}); skipping`;
  if (process.env.CI === 'true') throw new Error(reason);
  return reason;
}

/** A table name no other test uses. */
export function testTable(): string {
  return `sluice_test_${process.pid}_${randomBytes(4).toString('hex')}`;
}

/** Drops tables this test made. */
export async function dropTables(...tables: string[]): Promise<void> {
  const client = new pg.Client({ connectionString: POSTGRES_URL, connectionTimeoutMillis: 3_000 });
  await client.connect();
  try {
    for (const table of tables) await client.query(`DROP TABLE IF EXISTS "${table}"`);
  } finally {
    await client.end();
  }
}
