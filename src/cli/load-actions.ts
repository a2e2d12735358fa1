/**
 * Loads the actions of a module, like `python -m rasa_sdk --actions <module>`.
 * @module
 */

import { stat } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { SluiceError } from '../protocol/errors.ts';
import { type ActionDefinition, isActionDefinition } from '../runtime/action.ts';

/** What a folder given as the actions module is loaded from, in this order. */
const INDEX_FILES = ['index.ts', 'index.js', 'index.mjs'];

/**
 * Imports `specifier` (a path to a `.ts`/`.js` file, relative to `cwd`, or a package name) and
 * returns every action it exports: exported `defineAction` values and arrays of them, each once.
 * Throws `not_found` when the module cannot be loaded and `invalid_argument` when it exports no action.
 */
export async function loadActions(specifier: string, cwd = process.cwd()): Promise<ActionDefinition[]> {
  return (await loadActionModule(specifier, cwd)).actions;
}

/**
 * {@link loadActions}, plus the module's other exports (the server looks there for extras such as
 * the model an assistant answers with).
 */
export async function loadActionModule(
  specifier: string,
  cwd = process.cwd(),
  options: { reloadQuery?: string } = {},
): Promise<{ actions: ActionDefinition[]; exports: Record<string, unknown> }> {
  let path = resolve(cwd, specifier);
  let info = await stat(path).catch(() => null);
  if (info?.isDirectory() === true) {
    // Rasa's `--actions actions` names a package folder: here, its index module.
    for (const name of INDEX_FILES) {
      const found = await stat(join(path, name)).catch(() => null);
      if (found?.isFile() === true) {
        path = join(path, name);
        info = found;
        break;
      }
    }
  }
  const isFile = info?.isFile() ?? false;
  // A path is never a package name: importing it as written would resolve it against this
  // file's folder and could load (and run) one of the CLI's own modules.
  if (!isFile && (isAbsolute(specifier) || /^\.\.?(?:[\\/]|$)/.test(specifier))) {
    const what = info?.isDirectory() === true ? `, which is a directory with no ${INDEX_FILES.join(', ')}` : '';
    throw new SluiceError('not_found', `Cannot find the actions module '${specifier}' (looked for ${path}${what})`);
  }
  const typescript = isFile && TYPESCRIPT_FILE.test(path);
  if (typescript && !process.features.typescript) throw noTypeStripping(specifier);
  let module: Record<string, unknown>;
  try {
    // `reloadQuery` (--auto-reload) imports the file again under a new URL: ESM caches by URL.
    const url = isFile ? pathToFileURL(path).href + (options.reloadQuery ? `?${options.reloadQuery}` : '') : specifier;
    module = (await import(url)) as Record<string, unknown>;
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === 'ERR_MODULE_NOT_FOUND' && !isFile) {
      throw new SluiceError('not_found', `Cannot find the actions module '${specifier}' (looked for ${path})`, { cause: error });
    }
    if (code === 'ERR_UNKNOWN_FILE_EXTENSION' && typescript) throw noTypeStripping(specifier, error);
    // The whole stack stays on `cause` (for debug logging); the one line says what and where.
    const where = errorLocation(error);
    const message = oneLine(error instanceof Error ? error.message : String(error));
    throw new SluiceError('invalid_argument', `Cannot load the actions module '${specifier}': ${message}${where ? ` (${where})` : ''}`, {
      cause: error,
    });
  }
  const found = new Map<string, ActionDefinition>();
  const add = (value: unknown): void => {
    if (!isActionDefinition(value)) return;
    const existing = found.get(value.name);
    if (existing !== undefined && existing !== value) {
      throw new SluiceError('already_exists', `The actions module '${specifier}' exports two actions named '${value.name}'`);
    }
    found.set(value.name, value);
  };
  for (const value of Object.values(module)) {
    if (Array.isArray(value)) value.forEach(add);
    else add(value);
  }
  if (found.size === 0) {
    throw new SluiceError(
      'invalid_argument',
      `The actions module '${specifier}' exports no action: export values made with defineAction()`,
    );
  }
  return { actions: [...found.values()], exports: module };
}

const TYPESCRIPT_FILE = /\.[cm]?ts$/;

/**
 * A TypeScript actions module on a Node that cannot strip types: say which Node, or use `.js`.
 * Type stripping is on by default from Node 22.18 and 23.6; Node 23 lacks `node:sqlite` APIs
 * Sluice uses, hence the versions named (the same as `engines` in package.json).
 */
function noTypeStripping(specifier: string, cause?: unknown): SluiceError {
  return new SluiceError(
    'failed_precondition',
    `Cannot load the actions module '${specifier}': Node ${process.version} does not run TypeScript; ` +
      'use Node 22.18+ or 24+ (type stripping on by default), or a compiled .js module',
    { cause },
  );
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim();
}

/** A stack frame's location: `(file:line:col)` or a bare `at file:line:col`. */
const FRAME = /^\s*at (?:.*? \()?((?:file:\/\/|\/|[A-Za-z]:\\).*?):(\d+):(\d+)\)?$/;
/** The first stack line V8/Node give a syntax error: `path:line`. */
const SYNTAX_HEAD = /^((?:file:\/\/|\/|[A-Za-z]:\\).*):(\d+)$/;

/**
 * Where an import failed, as `path:line[:col]`: for a syntax error the location Node puts first in
 * its stack; else the first stack frame in a file, preferring one outside `node_modules` (the
 * user's own code over the library it called), never one of the CLI's own. Undefined when the stack names no file (a plain-JS
 * syntax error in an ES module carries no location).
 */
export function errorLocation(error: unknown): string | undefined {
  const stack = (error as { stack?: unknown } | null)?.stack;
  if (typeof stack !== 'string') return undefined;
  const lines = stack.split('\n');
  const head = SYNTAX_HEAD.exec(lines[0] ?? '');
  if (head !== null) return `${toPath(head[1] as string)}:${head[2]}`;
  let fallback: string | undefined;
  for (const line of lines) {
    const frame = FRAME.exec(line);
    if (frame === null) continue;
    const file = toPath(frame[1] as string);
    if (file.startsWith(CLI_DIR)) break; // the loader and its callers: the module's own frames are above
    const where = `${file}:${frame[2]}:${frame[3]}`;
    if (!/[\\/]node_modules[\\/]/.test(where)) return where;
    fallback ??= where;
  }
  return fallback;
}

/** This folder (the CLI's code): frames from here are never where a module failed. */
const CLI_DIR = fileURLToPath(new URL('./', import.meta.url));

function toPath(location: string): string {
  try {
    return location.startsWith('file://') ? fileURLToPath(location) : location;
  } catch {
    return location;
  }
}
