/**
 * The step rows the SQL stores share: the key columns every step table has, the persisters'
 * table of committed steps and the trackers' table of step runs (their schemas, the values of one
 * row, and a row read back).
 * @module
 */

import type { PersistedStep } from '../app/persistence.ts';
import { STEP_STATUSES } from '../app/persistence.ts';
import type { TrackedApp, TrackedStep } from '../app/tracking.ts';

/** The columns that name a step, spelled alike in every step table. */
export interface StepKeyRow {
  app_id: string;
  partition_key: string;
  sequence_id: number;
  action: string;
}

/** The step a row names, as record fields. */
export function stepKeyOf(row: StepKeyRow): Pick<PersistedStep, 'appId' | 'partitionKey' | 'sequenceId' | 'action'> {
  return {
    appId: row.app_id,
    partitionKey: row.partition_key,
    // Drivers may hand integers back as strings or bigints.
    sequenceId: Number(row.sequence_id),
    action: row.action,
  };
}

/** How one SQL dialect spells the column types of the step table. */
export interface StepColumnTypes {
  text: string;
  integer: string;
  /** A JSON document. */
  json: string;
  /** A point in time. */
  time: string;
}

/**
 * `CREATE TABLE` (and its index) for a persister's step table, `IF NOT EXISTS`. One schema for
 * every dialect, so that every store rejects the same rows: the primary key makes a second commit
 * of a step fail, the checks refuse a negative sequence id and an unknown status.
 */
export function stepTableSql(table: string, types: StepColumnTypes): string {
  const { text, integer, json, time } = types;
  const statuses = STEP_STATUSES.map((s) => `'${s}'`).join(', ');
  return `
      CREATE TABLE IF NOT EXISTS "${table}" (
        app_id        ${text} NOT NULL,
        partition_key ${text} NOT NULL DEFAULT '',
        sequence_id   ${integer} NOT NULL CHECK (sequence_id >= 0),
        action        ${text} NOT NULL,
        status        ${text} NOT NULL CHECK (status IN (${statuses})),
        state         ${json} NOT NULL,
        result        ${json},
        error         ${text},
        started_at    ${time} NOT NULL,
        ended_at      ${time} NOT NULL,
        PRIMARY KEY (app_id, partition_key, sequence_id)
      );
      CREATE INDEX IF NOT EXISTS "${table}_partition_ended" ON "${table}" (partition_key, ended_at);
    `;
}

/** The columns of a step row, in the order of {@link stepRowValues}. */
export const STEP_ROW_COLUMNS = 'app_id, partition_key, sequence_id, action, status, state, result, error, started_at, ended_at';

/**
 * A step's values in the order of {@link STEP_ROW_COLUMNS}: JSON columns as text (a missing
 * result as SQL null), times as epoch milliseconds.
 */
export function stepRowValues(step: PersistedStep): (string | number | null)[] {
  return [
    step.appId,
    step.partitionKey,
    step.sequenceId,
    step.action,
    step.status,
    JSON.stringify(step.state),
    step.result === undefined || step.result === null ? null : JSON.stringify(step.result),
    step.error,
    step.startedAt,
    step.endedAt,
  ];
}

/** How one SQL dialect spells the column types of the tracker table. */
export interface TrackedColumnTypes extends StepColumnTypes {
  /** A duration in (fractional) milliseconds. */
  real: string;
  boolean: string;
}

/**
 * `CREATE TABLE` (and its index) for a tracker's table, `IF NOT EXISTS`: one row per step run,
 * keyed by the run id (a second record of a run is refused). No checks: a tracker records what
 * happened.
 */
export function trackedTableSql(table: string, types: TrackedColumnTypes): string {
  const { text, integer, json, time, real, boolean } = types;
  return `
      CREATE TABLE IF NOT EXISTS "${table}" (
        run_id                ${text} PRIMARY KEY,
        app_id                ${text} NOT NULL,
        partition_key         ${text} NOT NULL,
        sequence_id           ${integer} NOT NULL,
        action                ${text} NOT NULL,
        status                ${text} NOT NULL,
        started_at            ${time} NOT NULL,
        ended_at              ${time} NOT NULL,
        streamed              ${boolean} NOT NULL,
        time_to_first_item_ms ${real},
        item_count            ${integer} NOT NULL,
        stream_duration_ms    ${real},
        error                 ${text},
        state                 ${json},
        result                ${json}
      );
      CREATE INDEX IF NOT EXISTS "${table}_app" ON "${table}" (app_id, sequence_id);
    `;
}

/** The columns of a tracker row, in the order of {@link trackedRowValues}. */
export const TRACKED_ROW_COLUMNS =
  'run_id, app_id, partition_key, sequence_id, action, status, started_at, ended_at, streamed, time_to_first_item_ms, item_count, stream_duration_ms, error, state, result';

/**
 * A tracked step's values in the order of {@link TRACKED_ROW_COLUMNS}: times as epoch
 * milliseconds, `streamed` as 1 or 0, state and result as JSON text (SQL null when not recorded).
 */
export function trackedRowValues(step: TrackedStep): (string | number | null)[] {
  return [
    step.runId,
    step.appId,
    step.partitionKey,
    step.sequenceId,
    step.action,
    step.status,
    step.startedAt,
    step.endedAt,
    step.streamed ? 1 : 0,
    step.timeToFirstItemMs,
    step.itemCount,
    step.streamDurationMs,
    step.error,
    step.state === undefined ? null : JSON.stringify(step.state),
    step.result === undefined ? null : JSON.stringify(step.result),
  ];
}

/** A tracker row as read back: times as epoch milliseconds, state and result as JSON text. */
export interface TrackedRow extends StepKeyRow {
  run_id: string;
  status: string;
  /** Numbers may come back as strings (PostgreSQL `numeric`, `bigint`). */
  started_at: number | string;
  ended_at: number | string;
  streamed: number | boolean;
  time_to_first_item_ms: number | string | null;
  item_count: number | string;
  stream_duration_ms: number | string | null;
  error: string | null;
  state: string | null;
  result: string | null;
}

/** The JSON text of a column, parsed; undefined for SQL null (not recorded). */
function recorded(text: string | null | undefined): unknown {
  return text === null || text === undefined ? undefined : (JSON.parse(text) as unknown);
}

function msOrNull(value: number | string | null): number | null {
  return value === null ? null : Number(value);
}

/** The tracked step a tracker row holds. */
export function trackedStepOfRow(row: TrackedRow): TrackedStep {
  const startedAt = Number(row.started_at);
  const endedAt = Number(row.ended_at);
  return {
    ...stepKeyOf(row),
    runId: row.run_id,
    status: row.status as TrackedStep['status'],
    startedAt,
    endedAt,
    durationMs: endedAt - startedAt,
    streamed: row.streamed === 1 || row.streamed === true,
    timeToFirstItemMs: msOrNull(row.time_to_first_item_ms),
    itemCount: Number(row.item_count),
    streamDurationMs: msOrNull(row.stream_duration_ms),
    error: row.error,
    state: recorded(row.state),
    result: recorded(row.result),
  };
}

/** A row of a tracker's app listing: one app instance, its step count and newest step. */
export interface TrackedAppRow {
  app_id: string;
  partition_key: string;
  steps: number | string;
  last_ended_at: number | string;
  last_status: string;
}

/** The app instance a listing row names. */
export function trackedAppOfRow(row: TrackedAppRow): TrackedApp {
  return {
    appId: row.app_id,
    partitionKey: row.partition_key,
    steps: Number(row.steps),
    lastEndedAt: Number(row.last_ended_at),
    lastStatus: row.last_status as TrackedApp['lastStatus'],
  };
}

/** Most records a tracker listing returns (the default is 100). */
export const MAX_TRACKED_LIMIT = 10_000;

/** A listing's limit: 100 when not given, else a whole number from 1 to {@link MAX_TRACKED_LIMIT}. */
export function trackedLimit(limit: number | undefined): number {
  if (limit === undefined || Number.isNaN(limit)) return 100;
  return Math.max(1, Math.min(Math.trunc(limit), MAX_TRACKED_LIMIT));
}
