/**
 * Where a server finds its applications: an {@link AppRegistry} maps an app id (a conversation, a
 * session, a job) to the {@link Application} that serves it. The HTTP routes of
 * `src/transports/http/app-routes.ts` (`/apps/:appId/…`) ask it for every request.
 * @module
 */

import { SluiceError } from '../protocol/errors.ts';
import type { Application } from './application.ts';
import type { ApplicationBuilder } from './builder.ts';
import type { StepTracker } from './tracking.ts';

/**
 * The applications a server serves.
 *
 * **One step at a time.** An application runs one step at a time, and a server never queues a
 * step behind another: `POST /apps/:appId/stream` for an app whose step is still streaming (or
 * still committing) is answered 409 with the running step's run id, which the client can follow
 * (`GET /apps/:appId/runs/:runId/events`) or cancel (`POST /apps/:appId/runs/:runId/cancel`). A
 * queued step would start once the client had moved on, with inputs it no longer means. So `get`
 * must return the *same* instance for an app id for as long as a step of it may run: two instances
 * of one app would each take the next sequence id, and the second commit would be refused.
 */
export interface AppRegistry {
  /**
   * The application of `appId`, or null / undefined when there is none (the routes answer 404).
   * It may also throw a `SluiceError` (`not_found` → 404, `invalid_argument` → 400, …).
   */
  get(appId: string): Application | null | undefined | Promise<Application | null | undefined>;
  /**
   * The application of `appId` built again from its saved steps, because another instance has
   * committed a step since this one was built. Needed to serve one app from several instances
   * (`createHttpServer({ stepLocks })`); never called for an app with a step in progress here.
   */
  reload?(appId: string): Application | null | undefined | Promise<Application | null | undefined>;
  /**
   * Records the steps of the registry's apps; `GET /apps/:appId/runs` lists them. Without one that
   * route answers `{ tracked: false, runs: [] }`.
   */
  readonly tracker?: Pick<StepTracker, 'listRuns' | 'listApps'> | null | undefined;
}

/**
 * Makes the builder of an app id's application, or null when the id names no app. The builder
 * must set that app id (`withIdentifiers(appId, …)`); to resume saved apps, give it a persister
 * and `initializeFromPersister`.
 */
export type AppFactory = (appId: string) => ApplicationBuilder<any> | null | undefined | Promise<ApplicationBuilder<any> | null | undefined>;

/** Options of a {@link CachedAppRegistry}. */
export interface CachedAppRegistryOptions {
  /**
   * Added to every builder the factory makes (`withTracker`), and serves `GET /apps/:appId/runs`.
   * Do not add it in the factory too: each step would be recorded twice.
   */
  tracker?: StepTracker;
  /**
   * Most applications kept in memory. Past it, the least recently used apps with no step in
   * progress are dropped and built again on their next request, so set it only when the factory
   * loads apps from a persister (an app without one would lose its state); a dropped app's
   * finished runs can no longer be resumed. Default 10,000 (every cache is bounded: an app id is
   * client input, and an unbounded cache lets one client fill the heap).
   */
  maxApps?: number;
}

interface Entry {
  promise: Promise<Application | null>;
  /** Set once built. */
  app: Application | null;
}

/**
 * A registry that builds each app id's application on first use, from a factory, and keeps it.
 * Concurrent first requests for one id share one build; a build that fails (or a factory that
 * returns null) is not kept, so the next request tries again.
 *
 * @example
 * const persister = new SQLitePersister();
 * const apps = new CachedAppRegistry(
 *   (appId) =>
 *     new ApplicationBuilder()
 *       .withActions({ respond })
 *       .withTransitions(['respond', 'respond'])
 *       .withState({ history: [] })
 *       .withEntrypoint('respond')
 *       .withIdentifiers(appId)
 *       .withPersister(persister)
 *       .initializeFromPersister(persister),
 *   { tracker: new SQLiteTracker() },
 * );
 * createHttpServer({ executor, apps });
 */
export class CachedAppRegistry implements AppRegistry {
  readonly tracker: StepTracker | null;
  readonly #factory: AppFactory;
  readonly #maxApps: number;
  /** In least-recently-used order (a hit moves its entry to the end). */
  readonly #entries = new Map<string, Entry>();

  constructor(factory: AppFactory, options: CachedAppRegistryOptions = {}) {
    if (typeof factory !== 'function') throw new SluiceError('invalid_argument', 'CachedAppRegistry: expected a factory function (appId) => ApplicationBuilder');
    const maxApps = options.maxApps ?? 10_000;
    if (maxApps !== Infinity && (!Number.isInteger(maxApps) || maxApps < 1)) {
      throw new SluiceError('invalid_argument', `CachedAppRegistry: 'maxApps' must be a positive integer (got ${String(options.maxApps)})`);
    }
    this.#factory = factory;
    this.#maxApps = maxApps;
    this.tracker = options.tracker ?? null;
  }

  /** Applications in memory (built or being built). */
  get size(): number {
    return this.#entries.size;
  }

  get(appId: string): Promise<Application | null> {
    const hit = this.#entries.get(appId);
    if (hit !== undefined) {
      this.#entries.delete(appId);
      this.#entries.set(appId, hit);
      return hit.promise;
    }
    const entry: Entry = { promise: Promise.resolve(null), app: null };
    entry.promise = this.#build(appId).then(
      (app) => {
        if (app === null) this.#forget(appId, entry);
        else {
          entry.app = app;
          this.#evict();
        }
        return app;
      },
      (error: unknown) => {
        this.#forget(appId, entry);
        throw error;
      },
    );
    this.#entries.set(appId, entry);
    return entry.promise;
  }

  /**
   * Drops the app (unless a step of it is in progress here) and builds it again: the factory loads
   * it from its persister, which must be the one every instance shares.
   */
  reload(appId: string): Promise<Application | null> {
    const hit = this.#entries.get(appId);
    if (hit !== undefined && (hit.app === null || hit.app.currentRun !== null)) return hit.promise;
    this.#entries.delete(appId);
    return this.get(appId);
  }

  async #build(appId: string): Promise<Application | null> {
    const builder = await this.#factory(appId);
    if (builder === null || builder === undefined) return null;
    if (this.tracker !== null) builder.withTracker(this.tracker);
    const app = await builder.build();
    if (app.appId !== appId) {
      // Its steps would be saved and tracked under another id than the one it is served by.
      throw new SluiceError('internal', `CachedAppRegistry: the factory built app '${app.appId}' for id '${appId}': call withIdentifiers(appId)`);
    }
    return app;
  }

  #forget(appId: string, entry: Entry): void {
    if (this.#entries.get(appId) === entry) this.#entries.delete(appId);
  }

  #evict(): void {
    if (this.#entries.size <= this.#maxApps) return;
    for (const [appId, entry] of this.#entries) {
      if (this.#entries.size <= this.#maxApps) return;
      // Never an app that is still being built or has a step in progress.
      if (entry.app !== null && entry.app.currentRun === null) this.#entries.delete(appId);
    }
  }
}
