/**
 * The `/api/chat` endpoints on a real Fastify server, read with the AI SDK's own client code
 * (`DefaultChatTransport`, `parseJsonEventStream` + `uiMessageChunkSchema`, `readUIMessageStream`):
 * streaming, tool calls, stop, disconnect vs resume, errors, one answer per chat, bad input.
 */

import assert from 'node:assert/strict';
import http from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, it } from 'node:test';
import Fastify from 'fastify';
import type { UIMessageChunk } from 'ai';
import { ActionExecutor } from '../../../src/runtime/executor.ts';
import { silentLogger } from '../../../src/runtime/logger.ts';
import { uiMessageRoutes, type UiMessage } from '../../../src/channels/ui-message/index.ts';
import {
  clientMessage,
  collect,
  json,
  postJson,
  readUntil,
  send,
  startChatServer,
  textOf,
  userMessage,
  validateWithAiSdk,
  waitFor,
  type ChatServer,
} from './helpers.ts';

let server: ChatServer | undefined;

async function start(...args: Parameters<typeof startChatServer>): Promise<ChatServer> {
  server = await startChatServer(...args);
  return server;
}

afterEach(async () => {
  if (server === undefined) return;
  const s = server;
  server = undefined;
  try {
    s.probe.gate.open();
    await waitFor(() => s.executor.activeRuns === 0, 'every run to end');
  } finally {
    await s.close();
  }
});

function types(chunks: UIMessageChunk[]): string[] {
  return chunks.map((c) => c.type);
}

function deltas(chunks: UIMessageChunk[]): string {
  return chunks.map((c) => (c.type === 'text-delta' ? c.delta : '')).join('');
}

function body(chatId: string, messages: UiMessage[] | unknown): string {
  return JSON.stringify({ id: chatId, messages });
}

describe('POST /api/chat', () => {
  it('answers with the UI message stream: headers, data-only frames, [DONE], every part valid for the AI SDK', async () => {
    const s = await start();
    const res = await fetch(s.api, { method: 'POST', headers: { 'content-type': 'application/json' }, body: body('c1', [userMessage('hello')]) });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-vercel-ai-ui-message-stream'), 'v1');
    assert.equal(res.headers.get('content-type'), 'text/event-stream');
    assert.equal(res.headers.get('cache-control'), 'no-cache, no-transform');
    assert.equal(res.headers.get('x-accel-buffering'), 'no');
    assert.equal(res.headers.get('content-encoding'), null);
    const runId = res.headers.get('x-sluice-run-id');
    const text = await res.text();
    assert.match(text, /^(data: [^\n]+\n\n)+$/);
    assert.ok(text.endsWith('data: {"type":"finish","finishReason":"stop"}\n\ndata: [DONE]\n\n'));
    const chunks = await validateWithAiSdk(text);
    assert.deepEqual(chunks[0], { type: 'start', messageId: runId });
    assert.deepEqual(chunks[1], { type: 'data-status', data: { text: 'Thinking…' }, transient: true });
    const message = await clientMessage(chunks);
    assert.match(textOf(message), /^Hello! I'm Sluice's scripted demo model\./);
  });

  it('runs the chat action with a Rasa tracker: sender_id = chat id, latest message, user/bot events', async () => {
    const s = await start();
    const history = [
      userMessage('hi', 'u1'),
      { id: 'a1', role: 'assistant' as const, parts: [{ type: 'text' as const, text: 'Hello!' }] },
      userMessage('What is Sluice?', 'u2'),
    ];
    const chunks = await collect(await send(s, 'chat-42', history));
    assert.equal(types(chunks).at(-1), 'finish');
    assert.equal(s.probe.trackers.length, 1);
    const tracker = s.probe.trackers[0]!;
    assert.equal(tracker.senderId, 'chat-42');
    assert.equal(tracker.latest, 'What is Sluice?');
    assert.deepEqual(
      tracker.events.map((e) => [(e as { event: string }).event, (e as { text: string }).text]),
      [
        ['user', 'hi'],
        ['bot', 'Hello!'],
        ['user', 'What is Sluice?'],
      ],
    );
    assert.match(deltas(chunks), /^Sluice is a TypeScript framework/);
  });

  it('streams tool calls with the ScriptedModel (get_weather): input streaming, available, output', async () => {
    const s = await start();
    const chunks = await collect(await send(s, 'w', [userMessage('What is the weather in Paris?')]));
    const toolParts = chunks.filter((c) => c.type.startsWith('tool-'));
    assert.deepEqual(types(toolParts), ['tool-input-start', 'tool-input-delta', 'tool-input-delta', 'tool-input-delta', 'tool-input-delta', 'tool-input-available', 'tool-output-available']);
    assert.deepEqual(toolParts[0], { type: 'tool-input-start', toolCallId: 'call_1', toolName: 'get_weather' });
    assert.equal(toolParts.filter((c) => c.type === 'tool-input-delta').map((c) => (c as { inputTextDelta: string }).inputTextDelta).join(''), '{"city":"Paris"}');
    assert.deepEqual(toolParts[5], { type: 'tool-input-available', toolCallId: 'call_1', toolName: 'get_weather', input: { city: 'Paris' } });
    assert.deepEqual(toolParts[6], { type: 'tool-output-available', toolCallId: 'call_1', output: { city: 'Paris', conditions: 'light rain in the morning, clearing by noon', temperatureC: 14 } });
    // The tool status is transient; the text after the tool is a new block, so it renders below the tool.
    assert.ok(chunks.some((c) => c.type === 'data-status' && (c.data as { text: string }).text === 'Checking the weather in Paris…'));
    const message = await clientMessage(chunks);
    assert.deepEqual(message.parts.map((p) => p.type), ['text', 'tool-get_weather', 'text']);
    assert.equal((message.parts[1] as { state: string }).state, 'output-available');
    assert.match(textOf(message), /light rain in the morning/);

    // The stored message is the one the client built.
    const saved = await json(`${s.api}/w/messages`);
    assert.equal(saved.status, 200);
    assert.equal(saved.body.activeRunId, null);
    const stored = saved.body.messages[1] as UiMessage;
    assert.equal(stored.id, message.id);
    assert.deepEqual(
      stored.parts.map((p) => [p.type, p.state]),
      message.parts.map((p) => [p.type, (p as { state?: string }).state]),
    );
    assert.equal(textOf(stored), textOf(message));
    assert.deepEqual(stored.metadata, { sluice: { runId: message.id, status: 'completed' } });
  });

  it('delivers rich content as data parts and sources the client keeps in order', async () => {
    const s = await start();
    const chunks = await collect(await send(s, 'r', [userMessage('rich')]));
    const message = await clientMessage(chunks);
    assert.deepEqual(message.parts.map((p) => p.type), ['text', 'source-url', 'data-buttons', 'text', 'data-image', 'text', 'data-custom']);
    assert.deepEqual(message.parts[6], { type: 'data-custom', id: 'card-1', data: { id: 'card-1', kind: 'card', title: 'Hi' } });
    assert.deepEqual(message.parts[1], { type: 'source-url', sourceId: (message.parts[1] as { sourceId: string }).sourceId, url: 'https://example.com/docs', title: 'Docs', providerMetadata: { sluice: { position: 1 } } });
  });

  it('reports an error mid-stream as an error part with a safe text, keeping the partial answer', async () => {
    const s = await start();
    const chunks = await collect(await send(s, 'e', [userMessage('fail')]));
    assert.deepEqual(chunks.slice(-4).map((c) => ({ ...c, id: undefined })), [
      { type: 'text-delta', id: undefined, delta: 'partial ' },
      { type: 'text-end', id: undefined },
      { type: 'error', errorText: 'An error occurred.', id: undefined },
      { type: 'finish', finishReason: 'error', id: undefined },
    ]);
    assert.ok(!JSON.stringify(chunks).includes('10.0.0.5'), 'internals never reach the client');
    const saved = await json(`${s.api}/e/messages`);
    assert.equal(textOf(saved.body.messages[1]), 'partial ');
    assert.equal(saved.body.messages[1].metadata.sluice.status, 'error');

    // A public error keeps its message.
    const public_ = await collect(await send(s, 'e2', [userMessage('unavailable')]));
    assert.deepEqual(public_.find((c) => c.type === 'error'), { type: 'error', errorText: 'The weather service is unavailable, try again later' });
  });
});

describe('stop, disconnect and resume', () => {
  it('POST /api/chat/:id/stop cancels mid-stream: abort part, no finish, partial message saved', async () => {
    const s = await start();
    const stream = await send(s, 'st', [userMessage('slow please', 'u1')]);
    const reader = stream.getReader();
    const seen = await readUntil(reader, (c) => c.type === 'text-delta' && c.delta === 'two ');
    const runId = (seen[0] as { messageId: string }).messageId;

    const stale = await postJson(`${s.api}/st/stop`, { activeStreamId: 'some-older-run' });
    assert.deepEqual(stale.body, { success: true, stopped: false, runId });

    const stop = await postJson(`${s.api}/st/stop`, { activeStreamId: runId });
    assert.equal(stop.status, 200);
    assert.equal(stop.body.success, true);
    assert.equal(stop.body.stopped, true);
    assert.equal(stop.body.runId, runId);
    assert.equal(textOf(stop.body.message), 'one two ');

    const rest: UIMessageChunk[] = [];
    for (let step = await reader.read(); !step.done; step = await reader.read()) rest.push(step.value);
    assert.deepEqual(rest, [{ type: 'text-end', id: (seen[1] as { id: string }).id }, { type: 'abort', reason: 'stop' }]);
    await waitFor(() => s.probe.aborted === 1, 'the action to see its signal abort');

    // A reload shows the partial answer.
    const saved = await json(`${s.api}/st/messages`);
    assert.deepEqual(saved.body.messages.map((m: UiMessage) => m.id), ['u1', runId]);
    assert.equal(textOf(saved.body.messages[1]), 'one two ');
    assert.equal(saved.body.messages[1].metadata.sluice.status, 'cancelled');
    assert.equal(saved.body.messages[1].parts[0].state, 'done');

    // Stopping again: the chat is known, nothing to stop.
    assert.deepEqual((await postJson(`${s.api}/st/stop`, {})).body, { success: true, stopped: false, runId: null });
    // Once the run has ended, its end does not overwrite the saved message.
    await waitFor(() => s.executor.activeRuns === 0, 'the run to end');
    assert.deepEqual((await json(`${s.api}/st/messages`)).body.messages, saved.body.messages);
  });

  it('stopping during a tool call closes the tool (no dangling input-streaming)', async () => {
    const s = await start();
    const reader = (await send(s, 'tw', [userMessage('tool wait')])).getReader();
    const seen = await readUntil(reader, (c) => c.type === 'tool-input-delta');
    const stop = await postJson(`${s.api}/tw/stop`, undefined);
    assert.equal(stop.body.stopped, true);
    const rest: UIMessageChunk[] = [];
    for (let step = await reader.read(); !step.done; step = await reader.read()) rest.push(step.value);
    assert.deepEqual(rest, [{ type: 'tool-output-error', toolCallId: 'call_w', errorText: 'The tool call was cancelled' }, { type: 'abort', reason: 'stop' }]);
    const message = await clientMessage([...seen, ...rest]);
    assert.equal((message.parts[0] as { state: string }).state, 'output-error');
    assert.equal(stop.body.message.parts[0].state, 'output-error');
  });

  it("by default a dropped connection (useChat's stop()) cancels the run and saves what was said", async () => {
    const s = await start();
    const controller = new AbortController();
    const reader = (await send(s, 'dc', [userMessage('slow')], controller.signal)).getReader();
    await readUntil(reader, (c) => c.type === 'text-delta' && c.delta === 'two ');
    controller.abort();
    await waitFor(() => s.executor.activeRuns === 0, 'the run to be cancelled');
    assert.equal(s.probe.aborted, 1);
    const saved = await json(`${s.api}/dc/messages`);
    assert.equal(textOf(saved.body.messages[1]), 'one two ');
    assert.equal(saved.body.messages[1].metadata.sluice.status, 'cancelled');
    assert.equal(await s.transport.reconnectToStream({ chatId: 'dc' }), null, 'nothing left to resume');
  });

  it('resumable: a dropped connection keeps the run; GET /stream replays it, then follows live; 204 when none', async () => {
    const s = await start({ resumable: true });
    assert.equal(await s.transport.reconnectToStream({ chatId: 'never-seen' }), null, '204 for an unknown chat');

    const controller = new AbortController();
    const reader = (await send(s, 'rs', [userMessage('slow', 'u1')], controller.signal)).getReader();
    await readUntil(reader, (c) => c.type === 'text-delta' && c.delta === 'two ');
    controller.abort();
    await sleep(50);
    assert.equal(s.executor.activeRuns, 1, 'the run goes on without its reader');
    assert.equal(s.probe.aborted, 0);

    // Meanwhile a reload shows the answer so far.
    const live = await json(`${s.api}/rs/messages`);
    assert.equal(live.body.activeRunId, live.body.messages[1].id);
    assert.equal(textOf(live.body.messages[1]), 'one two ');
    assert.equal(live.body.messages[1].metadata.sluice.status, 'streaming');

    const resumed = await s.transport.reconnectToStream({ chatId: 'rs' });
    assert.ok(resumed !== null);
    const resumedReader = resumed.getReader();
    const replay = await readUntil(resumedReader, (c) => c.type === 'text-delta' && c.delta === 'two ');
    assert.deepEqual(types(replay), ['start', 'text-start', 'text-delta', 'text-delta']);
    s.probe.gate.open();
    const rest: UIMessageChunk[] = [];
    for (let step = await resumedReader.read(); !step.done; step = await resumedReader.read()) rest.push(step.value);
    assert.deepEqual(types(rest), ['text-delta', 'text-end', 'finish']);
    const message = await clientMessage([...replay, ...rest]);
    assert.equal(textOf(message), 'one two three');

    await waitFor(() => s.executor.activeRuns === 0, 'the run to end');
    assert.equal(await s.transport.reconnectToStream({ chatId: 'rs' }), null, '204 once the answer is complete');
    const saved = await json(`${s.api}/rs/messages`);
    assert.equal(textOf(saved.body.messages[1]), 'one two three');
    assert.equal(saved.body.messages[1].metadata.sluice.status, 'completed');
  });

  it('a resuming reader that leaves never cancels, even in the default mode', async () => {
    const s = await start();
    const reader = (await send(s, 'two-tabs', [userMessage('slow')])).getReader();
    await readUntil(reader, (c) => c.type === 'text-delta' && c.delta === 'two ');
    const controller = new AbortController();
    const second = await s.transport.reconnectToStream({ chatId: 'two-tabs', abortSignal: controller.signal });
    assert.ok(second !== null);
    await readUntil(second.getReader(), (c) => c.type === 'text-delta' && c.delta === 'two ');
    controller.abort();
    await sleep(50);
    assert.equal(s.probe.aborted, 0);
    s.probe.gate.open();
    const rest: UIMessageChunk[] = [];
    for (let step = await reader.read(); !step.done; step = await reader.read()) rest.push(step.value);
    assert.equal(types(rest).at(-1), 'finish');
  });

  it('a client that stops reading holds the producer back; leaving while the socket is full still cancels', async () => {
    const s = await start();
    const req = http.request(s.api, { method: 'POST', headers: { 'content-type': 'application/json' } });
    const response = new Promise<http.IncomingMessage>((resolve) => req.on('response', resolve));
    req.on('error', () => {});
    req.end(body('bp', [userMessage('flood')]));
    const res = await response;
    await new Promise((resolve) => res.once('data', resolve));
    res.pause();
    // Wait until the producer is blocked: the socket is full and the run's buffer is at its mark.
    let last = -1;
    while (s.probe.emitted !== last) {
      last = s.probe.emitted;
      await sleep(100);
    }
    assert.ok(s.probe.emitted > 256, `it streamed (${s.probe.emitted})`);
    assert.ok(s.probe.emitted < 20_000, `the producer waits for the reader (emitted ${s.probe.emitted} KiB)`);
    assert.equal(s.executor.activeRuns, 1);
    res.destroy();
    await waitFor(() => s.executor.activeRuns === 0, 'the blocked run to be cancelled');
    assert.equal(s.probe.aborted, 1);
  });

  it('maxDurationMs ends a stream (no [DONE]); the run goes on and can be resumed', async () => {
    const s = await start({ resumable: true, maxDurationMs: 100 });
    const res = await fetch(s.api, { method: 'POST', headers: { 'content-type': 'application/json' }, body: body('md', [userMessage('slow')]) });
    const text = await res.text();
    assert.ok(!text.includes('[DONE]'));
    assert.equal(s.executor.activeRuns, 1);
    s.probe.gate.open();
    await waitFor(() => s.executor.activeRuns === 0, 'the run to end');
    assert.equal(textOf((await json(`${s.api}/md/messages`)).body.messages[1]), 'one two three');
  });

  it('pings idle streams with SSE comments that the AI SDK ignores', async () => {
    const s = await start({ pingIntervalMs: 20 });
    const res = await fetch(s.api, { method: 'POST', headers: { 'content-type': 'application/json' }, body: body('p', [userMessage('slow')]) });
    setTimeout(() => s.probe.gate.open(), 120);
    const text = await res.text();
    assert.ok(text.includes(': ping\n\n'));
    const message = await clientMessage(await validateWithAiSdk(text));
    assert.equal(textOf(message), 'one two three');
  });
});

describe('one answer per chat', () => {
  it('a new POST supersedes the answer in progress (abort reason superseded); the newer history is saved', async () => {
    const s = await start();
    const first = (await send(s, 'busy', [userMessage('slow', 'u1')])).getReader();
    await readUntil(first, (c) => c.type === 'text-delta' && c.delta === 'two ');
    const history = [userMessage('slow', 'u1'), userMessage('hello', 'u2')];
    const second = await collect(await send(s, 'busy', history));
    const rest: UIMessageChunk[] = [];
    for (let step = await first.read(); !step.done; step = await first.read()) rest.push(step.value);
    assert.deepEqual(rest.at(-1), { type: 'abort', reason: 'superseded' });
    assert.equal(types(second).at(-1), 'finish');
    await waitFor(() => s.executor.activeRuns === 0, 'both runs to end');
    const saved = await json(`${s.api}/busy/messages`);
    assert.deepEqual(saved.body.messages.map((m: UiMessage) => m.role), ['user', 'user', 'assistant']);
    assert.match(textOf(saved.body.messages[2]), /^Hello!/);
  });

  it("onBusy: 'reject' answers 409 while an answer is in progress", async () => {
    const s = await start({ onBusy: 'reject' });
    const first = (await send(s, 'busy', [userMessage('slow')])).getReader();
    await readUntil(first, (c) => c.type === 'start');
    const conflict = await postJson(s.api, { id: 'busy', messages: [userMessage('hello')] });
    assert.equal(conflict.status, 409);
    assert.equal(conflict.body.code, 'already_exists');
    assert.match(conflict.body.error, /already has an answer in progress/);
    s.probe.gate.open();
    for (let step = await first.read(); !step.done; step = await first.read());
    await waitFor(() => s.executor.activeRuns === 0, 'the run to end');
    const after = await fetch(s.api, { method: 'POST', headers: { 'content-type': 'application/json' }, body: body('busy', [userMessage('hello')]) });
    assert.equal(after.status, 200);
    await after.text();
  });
});

describe('bad input', () => {
  it('answers 400 JSON naming the problem', async () => {
    const s = await start();
    const malformed = await postJson(s.api, '{"id": "c", "messages": [');
    assert.equal(malformed.status, 400);
    assert.deepEqual(malformed.body, { error: 'Invalid request body: it is not valid JSON', code: 'invalid_argument' });

    const cases: [unknown, RegExp][] = [
      [{ id: 'c' }, /messages: is required/],
      [{ messages: [userMessage('x')] }, /id: is required/],
      [{ id: 'c', messages: 'hi' }, /messages: /],
      [{ id: 'c', messages: [] }, /messages: /],
      [{ id: 'c', messages: [{ id: 'm', role: 'robot', parts: [] }] }, /messages\.0\.role/],
      [{ id: 'c', messages: [{ id: 'm', role: 'user', parts: [{ type: 'text' }] }] }, /messages\.0\.parts\.0\.text/],
      [[1, 2], /body must be a JSON object/],
    ];
    for (const [input, pattern] of cases) {
      const res = await postJson(s.api, input);
      assert.equal(res.status, 400, JSON.stringify(input));
      assert.equal(res.body.code, 'invalid_argument');
      assert.match(res.body.error, pattern);
    }
    const noBody = await json(s.api, { method: 'POST' });
    assert.equal(noBody.status, 400);
    assert.match(noBody.body.error, /body must be a JSON object/);

    const badStop = await postJson(`${s.api}/x/stop`, { activeStreamId: 5 });
    assert.equal(badStop.status, 400);
    assert.match(badStop.body.error, /activeStreamId/);
    assert.equal(s.executor.activeRuns, 0, 'no run was started');
  });

  it('unknown chat: stream 204, stop 404, messages 404', async () => {
    const s = await start();
    const stream = await fetch(`${s.api}/nope/stream`);
    assert.equal(stream.status, 204);
    assert.equal(await stream.text(), '');
    const stop = await postJson(`${s.api}/nope/stop`, {});
    assert.equal(stop.status, 404);
    assert.deepEqual(stop.body, { error: "No chat found with id 'nope'", code: 'not_found' });
    const messages = await json(`${s.api}/nope/messages`);
    assert.equal(messages.status, 404);
    assert.equal(messages.body.code, 'not_found');
  });

  it('refuses invalid options at registration, and answers 500 when the chat action is missing', async () => {
    const executor = new ActionExecutor({ logger: silentLogger });
    const app = Fastify();
    await assert.rejects(
      async () => {
        await app.register(uiMessageRoutes, { executor, onBusy: 'queue' as never });
        await app.ready();
      },
      /option 'onBusy'/,
    );
    const app2 = Fastify();
    await app2.register(uiMessageRoutes, { executor, logger: silentLogger });
    const res = await app2.inject({ method: 'POST', url: '/api/chat', payload: { id: 'c', messages: [userMessage('x')] } });
    assert.equal(res.statusCode, 500);
    assert.deepEqual(res.json(), { error: 'The chat action is not available', code: 'internal' });
    await app2.close();
    await executor.close();
  });
});
