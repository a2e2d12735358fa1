/**
 * The scale-out flags: `--redis <url>` turns on the shared mode (several instances behind a load
 * balancer, one Redis), `--redis-prefix` names the deployment's keys.
 * @module
 */

import { SluiceError } from '../../protocol/errors.ts';
import type { FlagSpec, FlagValues } from './spec.ts';

/** `--redis`, `--redis-prefix` (`serve`, `dev`). */
export const redisFlags: readonly FlagSpec[] = [
  {
    name: 'redis',
    type: 'string',
    value: '<url>',
    env: 'SLUICE_REDIS_URL',
    help: 'share runs, cancel and barge-in with other instances through this Redis (redis://host:6379)',
    commands: ['serve', 'dev'],
  },
  {
    name: 'redis-prefix',
    type: 'string',
    value: '<prefix>',
    env: 'SLUICE_REDIS_PREFIX',
    default: 'sluice',
    help: 'prefix of every Redis key, so several deployments can share one Redis',
    commands: ['serve', 'dev'],
  },
];

/** The Redis settings of a server, or undefined without `--redis`. Throws `invalid_argument` naming the flag. */
export function redisOptionsFrom(values: FlagValues): { url: string; prefix: string } | undefined {
  const url = values.redis;
  const prefix = values['redis-prefix'];
  if (url === undefined || url === '') {
    if (typeof prefix === 'string') throw new SluiceError('invalid_argument', '--redis-prefix needs --redis <url>');
    return undefined;
  }
  if (typeof url !== 'string' || !/^rediss?:\/\/[^\s]+$/.test(url)) {
    throw new SluiceError('invalid_argument', `--redis must be a redis:// or rediss:// URL (got '${String(url)}')`);
  }
  if (prefix !== undefined && (typeof prefix !== 'string' || prefix === '' || /[{}\s]/.test(prefix))) {
    throw new SluiceError('invalid_argument', `--redis-prefix must be a non-empty string without braces or spaces (got '${String(prefix)}')`);
  }
  return { url, prefix: typeof prefix === 'string' ? prefix : 'sluice' };
}
