/**
 * Fixtures of the UI message stream tests: hand-made events, a chat action whose behaviour the
 * user's text picks, a real Fastify server on 127.0.0.1 port 0, and readers built from the `ai`
 * package's own client code (so every part is checked against its schema).
 */

import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import Fastify, { type FastifyInstance } from 'fastify';
import { DefaultChatTransport, parseJsonEventStream, readUIMessageStream, uiMessageChunkSchema, type UIMessage, type UIMessageChunk } from 'ai';
import type { EventInput, SluiceEvent } from '../../../src/protocol/events.ts';
import { SluiceError } from '../../../src/protocol/errors.ts';
import { defineAction, type ActionDefinition } from '../../../src/runtime/action.ts';
import { ActionExecutor } from '../../../src/runtime/executor.ts';
import { silentLogger } from '../../../src/runtime/logger.ts';
import { assistantAction } from '../../../examples/assistant.ts';
import { ScriptedModel } from '../../../src/models/index.ts';
import { uiMessageRoutes, type UiMessageRoutesOptions } from '../../../src/channels/ui-message/index.ts';
import type { UiMessage } from '../../../src/channels/ui-message/index.ts';

/** Builds events of one run with gap-free seqs. */
export function eventMaker(runId = 'run-1'): (input: EventInput) => SluiceEvent {
  let seq = 0;
  return (input) => ({ ...input, runId, seq: ++seq }) as SluiceEvent;
}

export const RID = '0123456789abcdef0123456789abcdef';
export const RID2 = 'fedcba9876543210fedcba9876543210';

/** A gate an action waits on until the test opens it (or the run is cancelled). */
export class Gate {
  #open!: () => void;
  readonly opened = new Promise<void>((resolve) => {
    this.#open = resolve;
  });
  open(): void {
    this.#open();
  }
  wait(signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (signal.aborted) return resolve();
      signal.addEventListener('abort', () => resolve(), { once: true });
      void this.opened.then(resolve);
    });
  }
}

/** What the chat action did, for assertions. */
export class Probe {
  gate = new Gate();
  aborted = 0;
  /** Chunks `flood` has emitted. */
  emitted = 0;
  /** Trackers the action received (latest last). */
  trackers: { senderId: string; latest: unknown; events: readonly unknown[] }[] = [];
}

/**
 * `action_chat`: picks its behaviour from the user's latest text.
 * - `slow`: streams `one two ` then waits for the gate, then `three` (`probe.aborted` counts aborts)
 * - `tool wait`: opens a tool call, streams half its input, then waits for the gate
 * - `fail`: streams `partial ` then throws an Error with internals in its message
 * - `unavailable`: streams `partial ` then throws a public SluiceError
 * - `flood`: 1 KiB chunks as fast as backpressure allows, until cancelled
 * - `rich`: status, citations, buttons, image, a whole message with a card
 * - anything else: the example assistant on an instant ScriptedModel (weather uses `get_weather`)
 */
export function chatAction(probe: Probe): ActionDefinition {
  const assistant = assistantAction({ model: ScriptedModel.instant() });
  return defineAction({
    name: 'action_chat',
    async run(dispatcher, tracker, domain, context) {
      probe.trackers.push({ senderId: tracker.senderId, latest: tracker.latestMessage.text, events: tracker.events });
      const text = String(tracker.latestMessage.text ?? '');
      const signal = context.signal;
      signal.addEventListener('abort', () => probe.aborted++, { once: true });
      if (text.startsWith('slow')) {
        await dispatcher.streamChunk({ text: 'one ' });
        await dispatcher.streamChunk({ text: 'two ' });
        await probe.gate.wait(signal);
        await dispatcher.streamChunk({ text: 'three' });
        await dispatcher.streamEnd();
        return [];
      }
      if (text.startsWith('tool wait')) {
        await dispatcher.toolStart('call_w', 'get_weather');
        await dispatcher.toolDelta('call_w', '{"city":');
        await probe.gate.wait(signal);
        await dispatcher.toolDelta('call_w', '"Paris"}');
        await dispatcher.toolCall('call_w', 'get_weather', { city: 'Paris' });
        await dispatcher.toolResult('call_w', 'get_weather', { output: { ok: true } });
        return [];
      }
      if (text.startsWith('fail')) {
        await dispatcher.streamChunk({ text: 'partial ' });
        throw new Error('connect ECONNREFUSED 10.0.0.5:5432 (db-internal.example)');
      }
      if (text.startsWith('unavailable')) {
        await dispatcher.streamChunk({ text: 'partial ' });
        throw new SluiceError('unavailable', 'The weather service is unavailable, try again later');
      }
      if (text.startsWith('flood')) {
        const piece = 'x'.repeat(1024);
        while (!signal.aborted) {
          await dispatcher.streamChunk({ text: piece });
          probe.emitted++;
        }
        return [];
      }
      if (text.startsWith('rich')) {
        await dispatcher.status('Searching…');
        await dispatcher.streamChunk({ text: 'See [1]. ', citations: [{ position: 1, title: 'Docs', url: 'https://example.com/docs' }] });
        await dispatcher.streamChunk({ buttons: [{ title: 'Yes', payload: '/affirm' }] });
        await dispatcher.streamChunk({ text: 'More.', image: 'https://example.com/cat.png' });
        await dispatcher.streamEnd();
        dispatcher.utterMessage({ text: 'A card:', json: { id: 'card-1', kind: 'card', title: 'Hi' } });
        return [];
      }
      if (assistant.kind !== 'run') throw new Error('unexpected');
      return assistant.run(dispatcher, tracker, domain, context);
    },
  });
}

/** A user message in the AI SDK's shape. */
export function userMessage(text: string, id = `u-${text.slice(0, 8)}`): UIMessage {
  return { id, role: 'user', parts: [{ type: 'text', text }] };
}

export interface ChatServer {
  url: string;
  api: string;
  app: FastifyInstance;
  executor: ActionExecutor;
  probe: Probe;
  transport: DefaultChatTransport<UIMessage>;
  close(): Promise<void>;
}

/** A Fastify server with the plugin registered, on 127.0.0.1 port 0. */
export async function startChatServer(options: Partial<UiMessageRoutesOptions> = {}, actions: ActionDefinition[] = []): Promise<ChatServer> {
  const probe = new Probe();
  const executor = new ActionExecutor({ logger: silentLogger, actions: [chatAction(probe), ...actions] });
  // Undici opens a spare socket after an aborted fetch; without a request on it the server would wait for its keep-alive timeout.
  const app = Fastify({ forceCloseConnections: true });
  await app.register(uiMessageRoutes, { executor, action: 'action_chat', logger: silentLogger, ...options });
  const url = await app.listen({ port: 0, host: '127.0.0.1' });
  const api = `${url}/api/chat`;
  return {
    url,
    api,
    app,
    executor,
    probe,
    transport: new DefaultChatTransport<UIMessage>({ api }),
    async close() {
      probe.gate.open();
      await executor.close();
      await app.close();
    },
  };
}

/** Sends messages through the AI SDK's `DefaultChatTransport` (which validates every part). */
export function send(server: ChatServer, chatId: string, messages: UIMessage[], abortSignal?: AbortSignal): Promise<ReadableStream<UIMessageChunk>> {
  return server.transport.sendMessages({ chatId, messages, abortSignal, trigger: 'submit-message', messageId: undefined });
}

/** Reads a chunk stream to its end. */
export async function collect(stream: ReadableStream<UIMessageChunk>): Promise<UIMessageChunk[]> {
  const out: UIMessageChunk[] = [];
  for await (const chunk of stream as unknown as AsyncIterable<UIMessageChunk>) out.push(chunk);
  return out;
}

/** The final message the AI SDK client builds from these chunks. */
export async function clientMessage(chunks: UIMessageChunk[]): Promise<UIMessage> {
  const stream = new ReadableStream<UIMessageChunk>({
    start(controller) {
      for (const chunk of chunks) controller.enqueue(chunk);
      controller.close();
    },
  });
  let last: UIMessage | undefined;
  for await (const message of readUIMessageStream({ stream, terminateOnError: true })) last = message;
  assert.ok(last !== undefined, 'the client built a message');
  return last;
}

/** Parses an SSE text with the AI SDK's parser and schema; fails on any invalid part. */
export async function validateWithAiSdk(text: string): Promise<UIMessageChunk[]> {
  const bytes = new TextEncoder().encode(text);
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(bytes);
      controller.close();
    },
  });
  const out: UIMessageChunk[] = [];
  for await (const result of parseJsonEventStream({ stream, schema: uiMessageChunkSchema }) as unknown as AsyncIterable<{ success: boolean; value?: UIMessageChunk; error?: unknown }>) {
    if (!result.success) assert.fail(`The AI SDK rejected a part: ${String(result.error)}`);
    out.push(result.value as UIMessageChunk);
  }
  return out;
}

/** Drops fields the comparison should ignore (undefined values) by a JSON round trip. */
export function plain<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

/** `fetch` JSON. */
export async function json(url: string, init: RequestInit = {}): Promise<{ status: number; body: any; headers: Headers }> {
  const res = await fetch(url, init);
  const text = await res.text();
  return { status: res.status, body: text === '' ? undefined : JSON.parse(text), headers: res.headers };
}

export function postJson(url: string, body: unknown): Promise<{ status: number; body: any; headers: Headers }> {
  return json(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body) });
}

/** Polls until `condition` holds. */
export async function waitFor(condition: () => boolean, what = 'condition', timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`Timed out waiting for ${what}`);
    await sleep(5);
  }
}

/** Reads a chunk stream until `until` holds for a chunk, keeping the reader for later. */
export async function readUntil(
  reader: ReadableStreamDefaultReader<UIMessageChunk>,
  until: (chunk: UIMessageChunk) => boolean,
  into: UIMessageChunk[] = [],
): Promise<UIMessageChunk[]> {
  for (;;) {
    const step = await reader.read();
    if (step.done) assert.fail(`The stream ended before the expected part; got ${JSON.stringify(into.map((c) => c.type))}`);
    into.push(step.value);
    if (until(step.value)) return into;
  }
}

/** Text of a stored or client message. */
export function textOf(message: UiMessage | UIMessage): string {
  return (message.parts as { type: string; text?: string }[]).filter((p) => p.type === 'text').map((p) => p.text).join('');
}
