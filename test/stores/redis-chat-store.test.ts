// The AI SDK chat endpoints on two instances sharing Redis (RedisChatStore + connectRedisRuns): a
// real `DefaultChatTransport` starts an answer on A, "reloads" and resumes it on B, stops it on B,
// and a second POST for a busy chat on B gets the same answer as on one instance.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { DefaultChatTransport, type UIMessage, type UIMessageChunk } from 'ai';
import Fastify, { type FastifyInstance } from 'fastify';
import { uiMessageRoutes } from '../../src/channels/ui-message/routes.ts';
import { defineAction } from '../../src/runtime/action.ts';
import { ActionExecutor } from '../../src/runtime/executor.ts';
import { silentLogger } from '../../src/runtime/logger.ts';
import { RedisChatStore } from '../../src/stores/redis-chat-store.ts';
import { connectRedisRuns, type RedisRuns } from '../../src/stores/redis-runs.ts';
import { REDIS_URL, dropPrefix, redisSkip, testPrefix } from './redis-helpers.ts';

const skip = await redisSkip();
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const chat = defineAction({
  name: 'action_chat',
  async *stream({ signal }) {
    for (let i = 0; i < 40 && !signal.aborted; i++) {
      yield `w${i} `;
      await sleep(25);
    }
    return [];
  },
});

interface Node {
  runs: RedisRuns;
  executor: ActionExecutor;
  app: FastifyInstance;
  transport: DefaultChatTransport<UIMessage>;
  api: string;
}

async function node(prefix: string, onBusy: 'cancel' | 'reject' = 'cancel'): Promise<Node> {
  const runs = await connectRedisRuns({ url: REDIS_URL, prefix, logger: silentLogger });
  const executor = new ActionExecutor({ actions: [chat], shared: runs, logger: silentLogger });
  const app = Fastify({ forceCloseConnections: true });
  await app.register(uiMessageRoutes, { executor, action: 'action_chat', resumable: true, onBusy, store: new RedisChatStore(runs), logger: silentLogger });
  const url = await app.listen({ port: 0, host: '127.0.0.1' });
  const api = `${url}/api/chat`;
  return { runs, executor, app, api, transport: new DefaultChatTransport<UIMessage>({ api }) };
}

const user = (text: string, id: string): UIMessage => ({ id, role: 'user', parts: [{ type: 'text', text }] });

async function readAll(stream: ReadableStream<UIMessageChunk>): Promise<UIMessageChunk[]> {
  const out: UIMessageChunk[] = [];
  for await (const chunk of stream as unknown as AsyncIterable<UIMessageChunk>) out.push(chunk);
  return out;
}

const textOf = (chunks: UIMessageChunk[]): string =>
  chunks.map((c) => (c.type === 'text-delta' ? c.delta : '')).join('');

describe('chats across two instances (Redis)', { skip, timeout: 60_000 }, () => {
  const prefix = testPrefix();
  let a: Node;
  let b: Node;
  before(async () => {
    a = await node(prefix);
    b = await node(prefix, 'reject');
  });
  after(async () => {
    for (const n of [a, b]) {
      if (n === undefined) continue;
      await n.executor.close();
      await n.app.close();
      await n.runs.close();
    }
    await dropPrefix(prefix);
  });

  test('useChat resume after a reload lands on B: the whole answer, replayed then live', async () => {
    const controller = new AbortController();
    const reader = (await a.transport.sendMessages({ chatId: 'c1', messages: [user('hi', 'u1')], abortSignal: controller.signal, trigger: 'submit-message', messageId: undefined })).getReader();
    await reader.read();
    await sleep(120);
    controller.abort(); // the tab reloads; resumable mode: the answer goes on
    const resumed = await b.transport.reconnectToStream({ chatId: 'c1' });
    assert.ok(resumed !== null, 'B knows the answer in progress');
    const chunks = await readAll(resumed);
    assert.equal(chunks[0]?.type, 'start');
    assert.equal(chunks.at(-1)?.type, 'finish');
    assert.equal(textOf(chunks), Array.from({ length: 40 }, (_, i) => `w${i} `).join(''));
    await sleep(100);
    assert.equal(await b.transport.reconnectToStream({ chatId: 'c1' }), null, '204 once it is over, on B too');
    const saved = (await (await fetch(`${b.api}/c1/messages`)).json()) as { messages: UIMessage[] };
    assert.equal(saved.messages.length, 2, 'A saved the answer where B reads it');
  });

  test('stop on B stops the answer running on A', async () => {
    const stream = await a.transport.sendMessages({ chatId: 'c2', messages: [user('hi', 'u2')], trigger: 'submit-message', messageId: undefined, abortSignal: undefined });
    const all = readAll(stream);
    await sleep(150);
    const response = await fetch(`${b.api}/c2/stop`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    const body = (await response.json()) as { stopped: boolean };
    assert.equal(body.stopped, true);
    const chunks = await all;
    assert.ok(chunks.some((c) => c.type === 'abort'), 'the stream on A ends with abort');
    assert.ok(textOf(chunks).length < 40 * 4);
  });

  test('a second POST for a busy chat on another instance gets the same answer as on one instance (reject → 409)', async () => {
    const stream = await a.transport.sendMessages({ chatId: 'c3', messages: [user('hi', 'u3')], trigger: 'submit-message', messageId: undefined, abortSignal: undefined });
    const all = readAll(stream);
    await sleep(100);
    const response = await fetch(b.api, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ id: 'c3', messages: [user('hi', 'u3'), user('again', 'u4')] }),
    });
    assert.equal(response.status, 409);
    await fetch(`${a.api}/c3/stop`, { method: 'POST' });
    await all;
  });
});
