/**
 * A PostgreSQL tracker (`pg`): the same rows as the SQLite one, in one database that several
 * server instances share, so each of them lists every instance's steps (`GET /apps`,
 * `GET /apps/:appId/runs`).
 * @module
 */

import type { PostRunStepEvent } from '../app/hooks.ts';
import { type ListRunsOptions, type StepTracker, type TrackedApp, type TrackedStep, trackedStepOf } from '../app/tracking.ts';
import { PostgresTable, type PostgresTableOptions } from './postgres-table.ts';
import {
  TRACKED_ROW_COLUMNS,
  trackedAppOfRow,
  type TrackedAppRow,
  trackedLimit,
  type TrackedRow,
  trackedRowValues,
  trackedStepOfRow,
  trackedTableSql,
} from './step-rows.ts';

/** Options of a {@link PostgresTracker} (`table` default `sluice_step_runs`). */
export type PostgresTrackerOptions = PostgresTableOptions;

/** The columns of a row read back: times as epoch ms, JSON as its text (SQL null: not recorded). */
const SELECT_COLUMNS = `run_id, app_id, partition_key, sequence_id, action, status,
  extract(epoch from started_at) * 1000 AS started_at, extract(epoch from ended_at) * 1000 AS ended_at,
  streamed, time_to_first_item_ms, item_count, stream_duration_ms, error, state::text AS state, result::text AS result`;

/**
 * Records one row per step when the step ends (outcome, duration, time to first item, item count,
 * state, result), keyed by run id, and lists them as `SQLiteTracker` does. Tracking never fails
 * a step: a record that cannot be written (PostgreSQL down, a timeout, a run recorded twice)
 * rejects, and the step logs it and stays committed. Waits are bounded by `connectTimeoutMs` and
 * `queryTimeoutMs`; listings by their limit (default 100, at most 10,000). The table is created on
 * first use. State and result are `json` columns: given back as written.
 *
 * @example
 * const tracker = new PostgresTracker({ connectionString: process.env.DATABASE_URL });
 * builder.withTracker(tracker);
 * await tracker.listRuns(app.appId); // newest first, from every instance
 */
export class PostgresTracker extends PostgresTable implements StepTracker {
  constructor(options: PostgresTrackerOptions = {}) {
    super('PostgresTracker', 'sluice_step_runs', options);
  }

  protected createSql(): string {
    return trackedTableSql(this.table, { text: 'text', integer: 'integer', real: 'double precision', boolean: 'boolean', time: 'timestamptz', json: 'json' });
  }

  /** Inserts the step's row; rejects if it cannot (the step's hook logs it, the step stays committed). */
  async postRunStep(event: PostRunStepEvent): Promise<void> {
    const values = trackedRowValues(trackedStepOf(event));
    await this.initialize();
    await this.pool.query(
      `INSERT INTO "${this.table}" (${TRACKED_ROW_COLUMNS})
       VALUES ($1, $2, $3, $4, $5, $6, to_timestamp($7::double precision / 1000), to_timestamp($8::double precision / 1000),
         $9::integer <> 0, $10, $11, $12, $13, $14::json, $15::json)`,
      values,
    );
  }

  async listApps(options: { limit?: number } = {}): Promise<TrackedApp[]> {
    await this.initialize();
    const result = await this.pool.query<TrackedAppRow>(
      `SELECT app_id, partition_key, COUNT(*) AS steps, extract(epoch from MAX(ended_at)) * 1000 AS last_ended_at,
         (array_agg(status ORDER BY ended_at DESC, sequence_id DESC))[1] AS last_status
       FROM "${this.table}" GROUP BY app_id, partition_key ORDER BY MAX(ended_at) DESC LIMIT $1`,
      [trackedLimit(options.limit)],
    );
    return result.rows.map(trackedAppOfRow);
  }

  async listRuns(appId: string, options: ListRunsOptions = {}): Promise<TrackedStep[]> {
    await this.initialize();
    const limit = trackedLimit(options.limit);
    const t = this.table;
    const result =
      options.partitionKey === undefined
        ? await this.pool.query<TrackedRow>(`SELECT ${SELECT_COLUMNS} FROM "${t}" WHERE app_id = $1 ORDER BY sequence_id DESC, ended_at DESC LIMIT $2`, [appId, limit])
        : await this.pool.query<TrackedRow>(
            `SELECT ${SELECT_COLUMNS} FROM "${t}" WHERE app_id = $1 AND partition_key = $2 ORDER BY sequence_id DESC, ended_at DESC LIMIT $3`,
            [appId, options.partitionKey, limit],
          );
    return result.rows.map(trackedStepOfRow);
  }
}
