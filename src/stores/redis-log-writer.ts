/**
 * Copies one local run's events into its Redis stream. The writer is one more reader of the run, a
 * trailing one: it takes only what a reader here has been handed (everything when none is left),
 * so a cancel or a late barge-in drops from the run only what the log never got. It reads what is
 * there, holds text chunks for a short window so that one entry carries many of them
 * (any other event — status, tool, message, result, error, end — is written at once, with what
 * waits before it), and pipelines its appends, at most `maxInFlight` unanswered. When Redis is slow
 * the writer stops reading, the run's buffer fills and its producer waits: memory stays bounded.
 * When Redis fails, the writer goes on reading (local readers keep streaming) and the events it
 * could not write are missing from the shared log, which readers elsewhere see as a gap (an
 * error), never silently.
 * @module
 */

import { SluiceError } from '../protocol/errors.ts';
import type { SluiceEvent } from '../protocol/events.ts';
import type { Logger } from '../runtime/logger.ts';
import type { Run } from '../runtime/run.ts';
import type { Subscription } from '../runtime/subscription.ts';
import { encodeEntry } from './redis-codec.ts';
import type { RedisKeys } from './redis-keys.ts';

/** What a {@link RunLogWriter} shares with the others of its instance. */
export interface WriterContext {
  /** Sends one command (pipelined with the others of the same tick), with the write timeout. */
  send(args: string[]): Promise<unknown>;
  /** Runs {@link APPEND_SCRIPT} (by its SHA, loaded once). */
  append(keys: [string, string], args: string[]): Promise<unknown>;
  /**
   * Appends an entry to an existing stream, batched with the other writers' entries of the same
   * tick into one call; resolves 1, or null when the stream is gone; rejects with Redis's error.
   */
  xadd(log: string, id: string, fields: string[]): Promise<unknown>;
  keys: RedisKeys;
  instanceId: string;
  coalesceMs: number;
  maxLen: number;
  maxEventsPerEntry: number;
  maxInFlight: number;
  runningTtlMs: number;
  endedTtlMs: number;
  logger: Logger;
  /** Counters for the benchmark and metrics. */
  stats: { events: number; entries: number; commands: number; lostEvents: number };
  /** Another instance took the run over (its producer was thought lost): stop it here. */
  fenced(run: Run): void;
  /** The writer is done (the run ended and everything was sent). */
  finished(writer: RunLogWriter): void;
}

type Next = IteratorResult<SluiceEvent, undefined>;
const TIMED_OUT = null;

/**
 * The first and the last append of a run, in one call each: the metadata hash with the first
 * entry (and both keys' running TTL), the final state with the last entry (and the ended TTL).
 * `nil` when a later entry finds the stream gone (the writer then counts its events as lost).
 * KEYS: meta, log. ARGV: first (0/1), ended (0/1), maxLen, id, d, r ('' for none), running TTL,
 * ended TTL, last seq, end reason, then the metadata's field/value pairs.
 */
export const APPEND_SCRIPT = `
local first = ARGV[1] == '1'
if first then
  redis.call('HSET', KEYS[1], unpack(ARGV, 11))
elseif redis.call('EXISTS', KEYS[2]) == 0 then
  return false
end
local x = {'XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], ARGV[4], 'd', ARGV[5]}
if ARGV[6] ~= '' then x[#x + 1] = 'r'; x[#x + 1] = ARGV[6] end
redis.call(unpack(x))
if ARGV[2] == '1' then
  redis.call('HSET', KEYS[1], 'state', 'ended', 'last', ARGV[9], 'reason', ARGV[10])
  redis.call('PEXPIRE', KEYS[1], ARGV[8])
  redis.call('PEXPIRE', KEYS[2], ARGV[8])
elseif first then
  redis.call('PEXPIRE', KEYS[1], ARGV[7])
  redis.call('PEXPIRE', KEYS[2], ARGV[7])
end
return 1
`;

/**
 * Appends entries to several existing streams in one call (the entries of every writer of an
 * instance issued in the same tick). KEYS: the streams; ARGV: maxLen, then per key id, d, r ('' for
 * none). Per entry: 1, 0 when the stream is gone, or Redis's error text.
 */
export const XADD_MANY_SCRIPT = `
local out = {}
for i = 1, #KEYS do
  local a = 2 + (i - 1) * 3
  if redis.call('EXISTS', KEYS[i]) == 0 then
    out[i] = 0
  else
    local x = {'XADD', KEYS[i], 'MAXLEN', '~', ARGV[1], ARGV[a], 'd', ARGV[a + 1]}
    if ARGV[a + 2] ~= '' then x[#x + 1] = 'r'; x[#x + 1] = ARGV[a + 2] end
    local ok = redis.pcall(unpack(x))
    if type(ok) == 'table' and ok.err then out[i] = ok.err else out[i] = 1 end
  end
end
return out
`;

/**
 * True for an event that must not wait for the coalescing window: all but text chunks and what
 * opens a run or a stream (which the first chunks follow at once).
 */
function flushesAtOnce(event: SluiceEvent): boolean {
  const type = event.type;
  return type !== 'chunk' && type !== 'run-start' && type !== 'stream-start';
}


/** See the module notes. */
export class RunLogWriter {
  readonly run: Run;
  /** When the keys' running TTL was last set (the heartbeat renews it for long runs). */
  ttlSetAt = 0;
  readonly #ctx: WriterContext;
  readonly #sub: Subscription;
  #pending: Promise<Next> | null = null;
  #inFlight: Promise<unknown>[] = [];
  #created = false;
  #fenced = false;
  #warned = false;
  #responseIds: string[] = [];

  /** Recorded as the run's owner (who may read and stop it from other instances). */
  readonly #owner: string | undefined;

  constructor(ctx: WriterContext, run: Run, owner: string | undefined = run.owner) {
    this.#ctx = ctx;
    this.run = run;
    this.#owner = owner;
    // Trailing: what no client here has been handed stays out of the log, so a cancel or a late
    // barge-in cuts it as on one instance (the log never holds events the run then drops).
    this.#sub = run.subscribe({ trailing: true });
  }

  /** Starts copying; resolves once `run-end` was sent (or could not be). Never rejects. */
  async start(): Promise<void> {
    try {
      await this.#loop();
    } catch (error) {
      this.#ctx.logger.error({ err: error, runId: this.run.id }, 'Run log writer failed');
    } finally {
      this.#sub.unsubscribe();
      await Promise.allSettled(this.#inFlight);
      this.#ctx.finished(this);
    }
  }

  async #loop(): Promise<void> {
    const ctx = this.#ctx;
    for (;;) {
      const next = await (this.#pending ?? this.#sub.next());
      this.#pending = null;
      if (next.done === true) return;
      const batch = [next.value];
      this.#drainInto(batch, 0);
      // The first entry goes at once: it creates the run's metadata, which readers elsewhere look up.
      if (ctx.coalesceMs > 0 && this.#created && !batch.some(flushesAtOnce)) await this.#coalesce(batch);
      for (let i = 0; i < batch.length; i += ctx.maxEventsPerEntry) this.#write(batch.slice(i, i + ctx.maxEventsPerEntry));
      while (this.#inFlight.length >= ctx.maxInFlight) await this.#inFlight[0];
      if (batch[batch.length - 1]!.type === 'run-end') return;
    }
  }

  /** Adds what the run already has to `batch`, registering new streams at once (see {@link RunLogWriter.#opened}). */
  #drainInto(batch: SluiceEvent[], from = batch.length): void {
    const more = this.#sub.drain();
    for (let i = 0; i < more.length; i++) batch.push(more[i]!);
    for (let i = from; i < batch.length; i++) {
      const event = batch[i]!;
      if (event.type === 'stream-start') this.#opened(event.responseId);
    }
  }

  /**
   * A stream started: its responseId → runId key is written at once, not with the (coalesced)
   * entry, so that an ack on another instance finds the run as soon as a reader has the stream.
   */
  #opened(responseId: string): void {
    this.#responseIds.push(responseId);
    this.#command(['SET', this.#ctx.keys.response(responseId), this.run.id, 'PX', String(this.#ctx.runningTtlMs)]);
  }

  /** Adds to `batch` what arrives within the window, until an event that flushes at once. */
  async #coalesce(batch: SluiceEvent[]): Promise<void> {
    const deadline = performance.now() + this.#ctx.coalesceMs;
    for (;;) {
      const left = deadline - performance.now();
      if (left <= 0 || batch.length >= this.#ctx.maxEventsPerEntry) return;
      this.#pending ??= this.#sub.next();
      const next = await within(this.#pending, left);
      if (next === TIMED_OUT) return;
      this.#pending = null;
      if (next.done === true) return;
      const from = batch.length;
      batch.push(next.value);
      this.#drainInto(batch, from);
      for (let i = from; i < batch.length; i++) if (flushesAtOnce(batch[i]!)) return;
    }
  }

  #write(events: SluiceEvent[]): void {
    const ctx = this.#ctx;
    ctx.stats.events += events.length;
    if (this.#fenced) return;
    const keys = ctx.keys;
    const runId = this.run.id;
    const entry = encodeEntry(events);
    const first = !this.#created;
    const last = events[events.length - 1]!;
    const ended = last.type === 'run-end';
    this.#created = true;
    ctx.stats.entries++;
    let sent: Promise<unknown>;
    if (!first && !ended) {
      sent = ctx.xadd(keys.log(runId), entry.id, entry.fields);
    } else {
      const args = [
        first ? '1' : '0',
        ended ? '1' : '0',
        String(ctx.maxLen),
        entry.id,
        entry.fields[1]!,
        entry.fields[3] ?? '',
        String(ctx.runningTtlMs),
        String(ctx.endedTtlMs),
        String(last.seq),
        ended ? (last as { reason: string }).reason : '',
      ];
      if (first) {
        args.push('action', this.run.action, 'state', 'running', 'instance', ctx.instanceId, 'started', String(Date.now()));
        if (this.#owner !== undefined) args.push('owner', this.#owner);
        this.ttlSetAt = Date.now();
      }
      ctx.stats.commands++;
      const append = (): Promise<unknown> => ctx.append([keys.meta(runId), keys.log(runId)], args);
      // The last entry must follow the ones still queued for the batched append (ids only grow).
      sent = first || this.#inFlight.length === 0 ? append() : Promise.allSettled(this.#inFlight).then(append);
    }
    this.#track(
      sent.then(
        (reply) => {
          if (reply === null || reply === undefined) this.#lost(events.length);
        },
        (error: unknown) => this.#failed(error, events.length),
      ),
    );
    if (ended) for (const id of this.#responseIds) this.#command(['PEXPIRE', keys.response(id), String(ctx.endedTtlMs)]);
  }

  /**
   * The stream vanished mid-run (Redis restarted, or the key was deleted): the entry is lost, and
   * the next write starts the stream and its metadata again. Readers elsewhere see the seq jump
   * and are told the history is gone; a resume from before the new start is refused.
   */
  #lost(count: number): void {
    this.#ctx.stats.lostEvents += count;
    if (this.#created) {
      this.#created = false;
      this.#ctx.logger.warn({ runId: this.run.id }, `The Redis log of run ${this.run.id} was lost; readers elsewhere are told its history is gone`);
    }
  }

  #failed(error: unknown, count: number): void {
    const message = error instanceof Error ? error.message : String(error);
    if (/equal or smaller than the target stream top item/i.test(message)) {
      // Another instance wrote past this one: it declared this producer lost and ended the run.
      this.#fenced = true;
      this.#ctx.logger.warn({ runId: this.run.id }, `Run ${this.run.id} was ended by another instance (this one was thought lost); stopping it`);
      this.#ctx.fenced(this.run);
      return;
    }
    this.#ctx.stats.lostEvents += count;
    if (!this.#warned) {
      this.#warned = true;
      this.#ctx.logger.warn(
        { runId: this.run.id, err: error },
        `Redis write failed for run ${this.run.id} (${message}); local readers go on, readers on other instances will get an error`,
      );
    }
  }

  #command(args: string[]): Promise<unknown> {
    this.#ctx.stats.commands++;
    const sent = this.#ctx.send(args);
    // Failures of the small commands are reported through the XADD that travels with them.
    sent.catch(() => {});
    return sent;
  }

  #track(promise: Promise<unknown>): void {
    const tracked: Promise<unknown> = promise.catch(() => {}).finally(() => {
      const i = this.#inFlight.indexOf(tracked);
      if (i >= 0) this.#inFlight.splice(i, 1);
    });
    this.#inFlight.push(tracked);
  }
}

/** Settles with `promise`'s value, or with null after `ms` (the promise is left running). */
function within<T>(promise: Promise<T>, ms: number): Promise<T | null> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(TIMED_OUT), ms);
    promise.then((value) => {
      clearTimeout(timer);
      resolve(value);
    });
  });
}

/** The error readers of a run on other instances get when the log lost some of its events. */
export function historyGone(runId: string, detail: string): SluiceError {
  return new SluiceError('out_of_range', `The history of run ${runId} is gone (${detail}); start over or reload`, {
    details: { reason: 'history_gone' },
  });
}
