/**
 * Several Sluice instances sharing one Redis (≥ 7): the event log of every run in a Redis stream,
 * cancel and barge-in carried to the instance that owns a run, and producer leases. Pass the result
 * to the executor: `new ActionExecutor({ actions, shared: await connectRedisRuns({ url }) })`.
 *
 * - Log: each run this instance starts is copied into `<prefix>:run:{<id>}:log` by a
 *   {@link RunLogWriter} (text chunks coalesced for `coalesceMs`, appends pipelined, backpressure
 *   through the run's own buffer), capped at `maxLen` entries, with a TTL while running and a
 *   shorter one after the end. Metadata (action, owner, state, owning instance) is a hash beside it.
 * - Readers: `findRun` on any instance opens a {@link ReplicaRun} that replays the stream and
 *   follows it through the instance's one blocking reader ({@link StreamTail}); seq stays the
 *   resume id, and a seq that jumps (history lost) ends the copy with an `out_of_range` error.
 * - Control: a cancel or an ack for a run owned elsewhere is pushed to the owner's control list
 *   (durable: the owner pops it on every heartbeat) and published on its channel (fast).
 * - Leases: each instance keeps `<prefix>:instance:{<id>}:lease` alive (`leaseMs`); an instance
 *   following a run whose owner's lease expired ends the run with `error` (`unavailable`, producer
 *   lost) and `run-end` — one instance only: the claim is an atomic script on the run's keys.
 * @module
 */

import { createHash, randomBytes } from 'node:crypto';
import { createClient } from 'redis';
import { SluiceError } from '../protocol/errors.ts';
import type { ControlBus, ControlHandler, EventLog, SharedRuns } from '../runtime/shared-runs.ts';
import type { Logger } from '../runtime/logger.ts';
import { createLogger } from '../runtime/logger.ts';
import { ReplicaRun, type ReplicaSource } from '../runtime/replica-run.ts';
import type { Run, RunOptions } from '../runtime/run.ts';
import { decodeEntry } from './redis-codec.ts';
import { RedisKeys } from './redis-keys.ts';
import { APPEND_SCRIPT, RunLogWriter, XADD_MANY_SCRIPT, historyGone, type WriterContext } from './redis-log-writer.ts';
import { StreamTail, type CommandClient } from './redis-tail.ts';

/**
 * Pauses before looking a run or a barge-in's stream up again (100 ms in all): a client can have
 * its id from the producer's memory a moment before the producer's log writer registered it.
 */
const LOOKUP_WAITS_MS = [10, 30, 60];

/** Options of {@link connectRedisRuns}. */
export interface RedisRunsOptions {
  /** `redis://…` or `rediss://…`. */
  url: string;
  /** Key prefix, so several deployments (or tests) share one Redis. Default `sluice`. */
  prefix?: string;
  /** How long text chunks of one message may wait to share an entry, in ms (0: none). Default 5. */
  coalesceMs?: number;
  /** Entries kept per run stream (approximate trim). Default 10,000. */
  maxLen?: number;
  /** Events in one entry at most. Default 256. */
  maxEventsPerEntry?: number;
  /** Unanswered appends per run before its writer waits (then its producer). Default 32. */
  maxInFlight?: number;
  /** TTL of a running run's keys (renewed while it runs), in ms. Default 1 hour. */
  runningTtlMs?: number;
  /** TTL of an ended run's keys, in ms: how long late readers can resume it. Default 10 minutes. */
  endedTtlMs?: number;
  /** An instance's lease, in ms: its runs are declared lost this long after it stopped. Default 3,000. */
  leaseMs?: number;
  /** Longest block of the shared blocking read, in ms. Default 1,000. */
  blockMs?: number;
  /** A write that takes longer fails (the producer is not held longer than this), in ms. Default 2,000. */
  writeTimeoutMs?: number;
  /** How long a copy of a remote run with no reader is kept, in ms. Default 10,000. */
  replicaIdleMs?: number;
  /**
   * Most runs of other instances followed here at once (each holds a buffer of events). Past it,
   * copies without a reader are dropped first; when every copy has readers, opening another one
   * is refused with `resource_exhausted`. Default 10,000.
   */
  maxReplicas?: number;
  /** Buffer settings of the copies (as the executor's `run` option). */
  run?: Pick<RunOptions, 'highWaterMark' | 'lowWaterMark' | 'logLimit' | 'hardLimit'>;
  /** How long to wait for Redis at start, in ms. Default 5,000. */
  connectTimeoutMs?: number;
  logger?: Logger;
}

type Client = ReturnType<typeof createClient>;

interface ControlMessage {
  op: 'cancel' | 'ack';
  runId?: string;
  responseId?: string;
  message?: string;
}

interface Opened {
  run: ReplicaRun;
  /** The instance producing the run. */
  instance: string;
  paused: boolean;
  idleTimer: NodeJS.Timeout | null;
}

/** Ends a run whose producer's lease expired: once (state must still be `running`). */
const CLAIM_SCRIPT = `
if redis.call('HGET', KEYS[1], 'state') ~= 'running' then return -1 end
if redis.call('HGET', KEYS[1], 'instance') ~= ARGV[1] then return -1 end
local top = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
local last = 0
if #top > 0 then last = tonumber(string.match(top[1][1], '^(%d+)')) end
redis.call('XADD', KEYS[2], (last + 2) .. '-0', 'd', ARGV[2])
redis.call('HSET', KEYS[1], 'state', 'lost', 'last', tostring(last + 2), 'reason', 'error')
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return last
`;

function positive(name: string, value: number | undefined, fallback: number, min = 1): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min) {
    throw new SluiceError('invalid_argument', `connectRedisRuns: '${name}' must be a number ≥ ${min} (got ${String(value)})`);
  }
  return value;
}

/** The URL without its password, for messages. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== '') parsed.password = '***';
    return parsed.toString();
  } catch {
    return url;
  }
}

/**
 * Connects to Redis and returns the shared log and control bus of this instance. Rejects with
 * `unavailable`, naming the URL, when Redis cannot be reached within `connectTimeoutMs`; with
 * `invalid_argument` for a bad option. Close it after `executor.close()`.
 */
export async function connectRedisRuns(options: RedisRunsOptions): Promise<RedisRuns> {
  const runs = new RedisRuns(options);
  await runs.connect();
  return runs;
}

/** The Redis implementation of {@link SharedRuns} (see the module notes). */
export class RedisRuns implements SharedRuns, ReplicaSource {
  /** This process's id in the deployment (a new one at every start). */
  readonly instanceId = randomBytes(8).toString('hex');
  readonly keys: RedisKeys;
  readonly log: EventLog;
  readonly control: ControlBus;
  /** Counters: events and entries written, commands sent by writers, events lost to failures. */
  readonly stats = { events: 0, entries: 0, commands: 0, lostEvents: 0 };

  readonly #url: string;
  readonly #logger: Logger;
  readonly #o: Required<Omit<RedisRunsOptions, 'url' | 'prefix' | 'logger' | 'run'>>;
  readonly #runOptions: RedisRunsOptions['run'];
  readonly #client: Client;
  readonly #reader: Client;
  readonly #subscriber: Client;
  #tail: StreamTail;
  readonly #writers = new Set<RunLogWriter>();
  readonly #opened = new Map<string, Opened>();
  readonly #opening = new Map<string, Promise<Run | undefined>>();
  #handler: ControlHandler | null = null;
  #heartbeat: NodeJS.Timeout | null = null;
  #watch: NodeJS.Timeout | null = null;
  #connected = false;
  #closed = false;
  #lastError = 0;
  #unreachableSince = 0;

  constructor(options: RedisRunsOptions) {
    if (typeof options?.url !== 'string' || !/^rediss?:\/\//.test(options.url)) {
      throw new SluiceError('invalid_argument', `connectRedisRuns: 'url' must be a redis:// or rediss:// URL (got ${JSON.stringify(options?.url)})`);
    }
    this.#url = options.url;
    this.keys = new RedisKeys(options.prefix ?? 'sluice');
    this.#logger = options.logger ?? createLogger();
    this.#runOptions = options.run;
    this.#o = {
      coalesceMs: positive('coalesceMs', options.coalesceMs, 5, 0),
      maxLen: positive('maxLen', options.maxLen, 10_000),
      maxEventsPerEntry: positive('maxEventsPerEntry', options.maxEventsPerEntry, 256),
      maxInFlight: positive('maxInFlight', options.maxInFlight, 32),
      runningTtlMs: positive('runningTtlMs', options.runningTtlMs, 3_600_000, 1000),
      endedTtlMs: positive('endedTtlMs', options.endedTtlMs, 600_000, 1),
      leaseMs: positive('leaseMs', options.leaseMs, 3_000, 100),
      blockMs: positive('blockMs', options.blockMs, 1_000, 1),
      writeTimeoutMs: positive('writeTimeoutMs', options.writeTimeoutMs, 2_000),
      replicaIdleMs: positive('replicaIdleMs', options.replicaIdleMs, 10_000, 0),
      maxReplicas: positive('maxReplicas', options.maxReplicas, 10_000, 1),
      connectTimeoutMs: positive('connectTimeoutMs', options.connectTimeoutMs, 5_000),
    };
    const connectTimeout = this.#o.connectTimeoutMs;
    this.#client = createClient({
      url: options.url,
      // Fail at once while disconnected instead of queueing without bound: writers count the loss.
      disableOfflineQueue: true,
      socket: {
        connectTimeout,
        reconnectStrategy: (retries: number, cause: Error) =>
          this.#connected ? Math.min(100 * 2 ** Math.min(retries, 5), 2_000) : new SluiceError('unavailable', cause.message),
      },
    });
    this.#reader = this.#client.duplicate();
    this.#subscriber = this.#client.duplicate();
    for (const client of [this.#client, this.#reader, this.#subscriber]) client.on('error', (error: Error) => this.#reportError(error));
    this.#client.on('ready', () => {
      if (this.#connected) void this.#beat();
    });
    this.#tail = new StreamTail({
      reader: this.#reader as unknown as CommandClient,
      commands: this.#client as unknown as CommandClient,
      blockMs: this.#o.blockMs,
      count: 64,
      logger: this.#logger,
    });
    this.log = {
      append: (run, owner) => this.#append(run, owner),
      open: (runId) => this.#open(runId),
      peek: (runId) => this.#opened.get(runId)?.run,
    };
    this.control = {
      listen: (handler) => {
        this.#handler = handler;
      },
      ack: (responseId, allowed) => this.#ack(responseId, allowed),
    };
  }

  /** @internal Connects the three connections, subscribes, starts the heartbeat. */
  async connect(): Promise<void> {
    try {
      await this.#client.connect();
      await Promise.all([this.#reader.connect(), this.#subscriber.connect()]);
      const version = String(await this.#client.sendCommand(['INFO', 'server'])).match(/redis_version:(\d+)/)?.[1];
      if (version !== undefined && Number(version) < 7) throw new Error(`Redis ${version} is too old: Sluice needs Redis 7 or later`);
    } catch (error) {
      await this.#disconnect();
      throw new SluiceError('unavailable', `Cannot connect to Redis at ${redactUrl(this.#url)}: ${(error as Error).message}`, { cause: error });
    }
    this.#connected = true;
    for (const script of [APPEND_SCRIPT, XADD_MANY_SCRIPT]) this.#shas.set(script, await this.#send<string>(['SCRIPT', 'LOAD', script]));
    await this.#subscriber.subscribe(this.keys.channel(this.instanceId), (message: string) => this.#apply(message));
    await this.#tail.start();
    await this.#beat();
    this.#heartbeat = setInterval(() => void this.#beat(), Math.max(50, Math.floor(this.#o.leaseMs / 3)));
    this.#watch = setInterval(() => void this.#checkOwners(), Math.max(50, Math.min(250, Math.floor(this.#o.leaseMs / 4))));
    this.#heartbeat.unref();
    this.#watch.unref();
  }

  /** TTL of a running run's keys, in ms. */
  get runningTtlMs(): number {
    return this.#o.runningTtlMs;
  }

  /** An instance's lease, in ms (also the lease of the app step locks). */
  get leaseMs(): number {
    return this.#o.leaseMs;
  }

  /** Sends one command on the shared command connection (for stores beside the log, e.g. chats). */
  command<T = unknown>(args: string[]): Promise<T> {
    return this.#send<T>(args);
  }

  /** Runs a Lua script on the command connection (by SHA once Redis knows it). */
  script<T = unknown>(script: string, keys: string[], args: string[]): Promise<T> {
    return this.#evalScript(script, keys, args) as Promise<T>;
  }

  /** Local runs being written, and remote runs followed. */
  get activity(): { writing: number; following: number } {
    return { writing: this.#writers.size, following: this.#tail.size };
  }

  /**
   * Stops: waits (up to `writeTimeoutMs`) for the writers of runs that already ended, gives up the
   * lease (so other instances learn at once that this one's unfinished runs are lost), closes.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#heartbeat !== null) clearInterval(this.#heartbeat);
    if (this.#watch !== null) clearInterval(this.#watch);
    for (const opened of this.#opened.values()) if (opened.idleTimer !== null) clearTimeout(opened.idleTimer);
    await this.#tail.close();
    const pending = [...this.#writers].map((writer) => writer.run.done);
    await Promise.race([Promise.allSettled(pending), new Promise((resolve) => setTimeout(resolve, this.#o.writeTimeoutMs).unref())]);
    await this.#send(['DEL', this.keys.lease(this.instanceId)]).catch(() => {});
    await this.#disconnect();
  }

  async #disconnect(): Promise<void> {
    await Promise.allSettled([this.#client, this.#reader, this.#subscriber].map((c) => (c.isOpen ? c.close() : Promise.resolve())));
  }

  #reportError(error: Error): void {
    const now = Date.now();
    if (!this.#connected || now - this.#lastError < 5_000) return;
    this.#lastError = now;
    this.#logger.warn({ err: error, url: redactUrl(this.#url) }, `Redis connection problem: ${error.message}`);
  }

  #send<T = unknown>(args: string[]): Promise<T> {
    return this.#client.sendCommand(args, { timeout: this.#o.writeTimeoutMs }) as Promise<T>;
  }

  readonly #shas = new Map<string, string>();

  /** A script by SHA; sent in full (and loaded again) when Redis does not know it (after a restart). */
  async #evalScript(script: string, keys: string[], args: string[]): Promise<unknown> {
    const sha = this.#shas.get(script);
    if (sha !== undefined) {
      try {
        return await this.#send(['EVALSHA', sha, String(keys.length), ...keys, ...args]);
      } catch (error) {
        if (!/NOSCRIPT/.test((error as Error).message)) throw error;
        this.#shas.delete(script);
      }
    }
    const reply = await this.#send(['EVAL', script, String(keys.length), ...keys, ...args]);
    // EVAL loaded it: its SHA works from now on.
    this.#shas.set(script, createHash('sha1').update(script).digest('hex'));
    return reply;
  }

  #xaddQueue: { log: string; id: string; fields: string[]; resolve(value: unknown): void; reject(error: Error): void }[] = [];

  /** Queues an append to an existing stream; the queue goes in one call at the end of the tick. */
  #queueXadd(log: string, id: string, fields: string[]): Promise<unknown> {
    return new Promise((resolve, reject) => {
      if (this.#xaddQueue.length === 0) setImmediate(() => this.#flushXadds());
      this.#xaddQueue.push({ log, id, fields, resolve, reject });
    });
  }

  #flushXadds(): void {
    const queue = this.#xaddQueue;
    this.#xaddQueue = [];
    for (let i = 0; i < queue.length; i += 500) {
      const part = queue.slice(i, i + 500);
      const args = [String(this.#o.maxLen)];
      for (const entry of part) args.push(entry.id, entry.fields[1]!, entry.fields[3] ?? '');
      this.stats.commands++;
      this.#evalScript(
        XADD_MANY_SCRIPT,
        part.map((entry) => entry.log),
        args,
      ).then(
        (replies) => {
          part.forEach((entry, j) => {
            const reply = (replies as unknown[])[j];
            if (reply === 1) entry.resolve(1);
            else if (reply === 0) entry.resolve(null);
            else entry.reject(new Error(String(reply)));
          });
        },
        (error: Error) => {
          for (const entry of part) entry.reject(error);
        },
      );
    }
  }

  // ── log: writing this instance's runs ────────────────────────────────────────────────────

  #writerContext: WriterContext | null = null;

  #append(run: Run, owner: string | undefined): void {
    this.#writerContext ??= {
      send: (args) => this.#send(args),
      append: (keys, args) => this.#evalScript(APPEND_SCRIPT, keys, args),
      xadd: (log, id, fields) => this.#queueXadd(log, id, fields),
      keys: this.keys,
      instanceId: this.instanceId,
      coalesceMs: this.#o.coalesceMs,
      maxLen: this.#o.maxLen,
      maxEventsPerEntry: this.#o.maxEventsPerEntry,
      maxInFlight: this.#o.maxInFlight,
      runningTtlMs: this.#o.runningTtlMs,
      endedTtlMs: this.#o.endedTtlMs,
      logger: this.#logger,
      stats: this.stats,
      fenced: (lost) => {
        lost.cancel(new SluiceError('unavailable', `producer lost: run ${lost.id} was ended by another instance`, { details: { reason: 'producer_lost' } }));
      },
      finished: (writer) => this.#writers.delete(writer),
    };
    const writer = new RunLogWriter(this.#writerContext, run, owner ?? run.owner);
    this.#writers.add(writer);
    void writer.start();
  }

  // ── log: reading runs produced elsewhere ─────────────────────────────────────────────────

  #open(runId: string): Promise<Run | undefined> {
    const opened = this.#opened.get(runId);
    if (opened !== undefined) return Promise.resolve(opened.run);
    let opening = this.#opening.get(runId);
    if (opening === undefined) {
      if (!this.#makeRoom()) {
        return Promise.reject(
          new SluiceError('resource_exhausted', `This instance already follows ${this.#o.maxReplicas} runs of other instances; try again later`, {
            details: { reason: 'too_many_replicas', limit: this.#o.maxReplicas, retryAfterSeconds: 1 },
          }),
        );
      }
      opening = this.#load(runId).finally(() => this.#opening.delete(runId));
      this.#opening.set(runId, opening);
    }
    return opening;
  }

  async #load(runId: string): Promise<Run | undefined> {
    if (this.#closed) return undefined;
    let meta: Record<string, string> = {};
    try {
      // Not there yet may mean not registered yet (see LOOKUP_WAITS_MS): look again, briefly.
      for (let wait = 0; ; wait++) {
        meta = fieldsOf(await this.#send(['HGETALL', this.keys.meta(runId)]));
        if (meta.state !== undefined || wait === LOOKUP_WAITS_MS.length || this.#closed) break;
        await new Promise((resolve) => setTimeout(resolve, LOOKUP_WAITS_MS[wait]));
      }
    } catch (error) {
      throw new SluiceError('unavailable', `Cannot read run ${runId} from Redis: ${(error as Error).message}`, { cause: error });
    }
    if (meta.state === undefined) return undefined;
    const log = this.keys.log(runId);
    let run: ReplicaRun | undefined;
    let start = '-';
    for (;;) {
      let page: [string, string[]][];
      try {
        page = (await this.#send<[string, string[]][]>(['XRANGE', log, start, '+', 'COUNT', '512'])) ?? [];
      } catch (error) {
        throw new SluiceError('unavailable', `Cannot read run ${runId} from Redis: ${(error as Error).message}`, { cause: error });
      }
      for (const [id, fields] of page) {
        const events = decodeEntry(runId, id, fields);
        run ??= this.#replica(runId, meta, events[0]!.seq - 1);
        for (const event of events) {
          try {
            run.feed(event);
          } catch {
            run.fail(historyGone(runId, `events after ${run.lastSeq} are missing from the shared log`));
            break;
          }
        }
        start = `(${id}`;
      }
      if (page.length < 512 || run?.state === 'ended') break;
    }
    if (run === undefined) {
      if (meta.state !== 'running') throw historyGone(runId, 'its events expired from the shared log');
      run = this.#replica(runId, meta, 0);
    }
    if (run.state !== 'ended') this.#follow(run);
    return run;
  }

  #replica(runId: string, meta: Record<string, string>, after: number): ReplicaRun {
    const run = new ReplicaRun({ ...this.#runOptions, id: runId, action: meta.action ?? '', owner: meta.owner }, after, this);
    const opened: Opened = { run, instance: meta.instance ?? '', paused: false, idleTimer: null };
    this.#opened.set(runId, opened);
    // No reader yet: dropped after the idle time unless one subscribes.
    this.idle(run);
    return run;
  }

  #follow(run: ReplicaRun): void {
    const opened = this.#opened.get(run.id)!;
    const key = this.keys.log(run.id);
    this.#tail.follow({
      key,
      cursor: () => run.lastSeq,
      ready: () => !opened.paused && run.state !== 'ended',
      deliver: (entries) => {
        for (const [id, fields] of entries) {
          for (const event of decodeEntry(run.id, id, fields)) {
            let wait: Promise<void> | undefined;
            try {
              wait = run.feed(event);
            } catch {
              run.fail(historyGone(run.id, `events after ${run.lastSeq} are missing from the shared log`));
              this.#tail.unfollow(key);
              return;
            }
            if (wait !== undefined && !opened.paused) {
              opened.paused = true;
              void wait.then(() => {
                opened.paused = false;
                this.#tail.rearm();
              });
            }
          }
        }
        if (run.state === 'ended') this.#tail.unfollow(key);
      },
    });
  }

  /** Room for one more copy: drops copies nobody reads (oldest first) when at the cap; false when all are read. */
  #makeRoom(): boolean {
    if (this.#opened.size + this.#opening.size < this.#o.maxReplicas) return true;
    for (const [runId, opened] of this.#opened) {
      if (opened.run.subscribers.size > 0) continue;
      this.#forget(runId, opened);
      if (this.#opened.size + this.#opening.size < this.#o.maxReplicas) return true;
    }
    return false;
  }

  #forget(runId: string, opened: Opened): void {
    if (opened.idleTimer !== null) clearTimeout(opened.idleTimer);
    opened.idleTimer = null;
    this.#opened.delete(runId);
    this.#tail.unfollow(this.keys.log(runId));
  }

  /** @internal ReplicaSource: no reader left on a copy; drop it after the idle time. */
  idle(run: ReplicaRun): void {
    const opened = this.#opened.get(run.id);
    if (opened === undefined || opened.run !== run) return;
    if (opened.idleTimer !== null) clearTimeout(opened.idleTimer);
    opened.idleTimer = setTimeout(() => {
      opened.idleTimer = null;
      if (run.subscribers.size > 0 || this.#opened.get(run.id) !== opened) return;
      this.#forget(run.id, opened);
    }, this.#o.replicaIdleMs);
    opened.idleTimer.unref();
  }

  // ── control ──────────────────────────────────────────────────────────────────────────────

  /** @internal ReplicaSource: a reader here stopped a run produced elsewhere. */
  requestCancel(run: ReplicaRun, reason: SluiceError): void {
    void this.#sendControl(run.id, { op: 'cancel', runId: run.id, message: reason.message }).catch((error: unknown) => {
      this.#logger.warn({ err: error, runId: run.id }, `Cancel of run ${run.id} could not be sent to its instance: ${(error as Error).message}`);
    });
  }

  async #ack(responseId: string, allowed: (owner: string | undefined) => boolean): Promise<boolean> {
    let runId = await this.#send<string | null>(['GET', this.keys.response(responseId)]);
    // The client may have the stream (from its producer's memory) a moment before the producer's
    // log writer registered it: look again, briefly, before calling the stream unknown.
    for (let wait = 0; runId === null && wait < LOOKUP_WAITS_MS.length; wait++) {
      await new Promise((resolve) => setTimeout(resolve, LOOKUP_WAITS_MS[wait]));
      runId = await this.#send<string | null>(['GET', this.keys.response(responseId)]);
    }
    if (runId === null) return false;
    const owner = await this.#send<string | null>(['HGET', this.keys.meta(runId), 'owner']);
    if (!allowed(owner ?? undefined)) return false;
    return this.#sendControl(runId, { op: 'ack', responseId });
  }

  /** Sends a control message to the run's owner; false when the run is not running elsewhere. */
  async #sendControl(runId: string, message: ControlMessage): Promise<boolean> {
    const [state, instance] = await this.#send<(string | null)[]>(['HMGET', this.keys.meta(runId), 'state', 'instance']);
    if (state !== 'running' || instance === null || instance === undefined) return false;
    // This instance's own run: the executor already tried it locally.
    if (instance === this.instanceId) return false;
    const text = JSON.stringify(message);
    const list = this.keys.controls(instance);
    await Promise.all([
      this.#send(['RPUSH', list, text]),
      this.#send(['PEXPIRE', list, String(this.#o.leaseMs * 10)]),
      this.#send(['PUBLISH', this.keys.channel(instance), text]),
    ]);
    return true;
  }

  #apply(text: string): void {
    let message: ControlMessage;
    try {
      message = JSON.parse(text) as ControlMessage;
    } catch {
      return;
    }
    const handler = this.#handler;
    if (handler === null) return;
    if (message.op === 'cancel' && typeof message.runId === 'string') handler.cancel(message.runId, message.message ?? 'Cancelled by the client');
    else if (message.op === 'ack' && typeof message.responseId === 'string') handler.ack(message.responseId);
  }

  // ── leases ───────────────────────────────────────────────────────────────────────────────

  /** Renews this instance's lease, applies control marks, renews the TTL of long runs. */
  async #beat(): Promise<void> {
    if (this.#closed) return;
    const o = this.#o;
    try {
      const [, marks] = await Promise.all([
        this.#send(['SET', this.keys.lease(this.instanceId), '1', 'PX', String(o.leaseMs)]),
        this.#send<string[] | null>(['LPOP', this.keys.controls(this.instanceId), '100']),
      ]);
      for (const mark of marks ?? []) this.#apply(mark);
      const now = Date.now();
      for (const writer of this.#writers) {
        if (writer.ttlSetAt === 0 || now - writer.ttlSetAt < o.runningTtlMs / 2) continue;
        writer.ttlSetAt = now;
        const ttl = String(o.runningTtlMs);
        void this.#send(['PEXPIRE', this.keys.log(writer.run.id), ttl]).catch(() => {});
        void this.#send(['PEXPIRE', this.keys.meta(writer.run.id), ttl]).catch(() => {});
      }
    } catch {
      // Reported by the connection's error listener; the next beat retries.
    }
  }

  /**
   * Ends the followed runs whose producing instance lost its lease, and those whose history
   * vanished (Redis restarted empty); when Redis stays unreachable longer than a lease, ends every
   * followed run with `unavailable` rather than leave its readers waiting.
   */
  async #checkOwners(): Promise<void> {
    if (this.#closed) return;
    const byInstance = new Map<string, Opened[]>();
    const live: Opened[] = [];
    for (const opened of this.#opened.values()) {
      if (opened.run.state === 'ended' || opened.instance === this.instanceId) continue;
      live.push(opened);
      const list = byInstance.get(opened.instance);
      if (list === undefined) byInstance.set(opened.instance, [opened]);
      else list.push(opened);
    }
    if (live.length === 0) {
      this.#unreachableSince = 0;
      return;
    }
    try {
      const instances = [...byInstance.keys()];
      const [alive, exists] = await Promise.all([
        Promise.all(instances.map((id) => this.#send<number>(['EXISTS', this.keys.lease(id)]))),
        Promise.all(live.map((opened) => this.#send<number>(['EXISTS', this.keys.meta(opened.run.id)]))),
      ]);
      this.#unreachableSince = 0;
      live.forEach((opened, i) => {
        if (Number(exists[i]) === 0) opened.run.fail(historyGone(opened.run.id, 'the shared log lost it'));
      });
      const claims: Promise<unknown>[] = [];
      instances.forEach((instance, i) => {
        if (Number(alive[i]) === 1) return;
        for (const opened of byInstance.get(instance)!) if (opened.run.state !== 'ended') claims.push(this.#claim(opened, instance));
      });
      await Promise.all(claims);
    } catch (error) {
      const now = Date.now();
      if (this.#unreachableSince === 0) this.#unreachableSince = now;
      else if (now - this.#unreachableSince > this.#o.leaseMs) {
        const lost = new SluiceError('unavailable', `The shared log (Redis) is unreachable: ${(error as Error).message}; resume later`, {
          details: { reason: 'log_unavailable' },
        });
        for (const opened of live) opened.run.fail(lost);
      }
    }
  }

  async #claim(opened: Opened, instance: string): Promise<void> {
    const runId = opened.run.id;
    const message = `producer lost: the instance running ${opened.run.action || 'the action'} stopped (its lease expired)`;
    const events = JSON.stringify([
      { type: 'error', code: 'unavailable', message, reason: 'producer_lost', actionName: opened.run.action || undefined },
      { type: 'run-end', reason: 'error' },
    ]);
    const result = await this.#send<number>(['EVAL', CLAIM_SCRIPT, '2', this.keys.meta(runId), this.keys.log(runId), instance, events, String(this.#o.endedTtlMs)]);
    if (Number(result) >= 0) this.#logger.warn({ runId, instance }, `Run ${runId}: its producer (instance ${instance}) was lost; ended it`);
    // Whoever won the claim, the tail delivers the end; make sure it reads now.
    this.#tail.rearm();
  }
}

/** HGETALL's reply as an object (RESP2 flat array or RESP3 map). */
function fieldsOf(reply: unknown): Record<string, string> {
  if (reply === null || reply === undefined) return {};
  if (Array.isArray(reply)) {
    const out: Record<string, string> = {};
    for (let i = 0; i + 1 < reply.length; i += 2) out[String(reply[i])] = String(reply[i + 1]);
    return out;
  }
  if (reply instanceof Map) return Object.fromEntries([...reply.entries()].map(([k, v]) => [String(k), String(v)]));
  return reply as Record<string, string>;
}
