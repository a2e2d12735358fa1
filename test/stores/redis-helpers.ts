/**
 * Shared by the Redis tests: the URL (`REDIS_URL`, default 127.0.0.1:6379), whether Redis is there
 * (when CI=true a missing Redis fails the tests; elsewhere they are skipped with a message), a
 * random key prefix per test, and cleanup of that prefix's keys (SCAN + DEL; never FLUSHDB).
 */
import { randomBytes } from 'node:crypto';
import { createClient } from 'redis';

export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

/** Undefined when Redis answers; else the reason to skip (or, under CI, throws). */
export async function redisSkip(): Promise<string | undefined> {
  const client = createClient({ url: REDIS_URL, socket: { connectTimeout: 2000, reconnectStrategy: false } });
  client.on('error', () => {});
  try {
    await client.connect();
    await client.ping();
    return undefined;
  } catch (error) {
    const reason = `Redis is not reachable at ${REDIS_URL} (${(error as Error).message}); skipping`;
    if (process.env.CI === 'true') throw new Error(reason);
    return reason;
  } finally {
    if (client.isOpen) await client.close();
  }
}

/** A fresh prefix: `t<random>`. */
export function testPrefix(): string {
  return `sluicetest${randomBytes(6).toString('hex')}`;
}

/** Keys under `prefix` (SCAN). */
export async function keysOf(prefix: string): Promise<string[]> {
  const client = createClient({ url: REDIS_URL });
  client.on('error', () => {});
  await client.connect();
  try {
    const keys: string[] = [];
    for await (const batch of client.scanIterator({ MATCH: `${prefix}:*`, COUNT: 1000 })) keys.push(...batch);
    return keys;
  } finally {
    await client.close();
  }
}

/** Deletes every key under `prefix`. */
export async function dropPrefix(prefix: string): Promise<void> {
  const keys = await keysOf(prefix);
  if (keys.length === 0) return;
  const client = createClient({ url: REDIS_URL });
  client.on('error', () => {});
  await client.connect();
  try {
    for (let i = 0; i < keys.length; i += 500) await client.del(keys.slice(i, i + 500));
  } finally {
    await client.close();
  }
}
