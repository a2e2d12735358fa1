/**
 * Loads the actions of a module, like `python -m rasa_sdk --actions <module>`.
 * @module
 */

import { stat } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { SluiceError } from '../protocol/errors.ts';
import { type ActionDefinition, isActionDefinition } from '../runtime/action.ts';

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
  const path = resolve(cwd, specifier);
  const info = await stat(path).catch(() => null);
  const isFile = info?.isFile() ?? false;
  // A path is never a package name: importing it as written would resolve it against this
  // file's folder and could load (and run) one of the CLI's own modules.
  if (!isFile && (isAbsolute(specifier) || /^\.\.?(?:[\\/]|$)/.test(specifier))) {
    const what = info?.isDirectory() === true ? ', which is a directory' : '';
    throw new SluiceError('not_found', `Cannot find the actions module '${specifier}' (looked for ${path}${what})`);
  }
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
    throw new SluiceError('invalid_argument', `Cannot load the actions module '${specifier}': ${(error as Error).message}`, {
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
