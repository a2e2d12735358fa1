/**
 * Rasa's `action_server_webhook.ActionService` on top of the executor, with Rasa SDK 3.17's
 * semantics (reference/rasa-sdk.md §1d), and the standard `grpc.health.v1.Health` service.
 * @module
 */

import type { ServiceImpl } from '@connectrpc/connect';
import { Code, ConnectError } from '@connectrpc/connect';
import type { EmptySchema } from '@bufbuild/protobuf/wkt';
import type { MessageInitShape } from '@bufbuild/protobuf';
import { SluiceError } from '../../protocol/errors.ts';
import type { SluiceEvent } from '../../protocol/events.ts';
import type { ActionExecutor } from '../../runtime/executor.ts';
import { traceHeadersOf } from '../../runtime/observer.ts';
import type { Run } from '../../runtime/run.ts';
import type { Logger } from '../../runtime/logger.ts';
import { ackOwned } from '../../channels/principal.ts';
import { ownerOfCall } from './auth.ts';
import {
  chunkEndMessage,
  chunkMessage,
  chunkStartMessage,
  finalResultMessage,
  requestToActionCall,
  statusError,
  statusForError,
  streamErrorMessage,
  webhookResponse,
  type GrpcStatus,
} from './convert.ts';
import type { ActionService, WebhookStreamEvent } from './gen/action_webhook_pb.ts';
import type { Health, HealthCheckResponse } from './gen/health_pb.ts';
import { HealthCheckResponse_ServingStatus as ServingStatus } from './gen/health_pb.ts';

/** The service name Rasa SDK registers with the health service. */
export const HEALTH_SERVICE_NAME = 'ActionServer';

const EMPTY: MessageInitShape<typeof EmptySchema> = {};

/** The `ActionService` implementation. */
export function actionServiceImpl(executor: ActionExecutor, logger: Logger): ServiceImpl<typeof ActionService> {
  return {
    async webhook(request, context) {
      // Rasa's unary path: no sink, so streamed chunks come back as whole `responses`.
      try {
        const result = await executor.run(requestToActionCall(request), { signal: context.signal, transport: 'grpc', traceHeaders: traceHeadersOf(context.requestHeader) });
        return result === null ? webhookResponse([], []) : webhookResponse(result.events, result.responses);
      } catch (thrown) {
        throw statusError(statusOfThrown(thrown, request.nextAction, logger));
      }
    },

    webhookStream(request, context) {
      return streamRun(executor, requestToActionCall(request), request.nextAction, context.signal, ownerOfCall(context));
    },

    async ackStreamChunks(request, context) {
      // Unknown ids are normal (the stream already ended); the executor logs them at debug.
      // Someone else's stream is treated as unknown: the ack does nothing.
      await ackOwned(executor, ownerOfCall(context), request.responseId);
      return EMPTY;
    },

    async actions() {
      return { actions: executor.actions };
    },
  };
}

/**
 * Translates a run's events to Rasa's stream, one event at a time: `chunk_start`, `chunk`…,
 * `chunk_end` (only for streams the author ended or that were auto-closed), then `final_result`
 * (none for a call that names no action), or `error` — after which {@link failure} holds the
 * status the call must end with. Once the run is cancelled (barge-in, stop) only its terminal
 * event is forwarded, as Rasa drops everything still queued after an ack.
 */
export class RasaStreamTranslator {
  /** The status to end the call with after an `error` event; null while none. */
  failure: GrpcStatus | null = null;
  /** True once `run-end` was seen. */
  ended = false;
  readonly #run: Run;
  readonly #requestAction: string;

  constructor(run: Run, requestAction: string) {
    this.#run = run;
    this.#requestAction = requestAction;
  }

  /** The message for `event`, or null when Rasa's stream has none for it. */
  translate(event: SluiceEvent): WebhookStreamEvent | null {
    switch (event.type) {
      case 'stream-start':
        return this.#run.isCancelled ? null : chunkStartMessage(event.responseId);
      case 'chunk':
        return this.#run.isCancelled ? null : chunkMessage(event);
      case 'stream-end':
        // Rasa sends no chunk_end after a barge-in, for a superseded start, or on error.
        return !this.#run.isCancelled && (event.reason === 'completed' || event.reason === 'auto-closed')
          ? chunkEndMessage(event.responseId)
          : null;
      case 'result':
        return event.skipped === true ? null : finalResultMessage(event.events, event.responses);
      case 'error':
        this.failure = statusForError(event, this.#requestAction);
        return streamErrorMessage(this.#requestAction, event.message);
      case 'run-end':
        this.ended = true;
        return null;
      default:
        // status, message, tool events: Rasa's stream has no place for them (whole messages
        // arrive in final_result.responses).
        return null;
    }
  }

  /**
   * Throws how the call must end once the reader stopped: the run's error status, or the reason
   * `signal` aborted (deadline, shutdown, a client that went away) when it stopped before run-end.
   */
  finish(signal: AbortSignal): void {
    if (this.failure !== null) throw statusError(this.failure);
    if (!this.ended && signal.aborted) throw ConnectError.from(signal.reason, Code.Canceled);
  }
}

/**
 * `WebhookStream` through Connect's generic handler, one message per `yield`. The server answers
 * binary gRPC calls on a batched path (webhook-stream-handler.ts); this one serves the rest
 * (e.g. the JSON codec) with the same semantics. A client that goes away cancels the run through
 * `signal`.
 */
async function* streamRun(
  executor: ActionExecutor,
  call: Record<string, unknown>,
  requestAction: string,
  signal: AbortSignal,
  owner: string | undefined,
): AsyncGenerator<WebhookStreamEvent> {
  const run = executor.start(call, { streaming: true, signal, owner, transport: 'grpc' });
  const sub = run.subscribe({ signal });
  const translator = new RasaStreamTranslator(run, requestAction);
  try {
    while (!translator.ended) {
      const step = await sub.next();
      if (step.done === true) break;
      const message = translator.translate(step.value);
      if (message !== null) yield message;
    }
  } finally {
    sub.unsubscribe();
  }
  translator.finish(signal);
}

function statusOfThrown(thrown: unknown, requestAction: string, logger: Logger): GrpcStatus {
  if (SluiceError.isInstance(thrown)) {
    return statusForError(
      { code: thrown.code, message: thrown.message, reason: thrown.details.reason, actionName: thrown.details.actionName },
      requestAction,
    );
  }
  logger.error({ err: thrown, action: requestAction }, 'gRPC Webhook failed unexpectedly');
  return { code: Code.Internal, details: 'Internal error' };
}

/** Serving state shared by the health service and the server that owns it. */
export interface HealthState {
  /** False once the server is closing. */
  serving: boolean;
  /** Aborts when the server starts closing (ends `Watch` streams). */
  readonly closing: AbortSignal;
}

/**
 * `grpc.health.v1.Health`: `""` (the whole server) and `"ActionServer"` are known. `Check` on
 * another name is NOT_FOUND; `Watch` sends the current status (SERVICE_UNKNOWN for other names)
 * and, when the server closes, NOT_SERVING before it ends.
 */
export function healthServiceImpl(state: HealthState): ServiceImpl<typeof Health> {
  const statusOf = (service: string): HealthCheckResponse['status'] => {
    if (service !== '' && service !== HEALTH_SERVICE_NAME) return ServingStatus.SERVICE_UNKNOWN;
    return state.serving ? ServingStatus.SERVING : ServingStatus.NOT_SERVING;
  };
  return {
    async check(request) {
      const status = statusOf(request.service);
      if (status === ServingStatus.SERVICE_UNKNOWN) throw new ConnectError(`unknown service '${request.service}'`, Code.NotFound);
      return { status };
    },
    async *watch(request, context) {
      const known = statusOf(request.service) !== ServingStatus.SERVICE_UNKNOWN;
      yield { status: statusOf(request.service) };
      if (!state.serving) return;
      await new Promise<void>((resolve) => {
        const done = (): void => {
          context.signal.removeEventListener('abort', done);
          state.closing.removeEventListener('abort', done);
          resolve();
        };
        context.signal.addEventListener('abort', done, { once: true });
        state.closing.addEventListener('abort', done, { once: true });
      });
      if (known && state.closing.aborted) yield { status: ServingStatus.NOT_SERVING };
    },
  };
}
