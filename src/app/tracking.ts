/**
 * Tracking: one record per step with its stream statistics (time to first item, item count,
 * duration, outcome). A tracker is a {@link LifecycleHooks} that records `postRunStep`, so it
 * adds nothing per item. `SQLiteTracker` (`src/stores/`) is the default store; the later route
 * `GET /apps/:appId/runs` calls {@link StepTracker.listRuns}.
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
}
