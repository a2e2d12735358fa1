/**
 * The default persister: one SQLite file (`node:sqlite`, WAL) under the data directory.
 * @module
 */

import type { DatabaseSync, StatementSync } from 'node:sqlite';
import type { LoadQuery, PersistedStep, Persister } from '../app/persistence.ts';
import { duplicateStep, STEP_STATUSES } from '../app/persistence.ts';
import type { StateData } from '../app/state.ts';
import { checkIdentifier, isSQLiteUniqueViolation, openSQLite, parseJson, type SQLiteOptions } from './sql.ts';

/** Options of a {@link SQLitePersister}. */
export interface SQLitePersisterOptions extends SQLiteOptions {
  /** Table name (default `sluice_steps`); tests use a unique one each. */
  table?: string;
}

interface Row {
  app_id: string;
  partition_key: string;
  sequence_id: number;
  action: string;
  status: string;
  state: string;
  result: string | null;
  error: string | null;
  started_at: number;
  ended_at: number;
}

function toStep(row: Row): PersistedStep {
  return {
    appId: row.app_id,
    partitionKey: row.partition_key,
    sequenceId: Number(row.sequence_id),
    action: row.action,
    status: row.status as PersistedStep['status'],
    state: parseJson(row.state) as StateData,
    result: parseJson(row.result),
    error: row.error,
    startedAt: Number(row.started_at),
    endedAt: Number(row.ended_at),
  };
}

/**
 * Saves one row per step in a SQLite table keyed by (app_id, partition_key, sequence_id): a second
 * commit of a step fails with `already_exists`, also from another process on the same file.
 *
 * @example
 * const persister = new SQLitePersister({ dataDir: './.data' });
 * const app = await new ApplicationBuilder()
 *   // …actions, transitions, state, entrypoint…
 *   .withIdentifiers('conversation-1', 'user-42')
 *   .withPersister(persister)
 *   .initializeFromPersister(persister)
 *   .build();
 */
export class SQLitePersister implements Persister {
  readonly table: string;
  readonly #db: DatabaseSync;
  readonly #owned: boolean;
  #insert: StatementSync | null = null;

  constructor(options: SQLitePersisterOptions = {}) {
    this.table = checkIdentifier('table', options.table ?? 'sluice_steps');
    const { db, owned } = openSQLite(options);
    this.#db = db;
    this.#owned = owned;
  }

  initialize(): void {
    if (this.#insert !== null) return;
    const t = this.table;
    const statuses = STEP_STATUSES.map((s) => `'${s}'`).join(', ');
    this.#db.exec(`
      CREATE TABLE IF NOT EXISTS "${t}" (
        app_id        TEXT    NOT NULL,
        partition_key TEXT    NOT NULL DEFAULT '',
        sequence_id   INTEGER NOT NULL CHECK (sequence_id >= 0),
        action        TEXT    NOT NULL,
        status        TEXT    NOT NULL CHECK (status IN (${statuses})),
        state         TEXT    NOT NULL,
        result        TEXT,
        error         TEXT,
        started_at    REAL    NOT NULL,
        ended_at      REAL    NOT NULL,
        PRIMARY KEY (app_id, partition_key, sequence_id)
      );
      CREATE INDEX IF NOT EXISTS "${t}_partition_ended" ON "${t}" (partition_key, ended_at);
    `);
    this.#insert = this.#db.prepare(
      `INSERT INTO "${t}" (app_id, partition_key, sequence_id, action, status, state, result, error, started_at, ended_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
  }

  save(step: PersistedStep): void {
    this.initialize();
    const db = this.#db;
    db.exec('BEGIN IMMEDIATE');
    try {
      (this.#insert as StatementSync).run(
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
      );
      db.exec('COMMIT');
    } catch (error) {
      if (db.isTransaction) db.exec('ROLLBACK');
      if (isSQLiteUniqueViolation(error)) throw duplicateStep(step, error);
      throw error;
    }
  }

  load(query: LoadQuery): PersistedStep | null {
    this.initialize();
    const t = this.table;
    let row: Row | undefined;
    if (query.appId === undefined) {
      row = this.#db
        .prepare(`SELECT * FROM "${t}" WHERE partition_key = ? ORDER BY ended_at DESC, sequence_id DESC LIMIT 1`)
        .get(query.partitionKey) as Row | undefined;
    } else if (query.sequenceId === undefined) {
      row = this.#db
        .prepare(`SELECT * FROM "${t}" WHERE app_id = ? AND partition_key = ? ORDER BY sequence_id DESC LIMIT 1`)
        .get(query.appId, query.partitionKey) as Row | undefined;
    } else {
      row = this.#db
        .prepare(`SELECT * FROM "${t}" WHERE app_id = ? AND partition_key = ? AND sequence_id = ?`)
        .get(query.appId, query.partitionKey, query.sequenceId) as Row | undefined;
    }
    return row === undefined ? null : toStep(row);
  }

  list(appId: string, partitionKey = ''): PersistedStep[] {
    this.initialize();
    const rows = this.#db
      .prepare(`SELECT * FROM "${this.table}" WHERE app_id = ? AND partition_key = ? ORDER BY sequence_id`)
      .all(appId, partitionKey) as unknown as Row[];
    return rows.map(toStep);
  }

  listAppIds(partitionKey = ''): string[] {
    this.initialize();
    const rows = this.#db
      .prepare(`SELECT app_id, MAX(ended_at) AS last FROM "${this.table}" WHERE partition_key = ? GROUP BY app_id ORDER BY last DESC`)
      .all(partitionKey) as unknown as { app_id: string }[];
    return rows.map((r) => r.app_id);
  }

  /** Closes the database if this persister opened it. */
  close(): void {
    if (this.#owned && this.#db.isOpen) this.#db.close();
  }
}
