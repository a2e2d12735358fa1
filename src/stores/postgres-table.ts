/**
 * What the PostgreSQL stores share: one table in a pool of their own (or the caller's), made on
 * first use, with bounded waits, and a pool whose broken idle connections are logged rather than
 * crashing the process.
 * @module
 */

import pg from 'pg';
import { createLogger, type Logger } from '../runtime/logger.ts';
import { checkIdentifier, positiveOption } from './sql.ts';

/** Options of every PostgreSQL store. */
export interface PostgresTableOptions {
  /**
   * A pool to use (not ended by `close()`); otherwise one is made from `connectionString`. Its own
   * timeouts apply, and its owner listens to its `error` events.
   */
  pool?: pg.Pool;
  /** Default `DATABASE_URL`. */
  connectionString?: string;
  /** Table name; tests use a unique one each. */
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

/** A store's table: the pool, creation on first use, `drop` and `close`. */
export abstract class PostgresTable {
  readonly table: string;
  protected readonly pool: pg.Pool;
  readonly #owned: boolean;
  #ready: Promise<void> | null = null;
  #closed = false;

  /** `store` names the class in messages; `defaultTable` is used without `options.table`. */
  constructor(store: string, defaultTable: string, options: PostgresTableOptions) {
    this.table = checkIdentifier('table', options.table ?? defaultTable);
    const connectTimeoutMs = positiveOption('connectTimeoutMs', options.connectTimeoutMs, 5_000);
    const queryTimeoutMs = positiveOption('queryTimeoutMs', options.queryTimeoutMs, 5_000);
    this.#owned = options.pool === undefined;
    if (options.pool !== undefined) {
      this.pool = options.pool;
      return;
    }
    this.pool = new pg.Pool({
      connectionString: options.connectionString ?? process.env.DATABASE_URL,
      connectionTimeoutMillis: connectTimeoutMs,
      statement_timeout: queryTimeoutMs,
      query_timeout: queryTimeoutMs + 1_000,
    });
    const logger = options.logger ?? createLogger();
    // An idle connection that breaks (a restart, a network cut) is reported here; with no listener
    // it would crash the process. The pool replaces it on the next query.
    this.pool.on('error', (error: Error) => {
      logger.warn({ err: error, table: this.table }, `${store}: connection problem: ${error.message}`);
    });
  }

  /** The `CREATE TABLE IF NOT EXISTS …` (and indexes) of the store. */
  protected abstract createSql(): string;

  /** Creates the table if it does not exist; called by every method. Idempotent. */
  initialize(): Promise<void> {
    this.#ready ??= this.#create().catch((error: unknown) => {
      this.#ready = null;
      throw error;
    });
    return this.#ready;
  }

  async #create(): Promise<void> {
    const sql = this.createSql();
    try {
      await this.pool.query(sql);
    } catch (error) {
      // Two instances creating the table at once: the loser's IF NOT EXISTS ran before the winner
      // committed (unique_violation on the catalog, or duplicate_table). It is there now.
      const code = (error as { code?: unknown }).code;
      if (code !== '23505' && code !== '42P07') throw error;
      await this.pool.query(sql);
    }
  }

  /** Drops the table (tests). */
  async drop(): Promise<void> {
    await this.pool.query(`DROP TABLE IF EXISTS "${this.table}"`);
    this.#ready = null;
  }

  /** Ends the pool if this store made it. */
  async close(): Promise<void> {
    if (!this.#owned || this.#closed) return;
    this.#closed = true;
    await this.pool.end();
  }
}
