/**
 * A PostgreSQL persister (`pg`): the same rows as the SQLite one, for apps served by several
 * processes.
 * @module
 */

import type pg from 'pg';
import type { LoadQuery, PersistedStep, Persister } from '../app/persistence.ts';
import { duplicateStep } from '../app/persistence.ts';
import type { StateData } from '../app/state.ts';
import { PostgresTable, type PostgresTableOptions } from './postgres-table.ts';
import { STEP_ROW_COLUMNS, stepKeyOf, stepRowValues, stepTableSql, type StepKeyRow } from './step-rows.ts';

/** Options of a {@link PostgresPersister} (`table` default `sluice_steps`). */
export type PostgresPersisterOptions = PostgresTableOptions;

interface Row extends StepKeyRow {
  status: string;
  state: StateData;
  result: unknown;
  error: string | null;
  started_ms: string | number;
  ended_ms: string | number;
}

const COLUMNS = `app_id, partition_key, sequence_id, action, status, state, result, error,
  extract(epoch from started_at) * 1000 AS started_ms, extract(epoch from ended_at) * 1000 AS ended_ms`;

function toStep(row: Row): PersistedStep {
  return {
    ...stepKeyOf(row),
    status: row.status as PersistedStep['status'],
    state: row.state,
    result: row.result ?? null,
    error: row.error,
    startedAt: Number(row.started_ms),
    endedAt: Number(row.ended_ms),
  };
}

/**
 * Saves one row per step in a PostgreSQL table with primary key (app_id, partition_key,
 * sequence_id), inside a transaction: a second commit of a step fails with `already_exists`.
 *
 * @example
 * const persister = new PostgresPersister({ connectionString: process.env.DATABASE_URL });
 * builder.withPersister(persister).initializeFromPersister(persister);
 */
export class PostgresPersister extends PostgresTable implements Persister {
  constructor(options: PostgresPersisterOptions = {}) {
    super('PostgresPersister', 'sluice_steps', options);
  }

  protected createSql(): string {
    return stepTableSql(this.table, { text: 'text', integer: 'integer', json: 'jsonb', time: 'timestamptz' });
  }

  async save(step: PersistedStep): Promise<void> {
    await this.initialize();
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      await client.query(
        `INSERT INTO "${this.table}" (${STEP_ROW_COLUMNS})
         VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb, $8, to_timestamp($9::double precision / 1000), to_timestamp($10::double precision / 1000))`,
        stepRowValues(step),
      );
      await client.query('COMMIT');
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {});
      if ((error as { code?: unknown }).code === '23505') throw duplicateStep(step, error);
      throw error;
    } finally {
      client.release();
    }
  }

  async load(query: LoadQuery): Promise<PersistedStep | null> {
    await this.initialize();
    const t = this.table;
    let result: pg.QueryResult<Row>;
    if (query.appId === undefined) {
      result = await this.pool.query<Row>(
        `SELECT ${COLUMNS} FROM "${t}" WHERE partition_key = $1 ORDER BY ended_at DESC, sequence_id DESC LIMIT 1`,
        [query.partitionKey],
      );
    } else if (query.sequenceId === undefined) {
      result = await this.pool.query<Row>(
        `SELECT ${COLUMNS} FROM "${t}" WHERE app_id = $1 AND partition_key = $2 ORDER BY sequence_id DESC LIMIT 1`,
        [query.appId, query.partitionKey],
      );
    } else {
      result = await this.pool.query<Row>(
        `SELECT ${COLUMNS} FROM "${t}" WHERE app_id = $1 AND partition_key = $2 AND sequence_id = $3`,
        [query.appId, query.partitionKey, query.sequenceId],
      );
    }
    const row = result.rows[0];
    return row === undefined ? null : toStep(row);
  }

  async list(appId: string, partitionKey = ''): Promise<PersistedStep[]> {
    await this.initialize();
    const result = await this.pool.query<Row>(
      `SELECT ${COLUMNS} FROM "${this.table}" WHERE app_id = $1 AND partition_key = $2 ORDER BY sequence_id`,
      [appId, partitionKey],
    );
    return result.rows.map(toStep);
  }

  async listAppIds(partitionKey = ''): Promise<string[]> {
    await this.initialize();
    const result = await this.pool.query<{ app_id: string }>(
      `SELECT app_id FROM "${this.table}" WHERE partition_key = $1 GROUP BY app_id ORDER BY MAX(ended_at) DESC`,
      [partitionKey],
    );
    return result.rows.map((r) => r.app_id);
  }
}
