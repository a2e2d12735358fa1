/**
 * One call from a Sluice run to a Teams reply: `streamRunToBotFramework(run, stream)`.
 *
 * Mapping (decisions documented here and in the report):
 * - `status` → informative update (dropped by the stream once answer text exists).
 * - `chunk.text` → text chunks. A run may stream several messages (or mix in `message` events):
 *   they become one Teams reply, separated by a blank line (`messageSeparator`), because Teams
 *   allows one open stream per reply and a bubble per message would need a stream each.
 * - `chunk.citations` → citations; rich fields of chunks and messages (image, buttons, elements,
 *   attachment, custom) → attachments on the final message (see `cards.ts`).
 * - `result` → the stream ends (final message). `error` → the stream ends with the partial text
 *   plus a short note (`errorNote`); the error's own message is not shown to the user.
 * - The Stop button (403) → the run is cancelled (barge-in: the action still finishes and its
 *   result arrives); the bridge keeps reading until `run-end` and returns the result.
 * - A channel failure does not cancel the run: the bridge still returns the run's result, with
 *   the channel's error beside it.
 * @module
 */

import type { SluiceError } from '../../protocol/errors.ts';
import type { ErrorEvent, ResultEvent, RunEndReason, SluiceEvent } from '../../protocol/events.ts';
import type { Logger } from '../../runtime/logger.ts';
import { silentLogger } from '../../runtime/logger.ts';
import { attachmentsFromContent } from './cards.ts';
import type { CitationInput } from './citations.ts';
import type { BotFrameworkStream, StreamEndResult } from './stream.ts';

/** The part of a run the bridge needs (a `Run` has it). */
export interface RunLike {
  readonly id: string;
  subscribe(options?: { after?: number }): AsyncIterable<SluiceEvent> & { unsubscribe(): void };
  cancel(reason?: unknown): boolean;
}

/** Options of {@link streamRunToBotFramework}. */
export interface BridgeOptions {
  /**
   * Stops the run when the user presses Stop. Default `run.cancel(reason)`; pass e.g.
   * `() => executor.cancel(run.id)` to go through the executor.
   */
  cancel?: (reason: SluiceError) => void;
  /** Put between the texts of two messages of one run. Default a blank line (`'\n\n'`). */
  messageSeparator?: string;
  /**
   * Text appended when the run fails: given the error event and whether text was already sent.
   * `null` for none. Default: a short apology, on its own paragraph.
   */
  errorNote?: ((error: ErrorEvent, hasText: boolean) => string) | null;
  /** Turn `status` events into informative updates. Default true. */
  informativeUpdates?: boolean;
  /** Read the run from after this seq (resume). Default 0. */
  after?: number;
  logger?: Logger;
}

/** What the bridge reports once the run has ended and the reply is finished. */
export interface BridgeResult {
  /** The run's `result` or `error` event (undefined only if the run never produced one). */
  terminal: ResultEvent | ErrorEvent | undefined;
  /** The run's `run-end` reason. */
  runEnd: RunEndReason | undefined;
  /** How the reply ended; undefined when the run had nothing to show (nothing was sent). */
  reply: StreamEndResult | undefined;
  /** Why the reply could not be delivered (the run's result is still above). */
  channelError: SluiceError | undefined;
  /** True when the user pressed Stop and the run was cancelled for it. */
  stoppedByUser: boolean;
}

/** The default `errorNote`. */
export function defaultErrorNote(_error: ErrorEvent, hasText: boolean): string {
  return hasText ? '_(The response was interrupted by an error.)_' : 'Sorry, something went wrong while answering.';
}

/**
 * Streams a run's output to a Bot Framework reply and resolves once the run has ended and the
 * reply is finished. Never rejects because of the channel: see `channelError`.
 */
export async function streamRunToBotFramework(run: RunLike, stream: BotFrameworkStream, options: BridgeOptions = {}): Promise<BridgeResult> {
  const logger = options.logger ?? silentLogger;
  const separator = options.messageSeparator ?? '\n\n';
  const errorNote = options.errorNote === undefined ? defaultErrorNote : options.errorNote;
  const informative = options.informativeUpdates ?? true;
  const cancel = options.cancel ?? ((reason: SluiceError) => void run.cancel(reason));

  let terminal: ResultEvent | ErrorEvent | undefined;
  let runEnd: RunEndReason | undefined;
  let stoppedByUser = false;
  let touched = false; // anything queued: the reply must be ended
  let hasText = false;
  let lastSource: string | undefined;
  let ending: Promise<StreamEndResult> | undefined;
  let messageCount = 0;

  const onStop = (): void => {
    stoppedByUser = true;
    logger.info({ runId: run.id }, 'Bot Framework: the user stopped the response; cancelling the run');
    cancel(stream.signal.reason as SluiceError);
  };
  if (stream.signal.aborted) queueMicrotask(onStop);
  else stream.signal.addEventListener('abort', onStop, { once: true });

  const text = (source: string, value: string): void => {
    if (value === '') return;
    const prefix = hasText && source !== lastSource ? separator : '';
    lastSource = source;
    hasText = true;
    touched = true;
    stream.queueTextChunk(prefix + value);
  };
  const rich = (content: Record<string, unknown>): void => {
    const { attachments, skipped } = attachmentsFromContent(content);
    for (const attachment of attachments) stream.addAttachment(attachment);
    if (attachments.length > 0) touched = true;
    if (skipped.length > 0) logger.debug({ runId: run.id, skipped }, 'Bot Framework: content with no attachment form was left out');
  };
  const end = (): void => {
    if (ending !== undefined || stream.ended) return;
    ending = stream.endStream();
  };

  const sub = run.subscribe({ after: options.after ?? 0 });
  try {
    for await (const event of sub) {
      switch (event.type) {
        case 'status':
          if (informative && !stream.ended) {
            touched = true;
            stream.queueInformativeUpdate(event.text);
          }
          break;
        case 'chunk': {
          if (stream.ended) break;
          if (Array.isArray(event.citations) && event.citations.length > 0) {
            stream.setCitations(event.citations as CitationInput[]);
          }
          if (typeof event.text === 'string') text(event.responseId, event.text);
          rich(event);
          break;
        }
        case 'message': {
          if (stream.ended) break;
          const source = `message:${++messageCount}`;
          const body = event.message;
          if (typeof body.text === 'string') text(source, body.text);
          rich(body);
          lastSource = undefined; // whatever follows a whole message is a new message
          break;
        }
        case 'result':
          terminal = event;
          if (touched) end();
          break;
        case 'error':
          terminal = event;
          if (!stream.ended && errorNote !== null) {
            const note = errorNote(event, hasText);
            if (note !== '') text('error-note', note);
          }
          if (touched) end();
          break;
        case 'run-end':
          runEnd = event.reason;
          break;
        default:
          break; // stream-start / stream-end / tool events: nothing to show
      }
    }
  } finally {
    sub.unsubscribe();
    stream.signal.removeEventListener('abort', onStop);
    // The reply must never be left open (a Teams bubble would spin until the service cuts it).
    if (touched) end();
  }

  let reply: StreamEndResult | undefined;
  let channelError: SluiceError | undefined;
  if (ending !== undefined) {
    try {
      reply = await ending;
    } catch (error) {
      channelError = error as SluiceError;
      logger.warn(
        { runId: run.id, err: error, code: channelError.code, details: channelError.details },
        'Bot Framework: the reply could not be delivered',
      );
    }
  }
  return { terminal, runEnd, reply, channelError, stoppedByUser };
}
