/**
 * The default tracker: step and stream statistics in a local SQLite file.
 * @module
 */

import type { DatabaseSync, StatementSync } from 'node:sqlite';
import type { PostRunStepEvent } from '../app/hooks.ts';
import { type ListRunsOptions, type StepTracker, type TrackedApp, type TrackedStep, trackedStepOf } from '../app/tracking.ts';
import { checkIdentifier, openSQLite, type SQLiteOptions } from './sql.ts';
import { stepKeyOf, type StepKeyRow } from './step-rows.ts';

/** Options of a {@link SQLiteTracker}. */
export interface SQLiteTrackerOptions extends SQLiteOptions {
  /** Table name (default `sluice_step_runs`). */
  table?: string;
}

interface Row extends StepKeyRow {
  run_id: string;
  status: string;
  started_at: number;
  ended_at: number;
  streamed: number;
  time_to_first_item_ms: number | null;
  item_count: number;
  stream_duration_ms: number | null;
  error: string | null;
  state: string | null;
  result: string | null;
}

/** The JSON text of a column, parsed; undefined for SQL null (not recorded). */
function parsed(text: string | null | undefined): unknown {
  return text === null || text === undefined ? undefined : (JSON.parse(text) as unknown);
}

function toTracked(row: Row): TrackedStep {
  return {
    ...stepKeyOf(row),
    runId: row.run_id,
    status: row.status as TrackedStep['status'],
    startedAt: Number(row.started_at),
    endedAt: Number(row.ended_at),
    durationMs: Number(row.ended_at) - Number(row.started_at),
    streamed: row.streamed === 1,
    timeToFirstItemMs: row.time_to_first_item_ms === null ? null : Number(row.time_to_first_item_ms),
    itemCount: Number(row.item_count),
    streamDurationMs: row.stream_duration_ms === null ? null : Number(row.stream_duration_ms),
    error: row.error,
    state: parsed(row.state),
    result: parsed(row.result),
  };
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
    db.exec(`
      CREATE TABLE IF NOT EXISTS "${t}" (
        run_id                TEXT    PRIMARY KEY,
        app_id                TEXT    NOT NULL,
        partition_key         TEXT    NOT NULL,
        sequence_id           INTEGER NOT NULL,
        action                TEXT    NOT NULL,
        status                TEXT    NOT NULL,
        started_at            REAL    NOT NULL,
        ended_at              REAL    NOT NULL,
        streamed              INTEGER NOT NULL,
        time_to_first_item_ms REAL,
        item_count            INTEGER NOT NULL,
        stream_duration_ms    REAL,
        error                 TEXT
      );
      CREATE INDEX IF NOT EXISTS "${t}_app" ON "${t}" (app_id, sequence_id);
    `);
    // Tables made before the state and result were tracked get the columns (null in old rows).
    const columns = new Set((db.prepare(`PRAGMA table_info("${t}")`).all() as { name: string }[]).map((c) => c.name));
    for (const column of ['state', 'result']) if (!columns.has(column)) db.exec(`ALTER TABLE "${t}" ADD COLUMN ${column} TEXT`);
    this.#insert = db.prepare(
      `INSERT INTO "${t}" (run_id, app_id, partition_key, sequence_id, action, status, started_at, ended_at, streamed,
         time_to_first_item_ms, item_count, stream_duration_ms, error, state, result)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
  }

  postRunStep(event: PostRunStepEvent): void {
    const r = trackedStepOf(event);
    this.#insert.run(
      r.runId,
      r.appId,
      r.partitionKey,
      r.sequenceId,
      r.action,
      r.status,
      r.startedAt,
      r.endedAt,
      r.streamed ? 1 : 0,
      r.timeToFirstItemMs,
      r.itemCount,
      r.streamDurationMs,
      r.error,
      r.state === undefined ? null : JSON.stringify(r.state),
      r.result === undefined ? null : JSON.stringify(r.result),
    );
  }

  listApps(options: { limit?: number } = {}): TrackedApp[] {
    const limit = Math.max(1, Math.min(options.limit ?? 100, 10_000));
    const rows = this.#db
      .prepare(
        `SELECT app_id, partition_key, COUNT(*) AS steps, MAX(ended_at) AS last_ended_at,
           (SELECT status FROM "${this.table}" AS n WHERE n.app_id = s.app_id AND n.partition_key = s.partition_key ORDER BY ended_at DESC LIMIT 1) AS last_status
         FROM "${this.table}" AS s GROUP BY app_id, partition_key ORDER BY last_ended_at DESC LIMIT ?`,
      )
      .all(limit) as unknown as { app_id: string; partition_key: string; steps: number; last_ended_at: number; last_status: string }[];
    return rows.map((r) => ({
      appId: r.app_id,
      partitionKey: r.partition_key,
      steps: Number(r.steps),
      lastEndedAt: Number(r.last_ended_at),
      lastStatus: r.last_status as TrackedApp['lastStatus'],
    }));
  }

  listRuns(appId: string, options: ListRunsOptions = {}): TrackedStep[] {
    const limit = Math.max(1, Math.min(options.limit ?? 100, 10_000));
    const rows = (
      options.partitionKey === undefined
        ? this.#db.prepare(`SELECT * FROM "${this.table}" WHERE app_id = ? ORDER BY sequence_id DESC, ended_at DESC LIMIT ?`).all(appId, limit)
        : this.#db
            .prepare(`SELECT * FROM "${this.table}" WHERE app_id = ? AND partition_key = ? ORDER BY sequence_id DESC, ended_at DESC LIMIT ?`)
            .all(appId, options.partitionKey, limit)
    ) as unknown as Row[];
    return rows.map(toTracked);
  }

  /** Closes the database if this tracker opened it. */
  close(): void {
    if (this.#owned && this.#db.isOpen) this.#db.close();
  }
}
