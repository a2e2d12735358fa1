/**
 * Tracking: one record per step with its stream statistics (time to first item, item count,
 * duration, outcome). A tracker is a {@link LifecycleHooks} that records `postRunStep`, so it
 * adds nothing per item. `SQLiteTracker` (`src/stores/`) is the default store, `PostgresTracker`
 * the one several server instances share; the route `GET /apps/:appId/runs` calls
 * {@link StepTracker.listRuns}.
 * @module
 */

import { SluiceError } from '../protocol/errors.ts';
import type { LifecycleHooks, PostRunStepEvent, StepStatus } from './hooks.ts';

/** A tracked step. Times are epoch milliseconds (one clock for all of them). */
export interface TrackedStep {
  appId: string;
  partitionKey: string;
  sequenceId: number;
  action: string;
  runId: string;
  status: StepStatus;
  startedAt: number;
  endedAt: number;
  durationMs: number;
  /** True when the action streams (whether it was the stream target or ran through). */
  streamed: boolean;
  /** From the stream's start to its first item; null without items or for non-streaming actions. */
  timeToFirstItemMs: number | null;
  itemCount: number;
  /** From the stream's start to its end; null for non-streaming actions. */
  streamDurationMs: number | null;
  /** The error's public message (failed), or the cancel reason (interrupted). */
  error: string | null;
  /** The committed state after the step (the state before it when it failed), as JSON; undefined when not recorded. */
  state?: unknown;
  /** The step's result (partial when interrupted), as JSON; undefined when not recorded or none. */
  result?: unknown;
}

/** An app instance a tracker has steps of (for a tracking view). */
export interface TrackedApp {
  appId: string;
  partitionKey: string;
  steps: number;
  lastEndedAt: number;
  /** Status of the newest step. */
  lastStatus: StepStatus;
}

/** Options of {@link StepTracker.listRuns}. */
export interface ListRunsOptions {
  partitionKey?: string;
  /** Most records, newest first (default 100). */
  limit?: number;
}

/** Records steps and lists them. */
export interface StepTracker extends LifecycleHooks {
  /** The app's tracked steps, newest first. */
  listRuns(appId: string, options?: ListRunsOptions): TrackedStep[] | Promise<TrackedStep[]>;
  /** The app instances with tracked steps, most recently active first (at most `limit`, default 100). */
  listApps?(options?: { limit?: number }): TrackedApp[] | Promise<TrackedApp[]>;
}

/** A value as plain JSON (what the tracker stores), or undefined when it is not JSON-serializable. */
export function jsonCopy(value: unknown): unknown {
  if (value === undefined) return undefined;
  try {
    const text = JSON.stringify(value);
    return text === undefined ? undefined : (JSON.parse(text) as unknown);
  } catch {
    return undefined;
  }
}

/** The public message of an error (a SluiceError's message, else the error's own). */
export function errorMessage(error: unknown): string | null {
  if (error === undefined || error === null) return null;
  if (SluiceError.isInstance(error)) return error.message;
  if (error instanceof Error) return error.message || error.name;
  return String(error);
}

/** The tracking record of a `postRunStep` event. */
export function trackedStepOf(event: PostRunStepEvent): TrackedStep {
  const stream = event.stream;
  return {
    appId: event.appId,
    partitionKey: event.partitionKey,
    sequenceId: event.sequenceId,
    action: event.action,
    runId: event.run.id,
    status: event.status,
    startedAt: event.startedAt,
    endedAt: event.endedAt,
    durationMs: event.endedAt - event.startedAt,
    streamed: stream !== undefined,
    timeToFirstItemMs: stream?.firstItemAt != null ? stream.firstItemAt - stream.startedAt : null,
    itemCount: stream?.itemCount ?? 0,
    streamDurationMs: stream !== undefined ? stream.endedAt - stream.startedAt : null,
    error: errorMessage(event.error),
    state: jsonCopy(event.state),
    result: jsonCopy(event.result),
  };
}

/** Keeps tracked steps in memory (tests, demos). */
export class MemoryTracker implements StepTracker {
  readonly records: TrackedStep[] = [];

  postRunStep(event: PostRunStepEvent): void {
    this.records.push(trackedStepOf(event));
  }

  listRuns(appId: string, options: ListRunsOptions = {}): TrackedStep[] {
    return this.records
      .filter((r) => r.appId === appId && (options.partitionKey === undefined || r.partitionKey === options.partitionKey))
      .sort((a, b) => b.sequenceId - a.sequenceId || b.endedAt - a.endedAt)
      .slice(0, options.limit ?? 100);
  }

  listApps(options: { limit?: number } = {}): TrackedApp[] {
    const apps = new Map<string, TrackedApp>();
    for (const r of this.records) {
      const key = `${r.appId}\u0000${r.partitionKey}`;
      const app = apps.get(key);
      if (app === undefined) apps.set(key, { appId: r.appId, partitionKey: r.partitionKey, steps: 1, lastEndedAt: r.endedAt, lastStatus: r.status });
      else {
        app.steps++;
        if (r.endedAt >= app.lastEndedAt) {
          app.lastEndedAt = r.endedAt;
          app.lastStatus = r.status;
        }
      }
    }
    return [...apps.values()].sort((a, b) => b.lastEndedAt - a.lastEndedAt).slice(0, options.limit ?? 100);
  }
}
