/**
 * `sluice.v1.VoiceService` (proto/sluice_voice.proto): a run's sentences over gRPC for voice
 * gateways, derived with the voice channel's sentence view.
 *
 * A call streams `sentence{index, text, response_id}` messages, then `final_result` (the action's
 * events and whole messages, as `ActionService.Webhook` returns them; none for a call that names
 * no action) or `error{action_name, message}`, then `run_end{reason}`. After an `error` the call
 * ends with the status `ActionService.WebhookStream` gives for it (NOT_FOUND for an unknown
 * action, INVALID_ARGUMENT for a malformed request, …); otherwise OK.
 *
 * Barge-in is Rasa's `ActionService.AckStreamChunks` with a sentence's `response_id`: it cancels
 * the run, and from then on no sentence is sent (not even one already cut), while `final_result`
 * (the events of the action finishing after the ack) and `run_end` still arrive. Whole messages
 * (`msg-<seq>` ids) cannot be acked; a gateway hangs up, or cancels over HTTP, to stop those.
 *
 * `StreamSentences` owns its run: a client that goes away, a deadline or a server shutdown cancels
 * it. `FollowSentences` only reads: it never cancels the run it follows.
 *
 * `PauseSpeech`, `ResumeSpeech` and `InterruptSpeech` are the voice controls of a voice socket
 * (`/voice/ws`) by its session id (`channels/voice/control.ts`): the same as the socket's own
 * `pause` / `resume` / `interrupt` commands, for a gateway that detects speech in another process.
 *
 * Sentences come at the pace of speech, a handful per second, so these calls use Connect's
 * generic streaming path; the batched path of `WebhookStream` pays off for token streams only.
 * @module
 */

import { Code, ConnectError, type HandlerContext, type ServiceImpl } from '@connectrpc/connect';
import { parseSegmenterOptions, sentenceGate, sentenceViewOf, type SentenceViewItem } from '../../channels/voice/sentence-view.ts';
import type { SentenceEvent } from '../../channels/voice/sentences.ts';
import { controlVoiceSession, ownedSessions, type VoiceCommand, type VoiceSessionLookup } from '../../channels/voice/control.ts';
import type { PlayedReport } from '../../channels/voice/history.ts';
import { SluiceError } from '../../protocol/errors.ts';
import type { RunEndReason } from '../../protocol/events.ts';
import type { ActionExecutor } from '../../runtime/executor.ts';
import { traceHeadersOf } from '../../runtime/observer.ts';
import type { Run } from '../../runtime/run.ts';
import type { Subscription } from '../../runtime/subscription.ts';
import type { SentenceStreamOptions } from '../../text/options.ts';
import { ownedRun } from '../../channels/principal.ts';
import { ownerOfCall } from './auth.ts';
import { requestToActionCall, statusError, statusForError, webhookResponse, type GrpcStatus } from './convert.ts';
import type {
  FollowSentencesRequest,
  Played,
  SegmenterOptions,
  SpeechControlRequest,
  SpeechControlResponse,
  SentenceStreamEvent,
  StreamSentencesRequest,
  VoiceService,
} from './gen/sluice_voice_pb.ts';

/** Response header of `StreamSentences` carrying the id of the run it started. */
export const RUN_ID_METADATA = 'sluice-run-id';

const EVENT = 'sluice.v1.SentenceStreamEvent' as const;

/** `sentence{index, text, response_id}`. */
function sentenceMessage(sentence: SentenceEvent): SentenceStreamEvent {
  return {
    $typeName: EVENT,
    event: {
      case: 'sentence',
      value: { $typeName: 'sluice.v1.Sentence', index: sentence.index, text: sentence.text, responseId: sentence.responseId },
    },
  };
}

function runEndMessage(reason: RunEndReason): SentenceStreamEvent {
  return { $typeName: EVENT, event: { case: 'runEnd', value: { $typeName: 'sluice.v1.RunEnd', reason } } };
}

/** The segmenter options of a request, checked; a bad one fails the call with INVALID_ARGUMENT. */
function segmenterOf(method: string, options: SegmenterOptions | undefined): SentenceStreamOptions {
  if (options === undefined) return {};
  const given: Record<string, unknown> = {};
  if (options.mode !== undefined) given.mode = options.mode;
  if (options.locale !== undefined) given.locale = options.locale;
  if (options.minFirstLength !== undefined) given.minFirstLength = options.minFirstLength;
  if (options.maxLength !== undefined) given.maxLength = options.maxLength;
  if (options.stallFlushMs !== undefined) given.stallFlushMs = options.stallFlushMs;
  try {
    return parseSegmenterOptions(`${method}: segmenter`, given);
  } catch (thrown) {
    throw new ConnectError(SluiceError.from(thrown).message, Code.InvalidArgument);
  }
}

/**
 * Streams a subscription's sentence view as `SentenceStreamEvent`s (see the module notes), then
 * throws how the call must end: the run's error status, or the reason `signal` aborted when the
 * reader stopped before `run-end`.
 */
async function* sentenceStream(
  run: Run,
  sub: Subscription,
  segmenter: SentenceStreamOptions,
  afterIndex: number,
  requestAction: string,
  signal: AbortSignal,
): AsyncGenerator<SentenceStreamEvent> {
  const maySpeak = sentenceGate(run);
  const view = sentenceViewOf(sub, { ...segmenter, afterIndex });
  let failure: GrpcStatus | null = null;
  let ended = false;
  try {
    for (let step = await view.next(); step.done !== true && !signal.aborted; step = await view.next()) {
      const item: SentenceViewItem = step.value;
      switch (item.type) {
        case 'sentence':
          if (!maySpeak()) break;
          if (item.index === 0) run.mark('sentence');
          yield sentenceMessage(item);
          break;
        case 'result':
          if (item.skipped !== true) {
            yield { $typeName: EVENT, event: { case: 'finalResult', value: webhookResponse(item.events, item.responses) } };
          }
          break;
        case 'error':
          failure = statusForError(item, requestAction);
          yield {
            $typeName: EVENT,
            event: { case: 'error', value: { $typeName: 'action_server_webhook.StreamError', actionName: requestAction, message: item.message } },
          };
          break;
        case 'run-end':
          ended = true;
          yield runEndMessage(item.reason);
          break;
      }
    }
  } finally {
    sub.unsubscribe();
    await view.return?.();
  }
  if (failure !== null) throw statusError(failure);
  if (!ended && signal.aborted) throw ConnectError.from(signal.reason, Code.Canceled);
}

function statusOf(error: SluiceError, method: string): ConnectError {
  return statusError(statusForError({ code: error.code, message: `${method}: ${error.message}` }, ''));
}

async function* streamSentences(
  executor: ActionExecutor,
  request: StreamSentencesRequest,
  context: HandlerContext,
): AsyncGenerator<SentenceStreamEvent> {
  const call = request.call;
  if (call === undefined) throw new ConnectError("StreamSentences: 'call' is required (a Rasa WebhookRequest)", Code.InvalidArgument);
  const segmenter = segmenterOf('StreamSentences', request.segmenter);
  const run = executor.start(requestToActionCall(call), { streaming: true, signal: context.signal, owner: ownerOfCall(context), transport: 'grpc', traceHeaders: traceHeadersOf(context.requestHeader) });
  context.responseHeader.set(RUN_ID_METADATA, run.id);
  try {
    yield* sentenceStream(run, run.subscribe({ signal: context.signal }), segmenter, -1, call.nextAction, context.signal);
  } finally {
    // Ended early with the client still there (the writer stopped pulling): the run is ours to stop.
    if (run.state === 'running') run.cancel(new SluiceError('cancelled', 'The gRPC call ended', { details: { reason: 'disconnect' } }));
  }
}

async function* followSentences(
  executor: ActionExecutor,
  request: FollowSentencesRequest,
  context: HandlerContext,
): AsyncGenerator<SentenceStreamEvent> {
  const runId = request.runId;
  if (runId === '') throw new ConnectError("FollowSentences: 'run_id' is required", Code.InvalidArgument);
  const segmenter = segmenterOf('FollowSentences', request.segmenter);
  // Someone else's run is answered exactly like an unknown one.
  let run: Run | undefined;
  try {
    run = await ownedRun(executor, ownerOfCall(context), runId);
  } catch (thrown) {
    throw statusOf(SluiceError.from(thrown), 'FollowSentences');
  }
  if (run === undefined) throw new ConnectError(`FollowSentences: no run found with id '${runId}'`, Code.NotFound);
  let sub: Subscription;
  try {
    // From the first event: sentences are cut again from the log, then the ones sent are skipped.
    sub = run.subscribe({ signal: context.signal });
  } catch (thrown) {
    throw statusOf(SluiceError.from(thrown), 'FollowSentences');
  }
  yield* sentenceStream(run, sub, segmenter, request.afterIndex ?? -1, run.action, context.signal);
}

function playedReport(played: Played | undefined): PlayedReport | undefined {
  const position = played?.position;
  if (position === undefined || position.case === undefined) return undefined;
  return { [position.case]: position.value } as PlayedReport;
}

function playedMessage(report: PlayedReport | undefined): Played | undefined {
  if (report === undefined) return undefined;
  const [key, value] = Object.entries(report)[0] as ['chars' | 'ms' | 'sentence', number];
  return { $typeName: 'sluice.v1.Played', position: { case: key, value } };
}

const CONTROL_STATUS: Partial<Record<string, Code>> = {
  not_found: Code.NotFound,
  failed_precondition: Code.FailedPrecondition,
  invalid_argument: Code.InvalidArgument,
};

function controlSpeech(voice: VoiceSessionLookup | undefined, method: string, command: VoiceCommand, request: SpeechControlRequest, owner: string | undefined): SpeechControlResponse {
  if (voice === undefined) throw new ConnectError(`${method}: this server has no voice socket`, Code.Unimplemented);
  if (request.sessionId === '') throw new ConnectError(`${method}: 'session_id' is required`, Code.InvalidArgument);
  const played = playedReport(request.played);
  if (command === 'resume' && played !== undefined) throw new ConnectError(`${method}: 'played' is not accepted`, Code.InvalidArgument);
  try {
    // Someone else's session is answered exactly like an unknown one.
    const r = controlVoiceSession(ownedSessions(voice, owner), request.sessionId, command, played);
    return {
      $typeName: 'sluice.v1.SpeechControlResponse',
      sessionId: r.sessionId,
      turnId: r.turnId,
      runId: r.runId,
      played: playedMessage(r.played),
      spoken: r.spoken ?? '',
      auto: r.auto ?? false,
    };
  } catch (thrown) {
    const error = SluiceError.from(thrown);
    throw new ConnectError(`${method}: ${error.message}`, CONTROL_STATUS[error.code] ?? Code.Internal);
  }
}

/**
 * The `VoiceService` implementation (see the module notes). Without `voice` (no voice socket
 * served) the speech controls answer UNIMPLEMENTED.
 */
export function voiceServiceImpl(executor: ActionExecutor, voice?: VoiceSessionLookup): ServiceImpl<typeof VoiceService> {
  return {
    streamSentences: (request, context) => streamSentences(executor, request, context),
    followSentences: (request, context) => followSentences(executor, request, context),
    pauseSpeech: (request, context) => controlSpeech(voice, 'PauseSpeech', 'pause', request, ownerOfCall(context)),
    resumeSpeech: (request, context) => controlSpeech(voice, 'ResumeSpeech', 'resume', request, ownerOfCall(context)),
    interruptSpeech: (request, context) => controlSpeech(voice, 'InterruptSpeech', 'interrupt', request, ownerOfCall(context)),
  };
}
