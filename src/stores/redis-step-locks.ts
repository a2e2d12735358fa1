/**
 * The app step locks of several instances (see `src/app/step-locks.ts`), in the Redis they already
 * share for runs: per app a lock key (a lease renewed while the step runs, expiring `leaseMs` after
 * its holder died) and a record of the last committed step, both under one hash tag so each script
 * touches one slot.
 *
 * Why Redis and not PostgreSQL advisory locks: a session-level advisory lock lives as long as its
 * connection, so a step would pin a pooled connection for its whole duration (minutes, for a long
 * answer), and a transaction-level one cannot span the step's commit made by the persister on
 * another connection. A lease with a TTL needs neither, and its holder's death frees it by itself.
 * @module
 */

import { randomBytes } from 'node:crypto';
import type { CommittedStep, LockView, StepHolder, StepLease, StepLocks } from '../app/step-locks.ts';
import { SluiceError } from '../protocol/errors.ts';
import type { Logger } from '../runtime/logger.ts';
import type { RedisRuns } from './redis-runs.ts';

/** Options of {@link RedisStepLocks}. */
export interface RedisStepLocksOptions {
  /** How long a lock outlives its last renewal, in ms. Default: the runs' `leaseMs` (3 s). */
  leaseMs?: number;
  /** How long the record of an app's last committed step is kept, in ms. Default 7 days. */
  committedTtlMs?: number;
  /** Where a lost lease is reported. */
  logger?: Logger;
}

/** KEYS: lock, committed. ARGV: value, ttl. Returns {1, committed} or {0, holder, committed}. */
const ACQUIRE = `
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {1, redis.call('GET', KEYS[2]) or ''}
end
return {0, redis.call('GET', KEYS[1]) or '', redis.call('GET', KEYS[2]) or ''}`;

/** The holder's token opens the value: `<token> <json>`. */
const HOLDS = `local v = redis.call('GET', KEYS[1])
if not v or string.sub(v, 1, #ARGV[1] + 1) ~= ARGV[1] .. ' ' then return 0 end`;

/** KEYS: lock. ARGV: token, ttl. */
const RENEW = `${HOLDS}
return redis.call('PEXPIRE', KEYS[1], ARGV[2])`;

/** KEYS: lock. ARGV: token, value. */
const SET_RUN = `${HOLDS}
redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
return 1`;

/**
 * KEYS: lock, committed. ARGV: token, committed ('' for none), ttl. A release by a holder that
 * lost its lease forgets the record: someone else may have committed since.
 */
const RELEASE = `local v = redis.call('GET', KEYS[1])
if not v or string.sub(v, 1, #ARGV[1] + 1) ~= ARGV[1] .. ' ' then
  redis.call('DEL', KEYS[2])
  return 0
end
redis.call('DEL', KEYS[1])
if ARGV[2] ~= '' then redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3]) end
return 1`;

function unreachable(error: unknown): SluiceError {
  if (SluiceError.isInstance(error)) return error;
  return new SluiceError('unavailable', `Cannot reach Redis for the app step lock: ${(error as Error).message}`, { cause: error });
}

function holderOf(value: string): StepHolder | null {
  if (value === '') return null;
  try {
    const parsed = JSON.parse(value.slice(value.indexOf(' ') + 1)) as Partial<StepHolder>;
    return { runId: typeof parsed.runId === 'string' ? parsed.runId : null, action: typeof parsed.action === 'string' ? parsed.action : null };
  } catch {
    return { runId: null, action: null };
  }
}

function committedOf(value: string | null): CommittedStep | undefined {
  if (value === null || value === '') return undefined;
  try {
    const parsed = JSON.parse(value) as CommittedStep;
    return Number.isInteger(parsed.sequenceId) ? parsed : undefined;
  } catch {
    return undefined;
  }
}

/** {@link StepLocks} in the Redis of a {@link RedisRuns} (same connection, same key prefix). */
export class RedisStepLocks implements StepLocks {
  readonly #runs: RedisRuns;
  readonly #leaseMs: number;
  readonly #committedTtl: string;
  readonly #logger: Logger | undefined;

  constructor(runs: RedisRuns, options: RedisStepLocksOptions = {}) {
    const lease = options.leaseMs ?? runs.leaseMs;
    const ttl = options.committedTtlMs ?? 7 * 24 * 3_600_000;
    if (!Number.isInteger(lease) || lease < 100) throw new RangeError(`RedisStepLocks: 'leaseMs' must be an integer ≥ 100 (got ${String(options.leaseMs)})`);
    if (!Number.isInteger(ttl) || ttl < 1) throw new RangeError(`RedisStepLocks: 'committedTtlMs' must be a positive integer (got ${String(options.committedTtlMs)})`);
    this.#runs = runs;
    this.#leaseMs = lease;
    this.#committedTtl = String(ttl);
    this.#logger = options.logger;
  }

  /** The keys of an app (one hash tag: the app key, URI-encoded so braces cannot end the tag early). */
  #keys(appKey: string): [lock: string, committed: string] {
    const base = `${this.#runs.keys.prefix}:app:{${encodeURIComponent(appKey)}}`;
    return [`${base}:lock`, `${base}:committed`];
  }

  async acquire(appKey: string): Promise<{ lease: StepLease | null; view: LockView }> {
    const keys = this.#keys(appKey);
    const token = randomBytes(12).toString('hex');
    let reply: string[];
    try {
      reply = (await this.#runs.script<(string | number)[]>(ACQUIRE, keys, [`${token} {}`, String(this.#leaseMs)])).map(String);
    } catch (error) {
      throw unreachable(error);
    }
    if (reply[0] === '1') {
      const lease = new RedisLease({ runs: this.#runs, keys, token, leaseMs: this.#leaseMs, committedTtl: this.#committedTtl, logger: this.#logger, appKey });
      return { lease, view: { holder: null, committed: committedOf(reply[1] ?? null) } };
    }
    return { lease: null, view: { holder: holderOf(reply[1] ?? '') ?? { runId: null, action: null }, committed: committedOf(reply[2] ?? null) } };
  }

  async inspect(appKey: string): Promise<LockView> {
    let values: (string | null)[];
    try {
      values = await this.#runs.command<(string | null)[]>(['MGET', ...this.#keys(appKey)]);
    } catch (error) {
      throw unreachable(error);
    }
    return { holder: holderOf(values[0] ?? ''), committed: committedOf(values[1] ?? null) };
  }
}

/** What a held lock needs: the connection, its keys and token, and the settings of its locks. */
interface LeaseContext {
  runs: RedisRuns;
  keys: [lock: string, committed: string];
  token: string;
  leaseMs: number;
  committedTtl: string;
  logger: Logger | undefined;
  appKey: string;
}

/** A held lock, renewed every third of its lease until released. */
class RedisLease implements StepLease {
  readonly #c: LeaseContext;
  #timer: NodeJS.Timeout | null;
  #released = false;

  constructor(context: LeaseContext) {
    this.#c = context;
    this.#timer = setInterval(() => void this.#renew(), Math.max(30, Math.floor(context.leaseMs / 3)));
    this.#timer.unref();
  }

  async #renew(): Promise<void> {
    const { runs, keys, token, leaseMs, logger, appKey } = this.#c;
    try {
      const held = await runs.script<number>(RENEW, [keys[0]], [token, String(leaseMs)]);
      if (Number(held) === 0 && !this.#released) {
        this.#stop();
        logger?.warn({ appKey }, `The step lock of app '${appKey}' expired while its step ran (Redis unreachable or this instance stalled); the persister still refuses a second commit`);
      }
    } catch {
      // Redis unreachable: the next renewal tries again; the lease may expire meanwhile (see above).
    }
  }

  #stop(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }

  async setRun(runId: string, action: string): Promise<void> {
    const { runs, keys, token, logger, appKey } = this.#c;
    const holder: StepHolder = { runId, action };
    await runs.script(SET_RUN, [keys[0]], [token, `${token} ${JSON.stringify(holder)}`]).catch((error: unknown) => {
      logger?.warn({ err: error, appKey }, `Could not record the run of app '${appKey}' in its step lock`);
    });
  }

  async release(committed: CommittedStep | null): Promise<void> {
    if (this.#released) return;
    this.#released = true;
    this.#stop();
    const { runs, keys, token, committedTtl, logger, appKey } = this.#c;
    const record = committed === null ? '' : JSON.stringify({ sequenceId: committed.sequenceId, action: committed.action, status: committed.status, runId: committed.runId });
    try {
      await runs.script(RELEASE, keys, [token, record, committedTtl]);
    } catch (error) {
      // The lock expires by itself after the lease; until then the app answers 409.
      logger?.warn({ err: error, appKey }, `Could not release the step lock of app '${appKey}': it expires after its lease`);
    }
  }
}
