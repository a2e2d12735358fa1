/**
 * `sluice/stores`: storage for applications — persisters and trackers (SQLite by default,
 * PostgreSQL to share them between server instances).
 * @module
 */

export { SQLitePersister } from './sqlite-persister.ts';
export type { SQLitePersisterOptions } from './sqlite-persister.ts';
export { PostgresPersister } from './postgres-persister.ts';
export type { PostgresPersisterOptions } from './postgres-persister.ts';
export { SQLiteTracker } from './sqlite-tracker.ts';
export type { SQLiteTrackerOptions } from './sqlite-tracker.ts';
export { PostgresTracker } from './postgres-tracker.ts';
export type { PostgresTrackerOptions } from './postgres-tracker.ts';
export { defaultDataDir } from './sql.ts';
export type { SQLiteOptions } from './sql.ts';
export { RedisRuns, connectRedisRuns } from './redis-runs.ts';
export type { RedisRunsOptions } from './redis-runs.ts';
export { RedisChatStore } from './redis-chat-store.ts';
export type { RedisChatStoreOptions } from './redis-chat-store.ts';
export { RedisStepLocks } from './redis-step-locks.ts';
export type { RedisStepLocksOptions } from './redis-step-locks.ts';
