/**
 * Copies one local run's events into its Redis stream. The writer is one more reader of the run: it
 * reads what is there, holds text chunks for a short window so that one entry carries many of them
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

/** True for an event that must not wait for the coalescing window. */
function flushesAtOnce(event: SluiceEvent): boolean {
  return event.type !== 'chunk';
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

  constructor(ctx: WriterContext, run: Run) {
    this.#ctx = ctx;
    this.run = run;
    this.#sub = run.subscribe();
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
      this.#drainInto(batch);
      if (ctx.coalesceMs > 0 && !batch.some(flushesAtOnce)) await this.#coalesce(batch);
      for (let i = 0; i < batch.length; i += ctx.maxEventsPerEntry) this.#write(batch.slice(i, i + ctx.maxEventsPerEntry));
      while (this.#inFlight.length >= ctx.maxInFlight) await this.#inFlight[0];
      if (batch[batch.length - 1]!.type === 'run-end') return;
    }
  }

  #drainInto(batch: SluiceEvent[]): void {
    const more = this.#sub.drain();
    for (let i = 0; i < more.length; i++) batch.push(more[i]!);
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
      this.#drainInto(batch);
      for (let i = from; i < batch.length; i++) if (flushesAtOnce(batch[i]!)) return;
    }
  }

  #write(events: SluiceEvent[]): void {
    const ctx = this.#ctx;
    ctx.stats.events += events.length;
    if (this.#fenced) return;
    const keys = ctx.keys;
    const runId = this.run.id;
    const log = keys.log(runId);
    const meta = keys.meta(runId);
    if (!this.#created) this.#sendMeta();
    for (const event of events) {
      if (event.type === 'stream-start') {
        this.#responseIds.push(event.responseId);
        this.#command(['SET', keys.response(event.responseId), runId, 'PX', String(ctx.runningTtlMs)]);
      }
    }
    const entry = encodeEntry(events);
    const xadd = this.#created
      ? ['XADD', log, 'NOMKSTREAM', 'MAXLEN', '~', String(ctx.maxLen), entry.id, ...entry.fields]
      : ['XADD', log, 'MAXLEN', '~', String(ctx.maxLen), entry.id, ...entry.fields];
    const first = !this.#created;
    this.#created = true;
    ctx.stats.entries++;
    const sent = this.#command(xadd).then(
      (reply) => {
        if (reply === null) this.#lost(events.length);
      },
      (error: unknown) => this.#failed(error, events.length),
    );
    this.#track(sent);
    if (first) {
      this.#command(['PEXPIRE', log, String(ctx.runningTtlMs)]);
      this.ttlSetAt = Date.now();
    }
    const last = events[events.length - 1]!;
    if (last.type === 'run-end') {
      const ttl = String(ctx.endedTtlMs);
      this.#command(['HSET', meta, 'state', 'ended', 'last', String(last.seq), 'reason', last.reason]);
      this.#command(['PEXPIRE', meta, ttl]);
      this.#command(['PEXPIRE', log, ttl]);
      for (const id of this.#responseIds) this.#command(['PEXPIRE', keys.response(id), ttl]);
    }
  }

  #sendMeta(): void {
    const ctx = this.#ctx;
    const run = this.run;
    const meta = ctx.keys.meta(run.id);
    const fields = ['HSET', meta, 'action', run.action, 'state', 'running', 'instance', ctx.instanceId, 'started', String(Date.now())];
    if (run.owner !== undefined) fields.push('owner', run.owner);
    this.#command(fields);
    this.#command(['PEXPIRE', meta, String(ctx.runningTtlMs)]);
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
