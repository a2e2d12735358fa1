/**
 * `--auto-reload`: watch the actions module's folder and, on a change, import the module again and
 * swap the executor's action table (`ActionExecutor.replaceActions`). Runs already started keep
 * the action objects they began with, so their open streams go on; new runs use the new code.
 *
 * What is reloaded: the actions module and every file it imports, directly or not, from its own
 * folder and below (outside `node_modules`). ESM caches modules by URL, so each reload imports
 * them under a new `?sluice-reload=<n>` query (a resolve hook carries the query from importer to
 * import). Packages and files outside that folder stay cached: restart for those. Old module
 * versions stay in memory (ESM has no unloading), a small cost for a development feature.
 * @module
 */

import { watch, type FSWatcher } from 'node:fs';
import { registerHooks } from 'node:module';
import { dirname, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { ActionDefinition } from '../runtime/action.ts';
import type { Logger } from '../runtime/logger.ts';
import { loadActionModule } from './load-actions.ts';

const QUERY = 'sluice-reload';
const SOURCE = /\.(?:[cm]?[jt]s|json)$/;
/** Folders (as file URLs ending in `/`) whose files take their importer's reload query. */
const roots = new Set<string>();
let hooked = false;

function propagateReloadQuery(root: string): void {
  roots.add(root);
  if (hooked) return;
  hooked = true;
  registerHooks({
    resolve(specifier, context, nextResolve) {
      const result = nextResolve(specifier, context);
      const version = context.parentURL === undefined ? undefined : new RegExp(`[?&]${QUERY}=(\\d+)`).exec(context.parentURL)?.[1];
      if (version === undefined || !result.url.startsWith('file:') || result.url.includes('?') || result.url.includes('/node_modules/')) return result;
      if (![...roots].some((r) => result.url.startsWith(r))) return result;
      return { ...result, url: `${result.url}?${QUERY}=${version}` };
    },
  });
}

/** A running watcher. */
export interface ActionsWatcher {
  /** Resolves after the reload in progress (if any); for tests. */
  readonly settled: Promise<void>;
  close(): void;
}

/** Options of {@link watchActions}. */
export interface WatchActionsOptions {
  /** The actions module, as given to `--actions` (a file path). */
  specifier: string;
  cwd?: string;
  /** Called with the newly loaded actions. */
  onReload(actions: ActionDefinition[]): void;
  logger: Logger;
  /** Quiet time after the last change before reloading, ms. Default 100. */
  debounceMs?: number;
}

/**
 * Watches the module's folder (recursively, ignoring `node_modules` and dot folders) and reloads
 * after changes settle. A module that fails to load is logged and the previous actions stay.
 */
export function watchActions(options: WatchActionsOptions): ActionsWatcher {
  const path = resolve(options.cwd ?? process.cwd(), options.specifier);
  const folder = dirname(path);
  propagateReloadQuery(pathToFileURL(folder).href + '/');
  let version = 0;
  let timer: NodeJS.Timeout | undefined;
  let settled: Promise<void> = Promise.resolve();
  const reload = async (): Promise<void> => {
    const n = ++version;
    try {
      const { actions } = await loadActionModule(path, undefined, { reloadQuery: `${QUERY}=${n}` });
      options.onReload(actions);
      options.logger.info({ module: path, version: n, actions: actions.map((a) => a.name) }, 'Actions reloaded');
    } catch (error) {
      options.logger.error({ module: path, err: error }, `Actions not reloaded (the previous ones stay): ${(error as Error).message}`);
    }
  };
  const watcher: FSWatcher = watch(folder, { recursive: true }, (_event, name) => {
    const file = typeof name === 'string' ? name : '';
    if (!SOURCE.test(file) || /(?:^|[\\/])(?:node_modules|\.[^\\/]+)[\\/]/.test(file)) return;
    clearTimeout(timer);
    timer = setTimeout(() => {
      settled = settled.then(reload);
    }, options.debounceMs ?? 100);
  });
  watcher.on('error', (error) => options.logger.warn({ err: error, folder }, 'Auto-reload: watching stopped'));
  return {
    get settled() {
      return settled;
    },
    close() {
      clearTimeout(timer);
      watcher.close();
    },
  };
}
