/**
 * One step at a time across instances. On one instance the app routes know which app is busy from
 * memory; several instances behind a load balancer need a lock they all see, and a way to tell an
 * instance that its copy of an app is stale (another instance committed a step since).
 * `sluice/stores` has the Redis implementation (`RedisStepLocks`).
 *
 * The lock is a lease: its holder renews it while the step runs, and it expires when the holder
 * dies, so an app is never stuck behind a crashed instance for longer than the lease. It is not
 * what makes a double commit impossible: the persister's unique (app, sequence id) key is (see
 * `Persister`); the lock is what gives a second request the 409 a single instance gives.
 * @module
 */

import type { StepStatus } from './hooks.ts';

/** The step an app's lock holder runs: its run once known (null while the steps before it run through). */
export interface StepHolder {
  runId: string | null;
  action: string | null;
}

/** The last step an instance committed for an app, as recorded when it released the lock. */
export interface CommittedStep {
  sequenceId: number;
  action: string;
  status: StepStatus;
  runId: string;
}

/** A held lock. */
export interface StepLease {
  /** Names the step's run, so other instances can point a refused request at it. */
  setRun(runId: string, action: string): Promise<void>;
  /**
   * Gives the lock up and records the step committed under it (null: none was), so the next
   * holder knows whether its copy of the app is current. Never rejects.
   */
  release(committed: CommittedStep | null): Promise<void>;
}

/** What {@link StepLocks.acquire} and {@link StepLocks.inspect} tell about an app. */
export interface LockView {
  /** The holder, or null when the app is free (always null in a successful acquire). */
  holder: StepHolder | null;
  /** The app's last committed step as last recorded; undefined when unknown (never recorded, or expired). */
  committed: CommittedStep | undefined;
}

/** The step locks of a deployment (see the module notes). */
export interface StepLocks {
  /**
   * Takes the lock of the app `appKey`: the lease, or null (with the holder in `view`) when another
   * request holds it. Rejects with `unavailable` when the store cannot be reached.
   */
  acquire(appKey: string): Promise<{ lease: StepLease | null; view: LockView }>;
  /** The app's holder and last committed step, without taking the lock. */
  inspect(appKey: string): Promise<LockView>;
}
