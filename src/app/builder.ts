/**
 * `ApplicationBuilder`: actions, transitions, state, hooks, persistence → an {@link Application}.
 * @module
 */

import { randomUUID } from 'node:crypto';
import { SluiceError } from '../protocol/errors.ts';
import type { Logger } from '../runtime/logger.ts';
import { silentLogger } from '../runtime/logger.ts';
import { type Action, type NormalizedAction, specOf, type StreamingAction } from './action.ts';
import { Application } from './application.ts';
import type { LifecycleHooks } from './hooks.ts';
import type { PersistedStep, Persister } from './persistence.ts';
import { State, type StateData } from './state.ts';
import type { RunBufferOptions } from './step.ts';
import type { StepTracker } from './tracking.ts';
import { normalizeTransitions, type Transition } from './transitions.ts';

/** How `initializeFromPersister` resumes. */
export interface InitializeOptions {
  /**
   * Continue from the saved step (default true): after a completed or interrupted step the
   * transitions choose the next action; after a failed one that action runs again. When false the
   * loaded state is kept but the app starts at the entrypoint (chat sessions).
   */
  resumeAtNextAction?: boolean;
  /** State when nothing is saved yet (default: `withState`). */
  defaultState?: StateData | State;
  /** Entrypoint when nothing is saved yet (default: `withEntrypoint`). */
  defaultEntrypoint?: string;
  /**
   * Load this step instead of the newest. It must be the app's newest step (otherwise the next
   * commit would collide with a saved one): to continue from an older step, fork.
   */
  sequenceId?: number;
  /** Start a new app (the `withIdentifiers` app id, or a new one) from another app's step. */
  forkFrom?: { appId: string; partitionKey?: string; sequenceId?: number };
}

/** Tuning. */
export interface ApplicationOptions {
  /**
   * Milliseconds a cancelled step may take to yield (or return) its final item before it is
   * committed from what it produced. Default 5,000.
   */
  graceMs?: number;
  /** Buffer settings of each step's run (`highWaterMark`, …). */
  run?: RunBufferOptions;
  logger?: Logger;
  /** How many recent step runs `application.runs` keeps. Default 32. */
  retainRuns?: number;
}

const NAME = /^[A-Za-z_][\w.:-]*$/;

/**
 * Builds an {@link Application}.
 *
 * @example
 * const app = await new ApplicationBuilder()
 *   .withActions({ counter, done })
 *   .withTransitions(['counter', 'counter', expr((s) => s.get('count') < 10)], ['counter', 'done'])
 *   .withState({ count: 0 })
 *   .withEntrypoint('counter')
 *   .withIdentifiers('app-1', 'user-42')
 *   .withPersister(persister)
 *   .initializeFromPersister(persister)
 *   .build();
 */
export class ApplicationBuilder<S extends StateData = StateData> {
  #actions = new Map<string, NormalizedAction>();
  #transitions: Transition[] = [];
  #state: State = new State();
  #entrypoint: string | null = null;
  #appId: string | null = null;
  #partitionKey = '';
  #hooks: LifecycleHooks[] = [];
  #persister: Persister | null = null;
  #loader: { persister: Persister; options: InitializeOptions } | null = null;
  #options: ApplicationOptions = {};

  /** Adds actions by name (`{ name: action }`). */
  withActions(actions: Record<string, Action<never, unknown> | Action | StreamingAction<never, unknown> | StreamingAction>): this {
    for (const [name, action] of Object.entries(actions)) {
      if (!NAME.test(name)) throw new SluiceError('invalid_argument', `withActions: '${name}' is not a valid action name`);
      if (this.#actions.has(name)) throw new SluiceError('already_exists', `withActions: an action named '${name}' is already added`);
      this.#actions.set(name, specOf(name, action));
    }
    return this;
  }

  /** Adds transitions: `[from, to]` (default) or `[from, to, condition]`. */
  withTransitions(...transitions: Transition[]): this {
    this.#transitions.push(...transitions);
    return this;
  }

  /** The initial state. */
  withState<T extends StateData>(state: T | State<T>): ApplicationBuilder<T> {
    this.#state = state instanceof State ? state : new State(state);
    return this as unknown as ApplicationBuilder<T>;
  }

  /** The first action. */
  withEntrypoint(action: string): this {
    this.#entrypoint = action;
    return this;
  }

  /** The app id (default: a new UUID) and partition key (default ''), e.g. a conversation and a user. */
  withIdentifiers(appId?: string, partitionKey?: string): this {
    if (appId !== undefined) {
      if (typeof appId !== 'string' || appId === '') throw new SluiceError('invalid_argument', 'withIdentifiers: appId must be a non-empty string');
      this.#appId = appId;
    }
    if (partitionKey !== undefined) {
      if (typeof partitionKey !== 'string') throw new SluiceError('invalid_argument', 'withIdentifiers: partitionKey must be a string');
      this.#partitionKey = partitionKey;
    }
    return this;
  }

  /** Adds lifecycle hooks (called in the order added). */
  withHooks(...hooks: LifecycleHooks[]): this {
    for (const hook of hooks) {
      if (typeof hook !== 'object' || hook === null) throw new SluiceError('invalid_argument', 'withHooks: expected hook objects');
      this.#hooks.push(hook);
    }
    return this;
  }

  /** Records every step with a tracker (a tracker is a hook). */
  withTracker(tracker: StepTracker): this {
    return this.withHooks(tracker);
  }

  /** Saves every step (in the same commit that ends it). */
  withPersister(persister: Persister): this {
    this.#persister = persister;
    return this;
  }

  /** Loads the app's saved state at build time (by app id, partition key and optional sequence id). */
  initializeFromPersister(persister: Persister, options: InitializeOptions = {}): this {
    this.#loader = { persister, options };
    return this;
  }

  /** Grace period, run buffer, logger. */
  withOptions(options: ApplicationOptions): this {
    this.#options = { ...this.#options, ...options };
    return this;
  }

  /** Validates the graph, initialises the persisters, loads saved state, and returns the app. */
  async build(): Promise<Application<S>> {
    if (this.#actions.size === 0) throw new SluiceError('invalid_argument', 'build: add actions with withActions()');
    const edges = normalizeTransitions(this.#transitions, new Set(this.#actions.keys()));
    const graceMs = this.#options.graceMs ?? 5_000;
    if (!Number.isFinite(graceMs) || graceMs < 0) throw new SluiceError('invalid_argument', 'withOptions: graceMs must be a non-negative number');

    const initialized = new Set<Persister>();
    for (const p of [this.#persister, this.#loader?.persister]) {
      if (p != null && !initialized.has(p)) {
        initialized.add(p);
        await p.initialize?.();
      }
    }

    let appId = this.#appId;
    const partitionKey = this.#partitionKey;
    let state = this.#state;
    let entrypoint = this.#entrypoint;
    let position: string | null = null;
    let nextOverride: string | null = null;
    let sequenceId = -1;

    const loader = this.#loader;
    if (loader !== null) {
      const { persister, options } = loader;
      if (options.defaultEntrypoint !== undefined) entrypoint = options.defaultEntrypoint;
      const row = await this.#load(persister, options, appId, partitionKey);
      if (row === null) {
        if (options.defaultState !== undefined) {
          state = options.defaultState instanceof State ? options.defaultState : new State(options.defaultState);
        }
      } else {
        if (options.forkFrom === undefined) appId ??= row.appId;
        if (!this.#actions.has(row.action)) {
          throw new SluiceError('failed_precondition', `The saved step ${row.sequenceId} ran action '${row.action}', which this app does not have`);
        }
        state = new State(row.state);
        sequenceId = row.sequenceId;
        if (options.resumeAtNextAction ?? true) {
          if (row.status === 'failed') nextOverride = row.action;
          else position = row.action;
        }
      }
    }

    if (position === null && nextOverride === null) {
      if (entrypoint === null) throw new SluiceError('invalid_argument', 'build: set an entrypoint with withEntrypoint()');
      if (!this.#actions.has(entrypoint)) throw new SluiceError('invalid_argument', `build: the entrypoint '${entrypoint}' is not an action`);
    }

    return new Application<S>({
      appId: appId ?? randomUUID(),
      partitionKey,
      actions: this.#actions,
      edges,
      entrypoint,
      state,
      position,
      nextOverride,
      sequenceId,
      hooks: this.#hooks.slice(),
      persister: this.#persister,
      logger: this.#options.logger ?? silentLogger,
      graceMs,
      runOptions: this.#options.run ?? {},
      retainRuns: this.#options.retainRuns ?? 32,
    });
  }

  async #load(persister: Persister, options: InitializeOptions, appId: string | null, partitionKey: string): Promise<PersistedStep | null> {
    const fork = options.forkFrom;
    if (fork !== undefined) {
      if (fork.appId === appId) throw new SluiceError('invalid_argument', 'initializeFromPersister: a fork needs a different app id than its source');
      const row = await persister.load({ appId: fork.appId, partitionKey: fork.partitionKey ?? partitionKey, sequenceId: fork.sequenceId });
      if (row === null) {
        throw new SluiceError('not_found', `initializeFromPersister: no saved step to fork from (app '${fork.appId}'${fork.sequenceId === undefined ? '' : `, step ${fork.sequenceId}`})`);
      }
      if (appId !== null && (await persister.load({ appId, partitionKey })) !== null) {
        throw new SluiceError('already_exists', `initializeFromPersister: app '${appId}' already has saved steps; fork into a new app id`);
      }
      return row;
    }
    const query = { partitionKey, ...(appId === null ? {} : { appId }) };
    if (options.sequenceId === undefined) return persister.load(query);
    if (appId === null) throw new SluiceError('invalid_argument', 'initializeFromPersister: loading a sequenceId needs an app id (withIdentifiers)');
    const row = await persister.load({ ...query, sequenceId: options.sequenceId });
    if (row === null) throw new SluiceError('not_found', `initializeFromPersister: app '${appId}' has no step ${options.sequenceId}`);
    const latest = await persister.load(query);
    if (latest !== null && latest.sequenceId > row.sequenceId) {
      throw new SluiceError(
        'failed_precondition',
        `initializeFromPersister: step ${row.sequenceId} is not app '${appId}''s newest (${latest.sequenceId}); use forkFrom to continue from it`,
      );
    }
    return row;
  }
}
