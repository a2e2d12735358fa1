/**
 * What an application saves after every step and loads to resume. Implementations live in
 * `src/stores/` (SQLite, PostgreSQL); {@link MemoryPersister} here is for tests and demos.
 * @module
 */

import { SluiceError } from '../protocol/errors.ts';
import type { StepStatus } from './hooks.ts';
import type { StateData } from './state.ts';

/** One committed step, as saved. Times are epoch milliseconds. */
export interface PersistedStep {
  appId: string;
  partitionKey: string;
  /** 0 for an app's first step; one row per id, no gaps. */
  sequenceId: number;
  /** The step's action. */
  action: string;
  status: StepStatus;
  /** The full state after the step (before it, for `failed`). */
  state: StateData;
  /** The step's result (JSON), or null. */
  result: unknown;
  /** Failed or interrupted: the error's public message. */
  error: string | null;
  startedAt: number;
  endedAt: number;
}

/** Which saved step to load. */
export interface LoadQuery {
  /** Without it: the newest step of any app in the partition. */
  appId?: string;
  partitionKey: string;
  /** Without it: the app's newest step. */
  sequenceId?: number;
}

/**
 * Saves steps and loads them back. `save` must be atomic and must reject a second row for the
 * same (appId, partitionKey, sequenceId) with a `SluiceError('already_exists')`: that is what
 * makes a double commit impossible, also across processes.
 */
export interface Persister {
  /** Creates tables etc.; called by `build()`. Idempotent. */
  initialize?(): void | Promise<void>;
  save(step: PersistedStep): void | Promise<void>;
  load(query: LoadQuery): PersistedStep | null | Promise<PersistedStep | null>;
  /** The app's steps, oldest first. */
  list(appId: string, partitionKey?: string): PersistedStep[] | Promise<PersistedStep[]>;
  /** App ids in a partition, most recently active first. */
  listAppIds(partitionKey?: string): string[] | Promise<string[]>;
  close?(): void | Promise<void>;
}

/** The error a persister throws for a second row with the same key. */
export function duplicateStep(step: Pick<PersistedStep, 'appId' | 'partitionKey' | 'sequenceId'>, cause?: unknown): SluiceError {
  return new SluiceError(
    'already_exists',
    `Step ${step.sequenceId} of app '${step.appId}' (partition '${step.partitionKey}') is already committed`,
    { cause, details: { reason: 'duplicate_step', appId: step.appId, partitionKey: step.partitionKey, sequenceId: step.sequenceId } },
  );
}

/** The statuses a persisted row may have. */
export const STEP_STATUSES: readonly StepStatus[] = Object.freeze(['completed', 'interrupted', 'failed']);

/** Keeps steps in memory (copied through JSON, like a real store). */
export class MemoryPersister implements Persister {
  #rows: PersistedStep[] = [];

  save(step: PersistedStep): void {
    if (!STEP_STATUSES.includes(step.status)) throw new SluiceError('invalid_argument', `Unknown step status '${String(step.status)}'`);
    if (this.#rows.some((r) => r.appId === step.appId && r.partitionKey === step.partitionKey && r.sequenceId === step.sequenceId)) {
      throw duplicateStep(step);
    }
    this.#rows.push(JSON.parse(JSON.stringify(step)) as PersistedStep);
  }

  load(query: LoadQuery): PersistedStep | null {
    let best: PersistedStep | null = null;
    for (const row of this.#rows) {
      if (row.partitionKey !== query.partitionKey) continue;
      if (query.appId !== undefined && row.appId !== query.appId) continue;
      if (query.sequenceId !== undefined && row.sequenceId !== query.sequenceId) continue;
      if (best === null || (query.appId === undefined ? row.endedAt >= best.endedAt : row.sequenceId > best.sequenceId)) best = row;
    }
    return best === null ? null : (JSON.parse(JSON.stringify(best)) as PersistedStep);
  }

  list(appId: string, partitionKey = ''): PersistedStep[] {
    return this.#rows
      .filter((r) => r.appId === appId && r.partitionKey === partitionKey)
      .sort((a, b) => a.sequenceId - b.sequenceId)
      .map((r) => JSON.parse(JSON.stringify(r)) as PersistedStep);
  }

  listAppIds(partitionKey = ''): string[] {
    const latest = new Map<string, number>();
    for (const r of this.#rows) if (r.partitionKey === partitionKey) latest.set(r.appId, Math.max(latest.get(r.appId) ?? 0, r.endedAt));
    return [...latest].sort((a, b) => b[1] - a[1]).map(([id]) => id);
  }
}
