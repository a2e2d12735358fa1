/**
 * `--apps <module>`: the applications `sluice serve` mounts under `/apps/:appId/…`.
 * @module
 */

import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { AppRegistry } from '../app/registry.ts';
import { SluiceError } from '../protocol/errors.ts';

function isRegistry(value: unknown): value is AppRegistry {
  return typeof value === 'object' && value !== null && typeof (value as { get?: unknown }).get === 'function';
}

/**
 * Imports `specifier` (a file relative to `cwd`, or a package) and returns its `apps` export, or
 * its default export: an {@link AppRegistry} (e.g. a `CachedAppRegistry`), or a function (sync or
 * async) returning one. Throws `not_found` / `invalid_argument` naming the module and the problem.
 */
export async function loadApps(specifier: string, cwd = process.cwd()): Promise<AppRegistry> {
  const path = resolve(cwd, specifier);
  const url = existsSync(path) ? pathToFileURL(path).href : specifier;
  let module: Record<string, unknown>;
  try {
    module = (await import(url)) as Record<string, unknown>;
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === 'ERR_MODULE_NOT_FOUND' && url === specifier) {
      throw new SluiceError('not_found', `Cannot find the --apps module '${specifier}' (looked for ${path})`, { cause: error });
    }
    throw new SluiceError('invalid_argument', `Cannot load the --apps module '${specifier}': ${(error as Error).message}`, { cause: error });
  }
  let value = module.apps ?? module.default;
  if (typeof value === 'function') value = await (value as () => unknown)();
  if (!isRegistry(value)) {
    throw new SluiceError(
      'invalid_argument',
      `The --apps module '${specifier}' must export 'apps' (or a default export): an AppRegistry such as new CachedAppRegistry(factory), or a function returning one`,
    );
  }
  return value;
}
