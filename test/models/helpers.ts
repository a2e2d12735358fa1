// Shared helpers of the model tests: run an action through a real ActionExecutor and read its events.
import type { SluiceEvent } from '../../src/protocol/events.ts';
import type { ActionDefinition } from '../../src/runtime/action.ts';
import { ActionExecutor, type ExecutorOptions } from '../../src/runtime/executor.ts';
import type { Logger } from '../../src/runtime/logger.ts';
import { silentLogger } from '../../src/runtime/logger.ts';
import type { Run } from '../../src/runtime/run.ts';

export function executorWith(actions: ActionDefinition[], options: ExecutorOptions = {}): ActionExecutor {
  return new ActionExecutor({ actions, logger: silentLogger, bargeInTimeoutSeconds: 2, ...options });
}

/** A Rasa action call for `action` with the user's message `text`. */
export function callFor(action: string, text = 'hello', events: Record<string, unknown>[] = []): Record<string, unknown> {
  return {
    next_action: action,
    sender_id: 'u1',
    tracker: { sender_id: 'u1', slots: {}, latest_message: { text }, events },
    domain: { intents: [] },
    version: '3.17.0',
  };
}

/** Runs a call to the end and returns every event. */
export async function eventsOf(executor: ActionExecutor, call: unknown): Promise<SluiceEvent[]> {
  const out: SluiceEvent[] = [];
  for await (const e of executor.start(call).subscribe()) out.push(e);
  return out;
}

/**
 * Reads a run, calling `onEvent` for each event (e.g. to ack after the first chunk); resolves
 * with every event once the run ended.
 */
export async function readRun(run: Run, onEvent: (event: SluiceEvent) => void | Promise<void>): Promise<SluiceEvent[]> {
  const out: SluiceEvent[] = [];
  for await (const e of run.subscribe()) {
    out.push(e);
    await onEvent(e);
  }
  return out;
}

export const types = (events: SluiceEvent[]): string[] => events.map((e) => e.type);

/** The text of all chunks, in order. */
export const chunkText = (events: SluiceEvent[]): string =>
  events.map((e) => (e.type === 'chunk' && typeof e.text === 'string' ? e.text : '')).join('');

export function only<T extends SluiceEvent['type']>(events: SluiceEvent[], type: T): Extract<SluiceEvent, { type: T }>[] {
  return events.filter((e): e is Extract<SluiceEvent, { type: T }> => e.type === type);
}

/** A logger that keeps what it is given, to check what goes to logs and not to the wire. */
export function capturingLogger(): Logger & { records: { level: string; obj: Record<string, unknown>; msg: string }[] } {
  const records: { level: string; obj: Record<string, unknown>; msg: string }[] = [];
  const at =
    (level: string) =>
    (obj: object, msg?: string): void => {
      records.push({ level, obj: obj as Record<string, unknown>, msg: msg ?? '' });
    };
  return { records, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

/** Rejects when `promise` takes longer than `ms`. */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms);
    }),
  ]);
}

export const weatherParams = {
  type: 'object',
  properties: { city: { type: 'string', description: 'City name, e.g. Paris' } },
  required: ['city'],
  additionalProperties: false,
};
