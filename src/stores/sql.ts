/**
 * Helpers shared by the SQL stores: names, the default data directory, opening SQLite, options.
 * @module
 */

import { mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { SluiceError } from '../protocol/errors.ts';

/** Where local stores keep their files: `SLUICE_DATA_DIR`, else `.data` in the working directory. */
export function defaultDataDir(env: Record<string, string | undefined> = process.env): string {
  return resolve(env.SLUICE_DATA_DIR ?? '.data');
}

/** Throws unless `name` is a plain SQL identifier (table names are interpolated, never user data). */
export function checkIdentifier(option: string, name: string): string {
  if (typeof name !== 'string' || !/^[A-Za-z_][A-Za-z0-9_]{0,62}$/.test(name)) {
    throw new SluiceError('invalid_argument', `${option} must be a plain SQL identifier (letters, digits, _), got '${String(name)}'`);
  }
  return name;
}

/** Options shared by the SQLite stores. */
export interface SQLiteOptions {
  /** Directory of the database file (default {@link defaultDataDir}). */
  dataDir?: string;
  /** File name inside `dataDir` (default `sluice.db`). */
  file?: string;
  /** Full path of the database file (wins over `dataDir` / `file`); `:memory:` for tests. */
  path?: string;
  /** An open database to use instead (it is not closed by `close()`). */
  database?: DatabaseSync;
}

/** Opens (or adopts) a SQLite database in WAL mode. Returns whether the caller owns it. */
export function openSQLite(options: SQLiteOptions): { db: DatabaseSync; owned: boolean } {
  if (options.database !== undefined) return { db: options.database, owned: false };
  const path = options.path ?? join(options.dataDir ?? defaultDataDir(), options.file ?? 'sluice.db');
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
  const db = new DatabaseSync(path);
  // WAL: readers (the tracking UI, another process) never block the writer; NORMAL is durable in WAL.
  db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;');
  return { db, owned: true };
}

/** True for SQLite's constraint violation on a primary key or unique index. */
export function isSQLiteUniqueViolation(error: unknown): boolean {
  const code = (error as { errcode?: unknown } | null)?.errcode;
  // 1555 SQLITE_CONSTRAINT_PRIMARYKEY, 2067 SQLITE_CONSTRAINT_UNIQUE
  return code === 1555 || code === 2067;
}

/** Parses a JSON column (null stays null). */
export function parseJson(text: unknown): unknown {
  return typeof text === 'string' ? JSON.parse(text) : (text ?? null);
}

/** `value`, or `fallback` when not given; throws unless it is a finite number ≥ `min` (timeouts, sizes). */
export function positiveOption(option: string, value: number | undefined, fallback: number, min = 1): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min) {
    throw new SluiceError('invalid_argument', `${option} must be a number ≥ ${min}, got ${String(value)}`);
  }
  return value;
}
