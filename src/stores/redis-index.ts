/**
 * The Redis mode in one module, for a lazy `import()` (the `redis` client is loaded only when used).
 * @module
 */

export { RedisRuns, connectRedisRuns, redactUrl } from './redis-runs.ts';
export type { RedisRunsOptions } from './redis-runs.ts';
export { RedisChatStore } from './redis-chat-store.ts';
export type { RedisChatStoreOptions } from './redis-chat-store.ts';
export { RedisStepLocks } from './redis-step-locks.ts';
export type { RedisStepLocksOptions } from './redis-step-locks.ts';
