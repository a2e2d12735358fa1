// `--redis` / `--redis-prefix`: parsed with their environment variables, checked with errors naming the flag.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseCommandLine } from '../../src/cli/flags/parse.ts';
import { coreFlags } from '../../src/cli/flags/core.ts';
import { redisFlags, redisOptionsFrom } from '../../src/cli/flags/redis.ts';

const FLAGS = [...coreFlags, ...redisFlags];

test('--redis and --redis-prefix give the Redis options; without --redis there are none', () => {
  const line = parseCommandLine(['serve', '--actions', 'a.ts', '--redis', 'redis://127.0.0.1:6379', '--redis-prefix', 'prod'], FLAGS, {});
  assert.deepEqual(redisOptionsFrom(parseCommandLine(['serve', '--actions', 'a.ts'], FLAGS, { SLUICE_REDIS_URL: 'redis://r:1' }).values), { url: 'redis://r:1', prefix: 'sluice' });
  assert.deepEqual(redisOptionsFrom(line.values), { url: 'redis://127.0.0.1:6379', prefix: 'prod' });
  assert.deepEqual(redisOptionsFrom({ redis: 'rediss://cache:6380' }), { url: 'rediss://cache:6380', prefix: 'sluice' });
  assert.equal(redisOptionsFrom({}), undefined);
});

test('bad values are refused with a message naming the flag', () => {
  assert.throws(() => redisOptionsFrom({ redis: 'http://x' }), /--redis must be a redis:\/\/ or rediss:\/\/ URL/);
  assert.throws(() => redisOptionsFrom({ redis: 'redis://x', 'redis-prefix': 'a{b}' }), /--redis-prefix must be/);
  assert.throws(() => redisOptionsFrom({ 'redis-prefix': 'p' }), /--redis-prefix needs --redis/);
});
