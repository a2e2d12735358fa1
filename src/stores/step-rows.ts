/**
 * The step rows the SQL stores share: the key columns every step table has, and the persisters'
 * table of committed steps (its schema and the values of one row).
 * @module
 */

import type { PersistedStep } from '../app/persistence.ts';
import { STEP_STATUSES } from '../app/persistence.ts';

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
