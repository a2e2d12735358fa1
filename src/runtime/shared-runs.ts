/**
 * The seam between the executor and where runs live: an event log (where the events of the runs
 * this instance produces are appended, and where runs produced elsewhere are read) and a control
 * bus (cancel and barge-in for runs another instance owns). The default, {@link LOCAL_RUNS}, is the
 * embedded mode: every run lives in this process's memory and nothing else exists. `sluice/stores`
 * has the Redis implementation (`connectRedisRuns`), which several instances share.
 *
 * Transports and channels never see this: they ask the executor (`findRun`, `cancel`,
 * `acknowledge`) and get a {@link Run} either way.
 * @module
 */

import type { Run } from './run.ts';

/** Where runs' events are kept beyond this process's memory. */
export interface EventLog {
  /**
   * Called by the executor, synchronously, for every run it starts, before the action runs: the
   * log starts copying the run's events (as one more reader, so a slow log holds the producer
   * back like a slow reader does). `owner` is recorded as the run's owner instead of `run.owner`
   * (an application step's run is owned by its app).
   */
  append(run: Run, owner?: string): void;
  /**
   * A run this executor does not hold (started by another instance, or no longer in memory): a
   * {@link Run} that replays the log and follows it live, or undefined when the log does not know
   * the run. Rejects with `unavailable` when the log cannot be reached.
   */
  open(runId: string): Promise<Run | undefined>;
  /** A run already opened by {@link EventLog.open} on this instance, if any. */
  peek(runId: string): Run | undefined;
}

/** What the control bus hands to the executor for runs it owns. */
export interface ControlHandler {
  /** Stop the run (its message becomes the cancel reason). */
  cancel(runId: string, message: string): void;
  /** Barge in on the stream `responseId`. */
  ack(responseId: string): void;
}

/** Delivers cancel and barge-in to the instance that owns a run. */
export interface ControlBus {
  /** The executor registers here for the control messages addressed to its runs. */
  listen(handler: ControlHandler): void;
  /**
   * Barge-in on a stream this instance does not produce: true when the stream's run is live
   * somewhere else, `allowed` accepts its owner, and the ack was sent to it.
   */
  ack(responseId: string, allowed: (owner: string | undefined) => boolean): Promise<boolean>;
}

/** The event log and control bus an executor uses (`ExecutorOptions.shared`). */
export interface SharedRuns {
  readonly log: EventLog;
  readonly control: ControlBus;
}

/** The embedded mode: runs live in the executor's memory only, so there is nothing to share. */
export const LOCAL_RUNS: SharedRuns = Object.freeze({
  log: Object.freeze({
    append(): void {},
    open: (): Promise<Run | undefined> => Promise.resolve(undefined),
    peek: (): Run | undefined => undefined,
  }),
  control: Object.freeze({
    listen(): void {},
    ack: (): Promise<boolean> => Promise.resolve(false),
  }),
});
