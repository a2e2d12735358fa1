/**
 * The default tracker: step and stream statistics in a local SQLite file.
 * @module
 */

import type { DatabaseSync, StatementSync } from 'node:sqlite';
import type { PostRunStepEvent } from '../app/hooks.ts';
import { type ListRunsOptions, type StepTracker, type TrackedApp, type TrackedStep, trackedStepOf } from '../app/tracking.ts';
import { checkIdentifier, openSQLite, type SQLiteOptions } from './sql.ts';
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

/** Options of a {@link SQLiteTracker}. */
export interface SQLiteTrackerOptions extends SQLiteOptions {
  /** Table name (default `sluice_step_runs`). */
  table?: string;
}

/**
 * Records one row per step (outcome, duration, time to first item, item count) when the step
 * ends, so tracking costs nothing per item. `listRuns(appId)` serves `GET /apps/:appId/runs`.
 *
 * @example
 * const tracker = new SQLiteTracker(); // .data/sluice.db
 * builder.withTracker(tracker);
 * await tracker.listRuns(app.appId); // newest first
 */
export class SQLiteTracker implements StepTracker {
  readonly table: string;
  readonly #db: DatabaseSync;
  readonly #owned: boolean;
  readonly #insert: StatementSync;

  constructor(options: SQLiteTrackerOptions = {}) {
    this.table = checkIdentifier('table', options.table ?? 'sluice_step_runs');
    const { db, owned } = openSQLite(options);
    this.#db = db;
    this.#owned = owned;
    const t = this.table;
    db.exec(trackedTableSql(t, { text: 'TEXT', integer: 'INTEGER', real: 'REAL', boolean: 'INTEGER', time: 'REAL', json: 'TEXT' }));
    // Tables made before the state and result were tracked get the columns (null in old rows).
    const columns = new Set((db.prepare(`PRAGMA table_info("${t}")`).all() as { name: string }[]).map((c) => c.name));
    for (const column of ['state', 'result']) if (!columns.has(column)) db.exec(`ALTER TABLE "${t}" ADD COLUMN ${column} TEXT`);
    this.#insert = db.prepare(`INSERT INTO "${t}" (${TRACKED_ROW_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`);
  }

  /** Inserts the step's row; throws if this run was recorded already (the step's hook logs it). */
  postRunStep(event: PostRunStepEvent): void {
    this.#insert.run(...trackedRowValues(trackedStepOf(event)));
  }

  listApps(options: { limit?: number } = {}): TrackedApp[] {
    const limit = trackedLimit(options.limit);
    const rows = this.#db
      .prepare(
        `SELECT app_id, partition_key, COUNT(*) AS steps, MAX(ended_at) AS last_ended_at,
           (SELECT status FROM "${this.table}" AS n WHERE n.app_id = s.app_id AND n.partition_key = s.partition_key ORDER BY ended_at DESC LIMIT 1) AS last_status
         FROM "${this.table}" AS s GROUP BY app_id, partition_key ORDER BY last_ended_at DESC LIMIT ?`,
      )
      .all(limit) as unknown as TrackedAppRow[];
    return rows.map(trackedAppOfRow);
  }

  listRuns(appId: string, options: ListRunsOptions = {}): TrackedStep[] {
    const limit = trackedLimit(options.limit);
    const rows = (
      options.partitionKey === undefined
        ? this.#db.prepare(`SELECT * FROM "${this.table}" WHERE app_id = ? ORDER BY sequence_id DESC, ended_at DESC LIMIT ?`).all(appId, limit)
        : this.#db
            .prepare(`SELECT * FROM "${this.table}" WHERE app_id = ? AND partition_key = ? ORDER BY sequence_id DESC, ended_at DESC LIMIT ?`)
            .all(appId, options.partitionKey, limit)
    ) as unknown as TrackedRow[];
    return rows.map(trackedStepOfRow);
  }

  /** Closes the database if this tracker opened it. */
  close(): void {
    if (this.#owned && this.#db.isOpen) this.#db.close();
  }
}
