/**
 * The default persister: one SQLite file (`node:sqlite`, WAL) under the data directory.
 * @module
 */

import type { DatabaseSync, StatementSync } from 'node:sqlite';
import type { LoadQuery, PersistedStep, Persister } from '../app/persistence.ts';
import { duplicateStep } from '../app/persistence.ts';
import type { StateData } from '../app/state.ts';
import { checkIdentifier, isSQLiteUniqueViolation, openSQLite, parseJson, type SQLiteOptions } from './sql.ts';
import { STEP_ROW_COLUMNS, stepKeyOf, stepRowValues, stepTableSql, type StepKeyRow } from './step-rows.ts';

/** Options of a {@link SQLitePersister}. */
export interface SQLitePersisterOptions extends SQLiteOptions {
  /** Table name (default `sluice_steps`); tests use a unique one each. */
  table?: string;
}

interface Row extends StepKeyRow {
  status: string;
  state: string;
  result: string | null;
  error: string | null;
  started_at: number;
  ended_at: number;
}

function toStep(row: Row): PersistedStep {
  return {
    ...stepKeyOf(row),
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
    this.#db.exec(stepTableSql(t, { text: 'TEXT', integer: 'INTEGER', json: 'TEXT', time: 'REAL' }));
    this.#insert = this.#db.prepare(
      `INSERT INTO "${t}" (${STEP_ROW_COLUMNS})
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
  }

  save(step: PersistedStep): void {
    this.initialize();
    const db = this.#db;
    db.exec('BEGIN IMMEDIATE');
    try {
      (this.#insert as StatementSync).run(...stepRowValues(step));
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
