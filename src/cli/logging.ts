/**
 * The server's one log format: pino JSON lines on stdout, or (on a terminal, or with
 * `--log-pretty`) the same records through `pino-pretty`; `--log-file` appends the JSON to a file too.
 * @module
 */

import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { pino, type DestinationStream, type Logger as PinoLogger } from 'pino';
import { SluiceError } from '../protocol/errors.ts';

/** pino's levels, plus `silent`. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** Options of {@link createServerLogger}. */
export interface ServerLoggerOptions {
  level: string;
  /** Pretty lines (else JSON). */
  pretty: boolean;
  /** Also append JSON lines to this file. */
  file?: string;
  /** Where lines go (default stdout); tests pass a stream. */
  stdout?: DestinationStream;
}

/**
 * A pino logger named `sluice` writing JSON (or pretty) lines. Rejects with `invalid_argument` for
 * an unknown level or a log file that cannot be opened.
 */
export async function createServerLogger(options: ServerLoggerOptions): Promise<PinoLogger> {
  if (!(LOG_LEVELS as readonly string[]).includes(options.level)) {
    throw new SluiceError('invalid_argument', `--log-level must be one of ${LOG_LEVELS.join(', ')} (got '${options.level}')`);
  }
  // Loaded only for pretty output: JSON needs none of it.
  const out: DestinationStream = options.pretty
    ? (await import('pino-pretty')).PinoPretty({
        colorize: process.stdout.isTTY === true && process.env.NO_COLOR === undefined,
        sync: true,
        destination: options.stdout ?? 1,
        ignore: 'pid,hostname,name',
        translateTime: 'SYS:HH:MM:ss.l',
      })
    : (options.stdout ?? pino.destination({ dest: 1, sync: true }));
  const base = { name: 'sluice', level: options.level };
  if (options.file === undefined) return pino(base, out);
  try {
    mkdirSync(dirname(options.file), { recursive: true });
  } catch {
    // Reported below by the destination with the file's own error.
  }
  let file: DestinationStream;
  try {
    file = pino.destination({ dest: options.file, sync: true, append: true });
  } catch (error) {
    throw new SluiceError('invalid_argument', `--log-file: cannot open '${options.file}': ${(error as Error).message}`, { cause: error });
  }
  return pino(base, pino.multistream([{ stream: out, level: options.level as pino.Level }, { stream: file, level: options.level as pino.Level }]));
}

/**
 * Where an error thrown while importing a module points: the first `file:line[:column]` of its stack
 * (a syntax error's stack starts with the location) that is not inside Node itself.
 */
export function errorLocation(error: unknown): { file: string; line: number; column?: number } | undefined {
  const stack = typeof (error as { stack?: unknown })?.stack === 'string' ? (error as { stack: string }).stack : '';
  const pattern = /(?:^|[\s(])(file:\/\/\/[^\s:()]+|\/[^\s:()]+):(\d+)(?::(\d+))?/gm;
  for (const match of stack.matchAll(pattern)) {
    const file = match[1]!.replace(/^file:\/\//, '').replace(/\?.*$/, '');
    if (file.includes('/node_modules/') || file.includes('node:internal')) continue;
    return { file, line: Number(match[2]), ...(match[3] !== undefined ? { column: Number(match[3]) } : {}) };
  }
  return undefined;
}

/**
 * Where a syntax error in `file` is: an ESM SyntaxError's stack does not say (Node prints the
 * location only for an uncaught one), so `node --check` the file — only ever on that failure path.
 */
export function syntaxErrorLocation(file: string): { file: string; line: number } | undefined {
  const check = spawnSync(process.execPath, ['--check', file], { encoding: 'utf8', timeout: 10_000 });
  const match = /^(?:file:\/\/)?(\/[^\n]*?):(\d+)\n/.exec(check.stderr ?? '');
  return match === null ? undefined : { file: match[1]!, line: Number(match[2]) };
}
