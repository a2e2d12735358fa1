/**
 * Applications over HTTP, as a Fastify plugin: each POST runs an application's next step and
 * answers with the step's {@link Run} as Server-Sent Events, framed exactly like
 * `POST /webhook/stream` (`id: <seq>`, `event: <type>`, `data: <json>`, `: ping` comments).
 *
 * | route | does |
 * |---|---|
 * | `POST /apps/:appId/stream` | body `{ inputs?, haltAfter? }`: runs up to the first `haltAfter` action (default: the next action) and streams that step |
 * | `GET /apps/:appId/runs/:runId/events` | follows or resumes a recent step's run (`Last-Event-ID` or `?after=`); never cancels it |
 * | `POST /apps/:appId/runs/:runId/cancel` | stops a step; answers once it is committed (as `interrupted`) |
 * | `GET /apps/:appId/state` | the committed state, sequence id, position, next action and the step in progress |
 * | `GET /apps/:appId/runs` | the tracked steps, newest first (`?limit=`, default 100), with the state after each and its result |
 * | `GET /apps` | the app instances the tracker has steps of, most recently active first (`?limit=`) |
 *
 * Decisions:
 * - **One step at a time, never queued.** A POST for an app whose step is still running (or
 *   committing) gets 409 with the running step's `runId`: follow it with `…/events`, or cancel it.
 *   A queued step would start after the client had moved on. An app whose graph has ended (no next
 *   action) gets 409 too.
 * - **Disconnect vs cancel**, as on `/webhook/stream`: a client that leaves the POST's stream
 *   cancels its step (committed as `interrupted`), also while the steps before the streamed one run
 *   through; `?detach=true` (or `X-Sluice-Detach: true`) lets the step go on, to be resumed with
 *   `…/events`. Readers of `…/events` never cancel.
 * - **Failures.** Once the request is valid the answer is a stream: a step that fails before its
 *   first item (even a step before the streamed one) is streamed too, ending with its `error` and
 *   `run-end` events. Bad requests get JSON `{ error, code }`: 400 naming the field, 404 for an
 *   unknown app or run.
 * - **Steps before the streamed one** (`haltAfter` naming a later action) run through without
 *   being streamed; their runs are listed by `…/runs` and readable with `…/events`. Name actions,
 *   not `@tag:`s: a `haltAfter` that is never reached runs the graph to its end, and a tag that
 *   matches nothing would be such a one. Such a call is stopped by disconnecting, or by cancelling
 *   the step that `…/state` shows running.
 * - **Without a tracker** `GET /apps/:appId/runs` answers `{ appId, tracked: false, runs: [] }`
 *   rather than 404: the app exists, it just keeps no records.
 * - **Ownership.** With authentication on, app instances belong to their principal: the registry
 *   is asked for `<principal>:<appId>`, so the same app id used by another principal is another
 *   instance (its own state, persisted under its own key), and someone else's is never reached.
 *   Without authentication an app id is a capability: choose random ones.
 * - **Several instances** (`stepLocks`, e.g. `RedisStepLocks`, and `findRun`): the one-step rule
 *   holds across instances through a lock each step holds from the POST to its commit, so a POST
 *   on another instance gets the same 409 with the same run id; the lock also records the last
 *   committed step, and an instance whose copy of the app is older builds it again from the
 *   shared persister (`AppRegistry.reload`) before running or showing it. Step runs are appended
 *   to the shared log (`onRun`), so `…/events` resumes and `…/cancel` stops a step on any
 *   instance. The apps' persister (and tracker) must be one all instances share (PostgreSQL).
 * - **Closing the server** ends the open streams and cancels the steps this plugin started
 *   (detached ones too), waiting for their commits, so none is left half done.
 * @module
 */

import type { OutgoingHttpHeaders } from 'node:http';
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { Inputs } from '../../app/action.ts';
import type { Application } from '../../app/application.ts';
import type { StreamingResultContainer } from '../../app/container.ts';
import type { AppRegistry } from '../../app/registry.ts';
import type { CommittedStep, LockView, StepLease, StepLocks } from '../../app/step-locks.ts';
import { pipeEvents } from '../../channels/pipe-events.ts';
import { ownerOf } from '../../channels/principal.ts';
import { carriedHeaders, dropEmptyBodyType, requestErrorHandler } from '../../channels/request-hooks.ts';
import { HTTP_STATUS, SluiceError } from '../../protocol/errors.ts';
import { createLogger, type Logger } from '../../runtime/logger.ts';
import type { Run } from '../../runtime/run.ts';
import type { Subscription } from '../../runtime/subscription.ts';
import { RUN_ID_HEADER, detachRequested, resumePoint } from './sse-routes.ts';
import { SseWriter, formatSseEvent } from '../../channels/sse-writer.ts';

/** Options of {@link appRoutes}. */
export interface AppRoutesOptions {
  /** Finds the application of each app id. */
  apps: AppRegistry;
  /** Silence (ms) after which a `: ping` comment keeps a stream alive. Default 15,000; must be > 0. */
  pingIntervalMs?: number;
  /** End a stream after this many ms (the step goes on and can be resumed). Default: no limit. */
  maxDurationMs?: number;
  /** Drop a reader that takes no data for this many ms (see `SseWriterOptions.stallTimeoutMs`). Default 30,000. */
  stallTimeoutMs?: number;
  /** Default: a pino logger (`createLogger()`). */
  logger?: Logger;
  /**
   * Told about every step run this plugin starts, with the owner to record for it (its app): the
   * server hands them to its executor (`adopt`), for the drain and, with several instances, the
   * shared log.
   */
  onRun?: (run: Run, owner: string) => void;
  /** One step at a time across instances (see the module notes); needs `apps.reload`. Default: this instance's memory only. */
  stepLocks?: StepLocks;
  /** Finds a step's run that this instance does not hold (another instance's, from the shared log). */
  findRun?: (runId: string) => Promise<Run | undefined>;
}

/** The owner recorded for the runs of the app `appKey` in a shared log: only its app's routes reach them. */
export function appRunOwner(appKey: string): string {
  return `app:${appKey}`;
}

/** Response header: the action of the streamed step. */
export const ACTION_HEADER = 'x-sluice-action';
/** Response header: the sequence id of the streamed step. */
export const SEQUENCE_ID_HEADER = 'x-sluice-sequence-id';

/** Longest app id accepted in a URL. */
const MAX_APP_ID_LENGTH = 256;
const MAX_LIMIT = 10_000;
const BODY_FIELDS = ['inputs', 'haltAfter'];
/** Headers a hijacked response must not inherit from the reply: they describe a body we do not send. */

/** A step started by this plugin, from the POST until its commit (and post hooks) are done. */
interface ActiveStep {
  key: string;
  app: Application;
  /** The step lock held across instances (with `stepLocks`). */
  lease: StepLease | null;
  /** Null while the steps before the streamed one run through. */
  run: Run | null;
  /** Settles once the step is committed and its post hooks (the tracker) have run. */
  settled: Promise<void> | null;
  released: Promise<void>;
  release: () => void;
}

interface StreamBody {
  inputs?: Inputs;
  haltAfter?: string[];
}

function invalid(message: string): SluiceError {
  return new SluiceError('invalid_argument', message);
}

function disconnected(): SluiceError {
  return new SluiceError('cancelled', 'The client disconnected', { details: { reason: 'disconnect' } });
}

function kindOf(value: unknown): string {
  return value === null ? 'null' : Array.isArray(value) ? 'an array' : `a ${typeof value}`;
}

/** The `?limit=` of a listing (undefined: none), or null once a bad one was answered 400. */
function limitOrReply(request: FastifyRequest, reply: FastifyReply): number | undefined | null {
  try {
    return parseLimit(request);
  } catch (thrown) {
    sendError(reply, SluiceError.from(thrown));
    return null;
  }
}

/** Checks the body of `POST /apps/:appId/stream` (absent or empty: `{}`). */
function parseStreamBody(body: unknown): StreamBody {
  if (body === undefined || body === null) return {};
  if (typeof body !== 'object' || Array.isArray(body)) {
    throw invalid(`Invalid request body: expected a JSON object like { "inputs": {…}, "haltAfter": ["action"] } (got ${kindOf(body)})`);
  }
  const fields = body as Record<string, unknown>;
  // Unknown fields are refused: a misspelt `haltAfter` would silently stream another step.
  for (const key of Object.keys(fields)) {
    if (!BODY_FIELDS.includes(key)) throw invalid(`Invalid request body: unknown field '${key}' (expected ${BODY_FIELDS.join(', ')})`);
  }
  const out: StreamBody = {};
  const { inputs, haltAfter } = fields;
  if (inputs !== undefined && inputs !== null) {
    if (typeof inputs !== 'object' || Array.isArray(inputs)) throw invalid(`inputs: expected a JSON object (got ${kindOf(inputs)})`);
    out.inputs = inputs as Inputs;
  }
  if (haltAfter !== undefined && haltAfter !== null) {
    if (!Array.isArray(haltAfter) || haltAfter.length === 0 || haltAfter.some((name) => typeof name !== 'string' || name === '')) {
      throw invalid(`haltAfter: expected a non-empty array of action names (got ${kindOf(haltAfter)})`);
    }
    out.haltAfter = haltAfter as string[];
  }
  return out;
}

function checkHaltAfter(app: Application, names: string[]): void {
  const actions = app.actions;
  for (const name of names) {
    if (name.startsWith('@tag:')) throw invalid(`haltAfter: '${name}': tags are not accepted here; name the actions`);
    if (!actions.includes(name)) throw invalid(`haltAfter: unknown action '${name}' (the app's actions: ${actions.join(', ')})`);
  }
}

function parseLimit(request: FastifyRequest): number | undefined {
  const raw = ((request.query ?? {}) as Record<string, unknown>).limit;
  if (raw === undefined) return undefined;
  const text = String(Array.isArray(raw) ? raw[raw.length - 1] : raw).trim();
  const limit = /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT) throw invalid(`limit: expected an integer from 1 to ${MAX_LIMIT} (got '${text}')`);
  return limit;
}

function sendError(reply: FastifyReply, error: SluiceError, status: number = HTTP_STATUS[error.code], extra: Record<string, unknown> = {}): void {
  reply.code(status).send({ error: error.message, code: error.code, ...extra });
}

function streamHeaders(reply: FastifyReply, run: Run, extra: OutgoingHttpHeaders): OutgoingHttpHeaders {
  const headers = Object.assign(carriedHeaders(reply), extra);
  headers[RUN_ID_HEADER] = run.id;
  return headers;
}

/** How long a cancel on another instance than the step's waits for its commit to be recorded. */
const COMMIT_WAIT_MS = 10_000;

/** True when `app` holds the last committed step recorded across instances. */
function isCurrent(app: Application, committed: CommittedStep | undefined): boolean {
  return committed !== undefined && committed.sequenceId === app.sequenceId;
}

/** 409: the app is running a step (here or on another instance). */
function sendBusy(reply: FastifyReply, appId: string, holder: { runId: string | null; action: string | null } | null): void {
  const runId = holder?.runId ?? null;
  const route = `/apps/${encodeURIComponent(appId)}/runs/${runId ?? ':runId'}`;
  const what = runId === null ? 'is already starting a step' : `is already running a step ('${holder?.action ?? ''}', run ${runId})`;
  sendError(
    reply,
    new SluiceError('already_exists', `App '${appId}' ${what}: one step runs at a time. Follow it with GET ${route}/events or stop it with POST ${route}/cancel`, {
      details: { reason: 'busy' },
    }),
    409,
    { reason: 'busy', runId },
  );
}

/** Serves the routes of one plugin registration. */
class AppEndpoints {
  readonly #apps: AppRegistry;
  readonly #pingIntervalMs: number;
  readonly #maxDurationMs: number | undefined;
  readonly #stallTimeoutMs: number | undefined;
  readonly #logger: Logger;
  readonly #onRun: ((run: Run, owner: string) => void) | undefined;
  readonly #locks: StepLocks | undefined;
  readonly #findShared: ((runId: string) => Promise<Run | undefined>) | undefined;
  /** The step of each app key that this plugin is running (one at most). */
  readonly #active = new Map<string, ActiveStep>();
  readonly #running = new Set<ActiveStep>();
  readonly #writers = new Set<SseWriter>();
  #closing = false;

  constructor(options: AppRoutesOptions) {
    if (typeof options?.apps?.get !== 'function') throw invalid("appRoutes: option 'apps' must be an AppRegistry (an object with get(appId))");
    this.#apps = options.apps;
    this.#onRun = options.onRun;
    this.#locks = options.stepLocks;
    this.#findShared = options.findRun;
    if (this.#locks !== undefined && typeof this.#apps.reload !== 'function') {
      throw invalid("appRoutes: with 'stepLocks' the registry must implement reload(appId) (CachedAppRegistry does): an instance rebuilds an app another instance has stepped");
    }
    const ping = options.pingIntervalMs ?? 15_000;
    if (typeof ping !== 'number' || !Number.isFinite(ping) || ping <= 0) throw invalid(`appRoutes: option 'pingIntervalMs' must be a number > 0 (got ${String(ping)})`);
    this.#pingIntervalMs = ping;
    const max = options.maxDurationMs;
    if (max !== undefined && (typeof max !== 'number' || !Number.isFinite(max) || max <= 0)) {
      throw invalid(`appRoutes: option 'maxDurationMs' must be a number > 0 (got ${String(max)})`);
    }
    this.#maxDurationMs = max;
    const stall = options.stallTimeoutMs;
    if (stall !== undefined && (typeof stall !== 'number' || !Number.isFinite(stall) || stall <= 0)) {
      throw invalid(`appRoutes: option 'stallTimeoutMs' must be a number > 0 (got ${String(stall)})`);
    }
    this.#stallTimeoutMs = stall;
    this.#logger = options.logger ?? createLogger();
  }

  /** `POST /apps/:appId/stream`. */
  async stream(request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const appId = appIdParam(request, reply);
    if (appId === null) return;
    let body: StreamBody;
    let detach: boolean;
    try {
      body = parseStreamBody(request.body);
      detach = detachRequested(request);
    } catch (thrown) {
      sendError(reply, SluiceError.from(thrown, 'invalid_argument', 'Invalid request'));
      return;
    }
    const key = appKey(request, appId);
    let app = await this.#resolve(key, appId, reply);
    if (app === null) return;

    // From here to `#active.set` nothing awaits: two POSTs cannot both find the app idle.
    const busy = this.#busyRun(key, app);
    if (busy !== undefined) {
      sendBusy(reply, appId, busy === null ? null : { runId: busy.id, action: busy.action });
      return;
    }
    let release!: () => void;
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    const entry: ActiveStep = { key, app, lease: null, run: null, settled: null, released, release };
    this.#active.set(key, entry);
    this.#running.add(entry);

    if (this.#locks !== undefined) {
      app = await this.#lockStep(entry, appId, reply);
      if (app === null) return;
    }
    const next = app.nextAction;
    if (next === null) {
      this.#release(entry);
      const error = new SluiceError('failed_precondition', `App '${appId}' has finished: its graph has no next action`);
      sendError(reply, error, 409, { reason: 'no_next_action' });
      return;
    }
    const haltAfter = body.haltAfter ?? [next];
    try {
      checkHaltAfter(app, haltAfter);
    } catch (thrown) {
      this.#release(entry);
      sendError(reply, SluiceError.from(thrown));
      return;
    }
    const owner = appRunOwner(key);
    const earlier = new Set(app.runs.map((run) => run.id));
    // Runs of the steps this call ran through, readable on other instances too.
    const shareThrough = (streamed: Run | null): void => {
      for (const run of app.runs) if (run !== streamed && !earlier.has(run.id)) this.#onRun?.(run, owner);
    };

    // Until the stream opens (the steps before the streamed one run through), the response's own
    // `close` is the disconnect; the call's signal reaches every step the call runs.
    const controller = detach ? null : new AbortController();
    const onEarlyClose = (): void => controller?.abort(disconnected());
    if (controller !== null) reply.raw.once('close', onEarlyClose);
    let container: StreamingResultContainer;
    try {
      [, container] = await app.streamResult({ haltAfter, inputs: body.inputs ?? {}, signal: controller?.signal });
    } catch (thrown) {
      reply.raw.off('close', onEarlyClose);
      shareThrough(null);
      this.#release(entry);
      const failed = app.lastStep;
      const run = failed !== null && failed.status === 'failed' && failed.error === thrown ? app.getRun(failed.runId) : undefined;
      if (run !== undefined) {
        await this.#pipe(reply, appId, run, run.subscribe(), false, failed as { action: string; sequenceId: number });
        return;
      }
      this.#sendThrown(reply, thrown, appId);
      return;
    }
    reply.raw.off('close', onEarlyClose);
    const run = container.run;
    if (run === null) {
      // Only a halt-before pass-through has no run, and this route sets no haltBefore.
      this.#release(entry);
      this.#sendThrown(reply, new SluiceError('internal', 'The step produced no run'), appId);
      return;
    }
    entry.run = run;
    shareThrough(run);
    this.#onRun?.(run, owner);
    if (entry.lease !== null) {
      void entry.lease.setRun(run.id, container.action ?? run.action);
      // Committed once its run has ended: other instances may step the app from then on.
      void run.done.then(() => this.#releaseLease(entry));
    }
    const sub = run.subscribe();
    // Pulls the step at the pace of its slowest reader; a cancel (or disconnect) commits it at once.
    entry.settled = container.outcome().then(
      () => this.#release(entry),
      (error: unknown) => {
        this.#logger.error({ err: error, appId, runId: run.id }, 'appRoutes: the step could not be finished');
        this.#release(entry);
      },
    );
    if (this.#closing) run.cancel(new SluiceError('cancelled', 'The server is shutting down', { details: { reason: 'shutdown' } }));
    await this.#pipe(reply, appId, run, sub, !detach, { action: container.action ?? run.action, sequenceId: container.sequenceId });
  }

  /** `GET /apps/:appId/runs/:runId/events`. */
  async events(request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const found = await this.#findRun(request, reply);
    if (found === null) return;
    const { appId, run } = found;
    let sub: Subscription;
    try {
      sub = run.subscribe({ after: resumePoint(request) });
    } catch (thrown) {
      // out_of_range (the log no longer holds those events) maps to 410 Gone.
      sendError(reply, SluiceError.from(thrown));
      return;
    }
    await this.#pipe(reply, appId, run, sub, false, null);
  }

  /** `POST /apps/:appId/runs/:runId/cancel`. */
  async cancel(request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const found = await this.#findRun(request, reply);
    if (found === null) return;
    const { app, run, key } = found;
    if (!run.cancel(new SluiceError('cancelled', 'Cancelled by the client', { details: { reason: 'stop' } }))) {
      const state =
        run.state === 'ended'
          ? `has already ended (${run.endReason ?? 'ended'})`
          : run.state === 'cancelled'
            ? 'is already being cancelled'
            : 'has already produced its result';
      sendError(reply, new SluiceError('failed_precondition', `Run '${run.id}' ${state}`), 409);
      return;
    }
    // Answer once the step is committed, so a following GET …/state or …/runs already shows it.
    const entry = this.#active.get(key);
    let record: Pick<CommittedStep, 'sequenceId' | 'status' | 'runId'> | null = null;
    if (entry !== undefined && entry.run === run && entry.settled !== null) {
      await entry.settled;
    } else {
      await run.done;
      // Another instance's step: its commit shows when that instance gives the lock up.
      if (this.#locks !== undefined && app.getRun(run.id) === undefined) record = await this.#committedRun(key, run.id);
    }
    if (app.lastStep?.runId === run.id) record = app.lastStep;
    reply.send({ cancelled: true, runId: run.id, action: run.action, sequenceId: record?.sequenceId ?? null, status: record?.status ?? null });
  }

  /** `GET /apps/:appId/state`. */
  async state(request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const appId = appIdParam(request, reply);
    if (appId === null) return;
    const key = appKey(request, appId);
    let app = await this.#resolve(key, appId, reply);
    if (app === null) return;
    const local = this.#busyRun(key, app);
    let running: { runId: string | null; action: string | null } | null = local === undefined ? null : { runId: local?.id ?? null, action: local?.action ?? null };
    let last: Pick<CommittedStep, 'action' | 'sequenceId' | 'status' | 'runId'> | null = app.lastStep;
    if (this.#locks !== undefined && local === undefined) {
      // Another instance may be running a step, or may have committed one since this copy was built.
      let view: LockView;
      try {
        view = await this.#locks.inspect(key);
        if (view.holder === null && !isCurrent(app, view.committed)) app = (await this.#apps.reload!(key)) ?? app;
      } catch (thrown) {
        this.#sendThrown(reply, thrown, appId);
        return;
      }
      running = view.holder;
      if (view.committed !== undefined && view.committed.sequenceId === app.sequenceId && (last === null || last.sequenceId < view.committed.sequenceId)) last = view.committed;
    }
    reply.send({
      appId,
      partitionKey: app.partitionKey,
      sequenceId: app.sequenceId,
      position: app.position,
      nextAction: app.nextAction,
      state: app.state.toJSON(),
      running,
      lastStep: last === null ? null : { action: last.action, sequenceId: last.sequenceId, status: last.status, runId: last.runId },
    });
  }

  /** `GET /apps`: the tracked app instances (an empty list, `tracked: false`, without a tracker that lists them). */
  async list(request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const limit = limitOrReply(request, reply);
    if (limit === null) return;
    const tracker = this.#apps.tracker;
    if (tracker?.listApps === undefined) {
      reply.send({ tracked: false, apps: [] });
      return;
    }
    try {
      reply.send({ tracked: true, apps: await tracker.listApps(limit === undefined ? {} : { limit }) });
    } catch (thrown) {
      this.#sendThrown(reply, thrown, '');
    }
  }

  /** `GET /apps/:appId/runs`. */
  async runs(request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const appId = appIdParam(request, reply);
    if (appId === null) return;
    const limit = limitOrReply(request, reply);
    if (limit === null) return;
    const app = await this.#resolve(appKey(request, appId), appId, reply);
    if (app === null) return;
    const tracker = this.#apps.tracker;
    if (tracker === undefined || tracker === null) {
      reply.send({ appId, tracked: false, runs: [] });
      return;
    }
    const options = limit === undefined ? { partitionKey: app.partitionKey } : { partitionKey: app.partitionKey, limit };
    try {
      reply.send({ appId, tracked: true, runs: await tracker.listRuns(app.appId, options) });
    } catch (thrown) {
      this.#sendThrown(reply, thrown, appId);
    }
  }

  /** Ends the open streams (their readers can resume elsewhere). */
  endStreams(): void {
    for (const writer of this.#writers) writer.end('ended', ': server shutting down\n\n');
  }

  /** Cancels the steps this plugin started and waits for their commits. */
  async cancelSteps(): Promise<void> {
    this.#closing = true;
    const reason = new SluiceError('cancelled', 'The server is shutting down', { details: { reason: 'shutdown' } });
    for (const entry of this.#running) {
      if (entry.run !== null) entry.run.cancel(reason);
      else entry.app.cancel(reason.message);
    }
    await Promise.all([...this.#running].map((entry) => entry.released));
  }

  /**
   * The run of the app's step in progress; null when one is starting (steps before it run
   * through); undefined when the app is idle. Steps started in-process (`app.streamResult`) count.
   */
  #busyRun(key: string, app: Application): Run | null | undefined {
    const entry = this.#active.get(key);
    // A step whose run has ended is committed (its post hooks may still run): the next POST may
    // start, and the app runs it once those hooks are done.
    if (entry !== undefined && entry.run?.state !== 'ended') return entry.run ?? entry.app.currentRun;
    return app.currentRun ?? undefined;
  }

  /**
   * Takes the app's step lock for `entry` (several instances) and brings the app up to the last
   * committed step; null once the request was answered (busy elsewhere, store unreachable).
   */
  async #lockStep(entry: ActiveStep, appId: string, reply: FastifyReply): Promise<Application | null> {
    try {
      const { lease, view } = await this.#locks!.acquire(entry.key);
      if (lease === null) {
        this.#release(entry);
        sendBusy(reply, appId, view.holder);
        return null;
      }
      entry.lease = lease;
      if (!isCurrent(entry.app, view.committed)) {
        const fresh = await this.#apps.reload!(entry.key);
        if (fresh === null || fresh === undefined) throw new SluiceError('not_found', `No app found with id '${appId}'`);
        entry.app = fresh;
      }
      return entry.app;
    } catch (thrown) {
      this.#release(entry);
      this.#sendThrown(reply, thrown, appId);
      return null;
    }
  }

  /** Waits (bounded) until another instance gave up the lock it held for `runId`; its commit, if recorded. */
  async #committedRun(key: string, runId: string): Promise<CommittedStep | null> {
    const until = Date.now() + COMMIT_WAIT_MS;
    for (;;) {
      const view = await this.#locks!.inspect(key).catch(() => null);
      if (view !== null && view.holder?.runId !== runId) return view.committed?.runId === runId ? view.committed : null;
      if (Date.now() >= until) return null;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  #release(entry: ActiveStep): void {
    if (this.#active.get(entry.key) === entry) this.#active.delete(entry.key);
    this.#running.delete(entry);
    this.#releaseLease(entry);
    entry.release();
  }

  /** Gives the app's step lock up (idempotent), recording the app's last commit. */
  #releaseLease(entry: ActiveStep): void {
    const last = entry.app.lastStep;
    void entry.lease?.release(last === null ? null : { sequenceId: last.sequenceId, action: last.action, status: last.status, runId: last.runId });
  }

  async #resolve(key: string, appId: string, reply: FastifyReply): Promise<Application | null> {
    let app: Application | null | undefined;
    try {
      app = await this.#apps.get(key);
    } catch (thrown) {
      this.#sendThrown(reply, thrown, appId);
      return null;
    }
    if (app === null || app === undefined) {
      sendError(reply, new SluiceError('not_found', `No app found with id '${appId}'`));
      return null;
    }
    return app;
  }

  /** The app and run of a `/apps/:appId/runs/:runId/…` URL; null once a 400 or 404 has been answered. */
  async #findRun(request: FastifyRequest, reply: FastifyReply): Promise<{ appId: string; key: string; app: Application; run: Run } | null> {
    const appId = appIdParam(request, reply);
    if (appId === null) return null;
    const key = appKey(request, appId);
    const app = await this.#resolve(key, appId, reply);
    if (app === null) return null;
    const { runId } = request.params as { runId: string };
    let run = app.getRun(runId);
    if (run === undefined && this.#findShared !== undefined) {
      try {
        const shared = await this.#findShared(runId);
        // Only a run recorded as this app's: another app's (or a plain action run) is unknown here.
        if (shared !== undefined && shared.owner === appRunOwner(key)) run = shared;
      } catch (thrown) {
        this.#sendThrown(reply, thrown, appId);
        return null;
      }
    }
    if (run === undefined) {
      sendError(reply, new SluiceError('not_found', `App '${appId}' has no run with id '${runId}': it never existed or is no longer retained`));
      return null;
    }
    return { appId, key, app, run };
  }

  /** A SluiceError keeps its code and public message; anything else is logged and answered 500. */
  #sendThrown(reply: FastifyReply, thrown: unknown, appId: string): void {
    if (!SluiceError.isInstance(thrown)) {
      this.#logger.error({ err: thrown, appId }, 'appRoutes: request failed');
      reply.code(500).send({ error: 'Internal server error', code: 'internal' });
      return;
    }
    if (thrown.code === 'internal') this.#logger.error({ err: thrown, appId }, 'appRoutes: request failed');
    const reason = thrown.details.reason;
    if (reason === 'no_next_action') sendError(reply, thrown, 409, { reason });
    else sendError(reply, thrown);
  }

  /**
   * Streams a subscription until `run-end`, a disconnect or the maximum duration. Events already
   * waiting go out in one write; a full socket stops the reading, which makes the step wait.
   */
  async #pipe(
    reply: FastifyReply,
    appId: string,
    run: Run,
    sub: Subscription,
    cancelOnDisconnect: boolean,
    step: { action: string; sequenceId: number | null } | null,
  ): Promise<void> {
    reply.hijack();
    const writer = new SseWriter(reply.raw, {
      pingIntervalMs: this.#pingIntervalMs,
      maxDurationMs: this.#maxDurationMs,
      maxDurationNotice: `: max duration reached; resume with GET /apps/${encodeURIComponent(appId)}/runs/${run.id}/events and Last-Event-ID\n\n`,
      stallTimeoutMs: this.#stallTimeoutMs,
    });
    this.#writers.add(writer);
    writer.onclose = (reason) => {
      this.#writers.delete(writer);
      sub.unsubscribe(); // wakes the loop below if it waits for an event
      if ((reason === 'disconnected' || reason === 'too-slow') && cancelOnDisconnect) run.cancel(disconnected());
    };
    const extra: OutgoingHttpHeaders = {};
    if (step !== null) {
      extra[ACTION_HEADER] = step.action;
      if (step.sequenceId !== null) extra[SEQUENCE_ID_HEADER] = String(step.sequenceId);
    }
    writer.open(streamHeaders(reply, run, extra));
    try {
      await pipeEvents(run, sub, formatSseEvent, writer);
    } catch (error) {
      this.#logger.error({ err: error, appId, runId: run.id }, 'appRoutes: the stream failed');
    } finally {
      sub.unsubscribe();
      writer.end();
    }
  }
}

/**
 * The id the registry is asked for: the URL's app id, prefixed with the principal when
 * authentication is on. App ids are chosen by clients, so each principal has its own: another
 * principal's app id names another app instance (built and persisted under its own key), never
 * theirs.
 */
function appKey(request: FastifyRequest, appId: string): string {
  const owner = ownerOf(request);
  return owner === undefined ? appId : `${encodeURIComponent(owner)}:${appId}`;
}

function appIdParam(request: FastifyRequest, reply: FastifyReply): string | null {
  const appId = (request.params as { appId?: unknown }).appId;
  if (typeof appId !== 'string' || appId === '' || appId.length > MAX_APP_ID_LENGTH) {
    sendError(reply, invalid(`Invalid app id: expected 1 to ${MAX_APP_ID_LENGTH} characters`));
    return null;
  }
  return appId;
}

/**
 * Registers the application routes (see the module comment). Throws `invalid_argument` for an
 * invalid option. `createHttpServer({ apps })` registers it with the server's SSE settings.
 *
 * @example
 * const apps = new CachedAppRegistry((appId) => chatApp(appId), { tracker: new SQLiteTracker() });
 * const server = Fastify();
 * await server.register(appRoutes, { apps });
 * // curl -N -X POST localhost:3000/apps/demo/stream -H 'content-type: application/json' -d '{"inputs":{"message":"hi"}}'
 */
export const appRoutes: FastifyPluginAsync<AppRoutesOptions> = async (app: FastifyInstance, options: AppRoutesOptions) => {
  const logger = options?.logger ?? createLogger();
  const endpoints = new AppEndpoints({ ...options, logger });
  app.setErrorHandler(requestErrorHandler(logger, 'appRoutes'));
  app.addHook('preClose', async () => {
    endpoints.endStreams();
    await endpoints.cancelSteps();
  });
  app.post('/apps/:appId/stream', { onRequest: dropEmptyBodyType }, (request, reply) => endpoints.stream(request, reply));
  // No automatic HEAD route: it would hold a bodiless stream open.
  app.get('/apps/:appId/runs/:runId/events', { exposeHeadRoute: false }, (request, reply) => endpoints.events(request, reply));
  app.post('/apps/:appId/runs/:runId/cancel', { onRequest: dropEmptyBodyType }, (request, reply) => endpoints.cancel(request, reply));
  app.get('/apps/:appId/state', (request, reply) => endpoints.state(request, reply));
  app.get('/apps/:appId/runs', (request, reply) => endpoints.runs(request, reply));
  app.get('/apps', (request, reply) => endpoints.list(request, reply));
};

export default appRoutes;
