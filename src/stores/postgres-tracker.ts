/**
 * A PostgreSQL tracker (`pg`): the same rows as the SQLite one, in one database that several
 * server instances share, so each of them lists every instance's steps (`GET /apps`,
 * `GET /apps/:appId/runs`).
 * @module
 */

import pg from 'pg';
import type { PostRunStepEvent } from '../app/hooks.ts';
import { type ListRunsOptions, type StepTracker, type TrackedApp, type TrackedStep, trackedStepOf } from '../app/tracking.ts';
import { createLogger, type Logger } from '../runtime/logger.ts';
import { checkIdentifier, positiveOption } from './sql.ts';
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

/** Options of a {@link PostgresTracker}. */
export interface PostgresTrackerOptions {
  /**
   * A pool to use (not ended by `close()`); otherwise one is made from `connectionString`. Its own
   * timeouts apply, and its owner listens to its `error` events.
   */
  pool?: pg.Pool;
  /** Default `DATABASE_URL`. */
  connectionString?: string;
  /** Table name (default `sluice_step_runs`); tests use a unique one each. */
  table?: string;
  /** Longest wait for a connection (a new one, or a free one of the pool), in ms. Default 5,000. */
  connectTimeoutMs?: number;
  /**
   * Longest statement, in ms (the server's `statement_timeout`; the client stops waiting for a
   * silent server 1 s later). Default 5,000.
   */
  queryTimeoutMs?: number;
  /** Where the pool's connection problems go (default a pino logger named `sluice`). */
  logger?: Logger;
}

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
export class PostgresTracker implements StepTracker {
  readonly table: string;
  readonly #pool: pg.Pool;
  readonly #owned: boolean;
  #ready: Promise<void> | null = null;
  #closed = false;

  constructor(options: PostgresTrackerOptions = {}) {
    this.table = checkIdentifier('table', options.table ?? 'sluice_step_runs');
    const connectTimeoutMs = positiveOption('connectTimeoutMs', options.connectTimeoutMs, 5_000);
    const queryTimeoutMs = positiveOption('queryTimeoutMs', options.queryTimeoutMs, 5_000);
    this.#owned = options.pool === undefined;
    if (options.pool !== undefined) {
      this.#pool = options.pool;
      return;
    }
    this.#pool = new pg.Pool({
      connectionString: options.connectionString ?? process.env.DATABASE_URL,
      connectionTimeoutMillis: connectTimeoutMs,
      statement_timeout: queryTimeoutMs,
      query_timeout: queryTimeoutMs + 1_000,
    });
    const logger = options.logger ?? createLogger();
    // An idle connection that breaks (a restart, a network cut) is reported here; with no listener
    // it would crash the process. The pool replaces it on the next query.
    this.#pool.on('error', (error: Error) => {
      logger.warn({ err: error, table: this.table }, `PostgresTracker: connection problem: ${error.message}`);
    });
  }

  /** Creates the table (and its index) if it does not exist; called by every method. */
  initialize(): Promise<void> {
    this.#ready ??= this.#create().catch((error: unknown) => {
      this.#ready = null;
      throw error;
    });
    return this.#ready;
  }

  async #create(): Promise<void> {
    const sql = trackedTableSql(this.table, { text: 'text', integer: 'integer', real: 'double precision', boolean: 'boolean', time: 'timestamptz', json: 'json' });
    try {
      await this.#pool.query(sql);
    } catch (error) {
      // Two instances creating the table at once: the loser's IF NOT EXISTS ran before the winner
      // committed (unique_violation on the catalog, or duplicate_table). It is there now.
      const code = (error as { code?: unknown }).code;
      if (code !== '23505' && code !== '42P07') throw error;
      await this.#pool.query(sql);
    }
  }

  /** Inserts the step's row; rejects if it cannot (the step's hook logs it, the step stays committed). */
  async postRunStep(event: PostRunStepEvent): Promise<void> {
    const values = trackedRowValues(trackedStepOf(event));
    await this.initialize();
    await this.#pool.query(
      `INSERT INTO "${this.table}" (${TRACKED_ROW_COLUMNS})
       VALUES ($1, $2, $3, $4, $5, $6, to_timestamp($7::double precision / 1000), to_timestamp($8::double precision / 1000),
         $9::integer <> 0, $10, $11, $12, $13, $14::json, $15::json)`,
      values,
    );
  }

  async listApps(options: { limit?: number } = {}): Promise<TrackedApp[]> {
    await this.initialize();
    const result = await this.#pool.query<TrackedAppRow>(
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
        ? await this.#pool.query<TrackedRow>(`SELECT ${SELECT_COLUMNS} FROM "${t}" WHERE app_id = $1 ORDER BY sequence_id DESC, ended_at DESC LIMIT $2`, [appId, limit])
        : await this.#pool.query<TrackedRow>(
            `SELECT ${SELECT_COLUMNS} FROM "${t}" WHERE app_id = $1 AND partition_key = $2 ORDER BY sequence_id DESC, ended_at DESC LIMIT $3`,
            [appId, options.partitionKey, limit],
          );
    return result.rows.map(trackedStepOfRow);
  }

  /** Drops the table (tests). */
  async drop(): Promise<void> {
    await this.#pool.query(`DROP TABLE IF EXISTS "${this.table}"`);
    this.#ready = null;
  }

  /** Ends the pool if this tracker made it. */
  async close(): Promise<void> {
    if (!this.#owned || this.#closed) return;
    this.#closed = true;
    await this.#pool.end();
  }
}
