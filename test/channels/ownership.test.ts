/**
 * Ownership across the plugin routes (issue 14, defect 10): AI SDK chats, voice sessions and their
 * history, sentences, and app instances belong to the principal that created them; another
 * principal never reads, stops or overwrites them, and an anonymous server does not list every
 * session's history unless asked to.
 */

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { WebSocket } from 'ws';
import { exampleApps } from '../../examples/app.ts';
import { uiMessageRoutes } from '../../src/channels/ui-message/index.ts';
import { sentenceRoutes, voiceWsRoutes } from '../../src/channels/voice/index.ts';
import { ActionExecutor } from '../../src/runtime/executor.ts';
import { silentLogger } from '../../src/runtime/logger.ts';
import type { SQLiteTracker } from '../../src/stores/index.ts';
import { createHttpServer } from '../../src/transports/http/index.ts';
import { Probe, chatAction, userMessage } from './ui-message/helpers.ts';
import { FakeTts, call as voiceCall, pacedAction } from './voice/helpers.ts';

const KEY_A = `key-a-${randomUUID()}`;
const KEY_B = `key-b-${randomUUID()}`;
const as = (key: string, extra: Record<string, string> = {}): Record<string, string> => ({ authorization: `Bearer ${key}`, ...extra });

async function json(url: string, init: RequestInit = {}): Promise<{ status: number; body: any }> {
  const res = await fetch(url, init);
  const text = await res.text();
  return { status: res.status, body: text === '' ? undefined : JSON.parse(text) };
}

/** A voice socket collecting its JSON messages. */
class VoiceClient {
  readonly messages: any[] = [];
  readonly socket: WebSocket;
  constructor(socket: WebSocket) {
    this.socket = socket;
    socket.on('message', (data, binary) => {
      if (!binary) this.messages.push(JSON.parse(String(data)));
    });
  }
  static async connect(url: string): Promise<VoiceClient> {
    const socket = new WebSocket(url, { perMessageDeflate: false });
    const client = new VoiceClient(socket);
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('error', reject);
    });
    return client;
  }
  async next(predicate: (m: any) => boolean, timeoutMs = 5000): Promise<any> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.messages.find(predicate);
      if (found !== undefined) return found;
      if (Date.now() > deadline) throw new Error(`voice: timed out; got ${JSON.stringify(this.messages)}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }
  close(): void {
    this.socket.close();
  }
}

describe('ownership of chats, voice sessions and app instances', () => {
  const probe = new Probe();
  const dir = mkdtempSync(join(tmpdir(), 'sluice-ownership-'));
  const apps = exampleApps({ dataDir: dir, wordDelayMs: 1 });
  let executor: ActionExecutor;
  let app: FastifyInstance;
  let url: string;

  before(async () => {
    executor = new ActionExecutor({ logger: silentLogger, actions: [chatAction(probe), pacedAction('action_voice', 'Hello there. My card number is 4111. Bye now.', 2)] });
    app = createHttpServer({ executor, logger: false, apps, auth: { apiKeys: [KEY_A, KEY_B] } });
    await app.register(uiMessageRoutes, { executor, action: 'action_chat' });
    await app.register(sentenceRoutes, { executor });
    await app.register(voiceWsRoutes, { executor, tts: new FakeTts(null, 1), logger: silentLogger });
    url = await app.listen({ port: 0, host: '127.0.0.1' });
  });
  after(async () => {
    probe.gate.open();
    await executor.close();
    await app.close();
    (apps.tracker as SQLiteTracker).close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('every plugin route (registered after the server was built) needs credentials', async () => {
    for (const path of ['/api/chat/x/messages', '/voice/history', `/voice/history/${randomUUID()}`, `/runs/${randomUUID()}/sentences`, '/apps/x/state', '/apps/x/runs']) {
      const res = await fetch(`${url}${path}`);
      assert.equal(res.status, 401, path);
      assert.equal(((await res.json()) as { code: string }).code, 'unauthenticated');
    }
    const post = await fetch(`${url}/api/chat`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ id: 'x', messages: [userMessage('hi')] }) });
    assert.equal(post.status, 401);
    const refused = await new Promise<number>((resolve, reject) => {
      const socket = new WebSocket(`${url.replace(/^http/, 'ws')}/voice/ws`);
      socket.once('open', () => reject(new Error('the voice socket opened without credentials')));
      socket.once('unexpected-response', (_req, res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      socket.once('error', () => {});
    });
    assert.equal(refused, 401);
  });

  it('POST /api/chat with someone else’s chat id neither cancels their answer nor replaces their history', async () => {
    const chatId = `chat-${randomUUID()}`;
    const post = (key: string, text: string): Promise<Response> =>
      fetch(`${url}/api/chat`, { method: 'POST', headers: as(key, { 'content-type': 'application/json' }), body: JSON.stringify({ id: chatId, messages: [userMessage(text)] }) });
    const a = await post(KEY_A, 'slow secret of a');
    assert.equal(a.status, 200);
    const reader = a.body!.getReader();
    await reader.read();
    const runA = a.headers.get('x-sluice-run-id')!;
    assert.equal(executor.getRun(runA)?.state, 'running');

    // B: reading, resuming, stopping A's chat finds nothing.
    assert.equal((await json(`${url}/api/chat/${chatId}/messages`, { headers: as(KEY_B) })).status, 404);
    assert.equal((await fetch(`${url}/api/chat/${chatId}/stream`, { headers: as(KEY_B) })).status, 204);
    assert.equal((await json(`${url}/api/chat/${chatId}/stop`, { method: 'POST', headers: as(KEY_B) })).status, 404);
    // B posting the same id gets a chat of its own.
    const b = await post(KEY_B, 'hello from b');
    assert.equal(b.status, 200);
    await b.text();
    assert.equal(executor.getRun(runA)?.state, 'running', "A's answer was not cancelled");
    assert.equal(probe.aborted, 0);

    probe.gate.open();
    await reader.cancel().catch(() => {});
    await executor.getRun(runA)?.done;
    const mine = await json(`${url}/api/chat/${chatId}/messages`, { headers: as(KEY_A) });
    assert.equal(mine.status, 200);
    assert.match(JSON.stringify(mine.body.messages), /slow secret of a/);
    assert.doesNotMatch(JSON.stringify(mine.body.messages), /hello from b/);
    const theirs = await json(`${url}/api/chat/${chatId}/messages`, { headers: as(KEY_B) });
    assert.doesNotMatch(JSON.stringify(theirs.body.messages), /secret/);
  });

  it('GET /apps/:id/state never returns another principal’s conversation', async () => {
    const appId = `app-${randomUUID()}`;
    const res = await fetch(`${url}/apps/${appId}/stream`, { method: 'POST', headers: as(KEY_A, { 'content-type': 'application/json' }), body: JSON.stringify({ inputs: { message: 'my secret plan' } }) });
    assert.equal(res.status, 200);
    await res.text();
    const mine = await json(`${url}/apps/${appId}/state`, { headers: as(KEY_A) });
    assert.equal(mine.body.appId, appId);
    assert.match(JSON.stringify(mine.body.state), /my secret plan/);
    const theirs = await json(`${url}/apps/${appId}/state`, { headers: as(KEY_B) });
    assert.doesNotMatch(JSON.stringify(theirs.body), /secret/);
    const runs = await json(`${url}/apps/${appId}/runs`, { headers: as(KEY_B) });
    assert.equal(runs.body.runs.length, 0);
    const runId = mine.body.lastStep.runId as string;
    assert.equal((await json(`${url}/apps/${appId}/runs/${runId}/cancel`, { method: 'POST', headers: as(KEY_B) })).status, 404);
  });

  it('voice: another principal’s turn history, session listing and sentences are unreachable', async () => {
    const ws = url.replace(/^http/, 'ws');
    const a = await VoiceClient.connect(`${ws}/voice/ws?token=${encodeURIComponent(KEY_A)}`);
    try {
      a.socket.send(JSON.stringify({ type: 'start', call: voiceCall('action_voice') }));
      const end = await a.next((m) => m.type === 'turn-end');
      const { turnId, runId } = end as { turnId: string; runId: string };

      const own = await json(`${url}/voice/history/${turnId}`, { headers: as(KEY_A) });
      assert.equal(own.status, 200);
      assert.match(own.body.generated, /4111/);
      const theirs = await json(`${url}/voice/history/${turnId}`, { headers: as(KEY_B) });
      const unknown = await json(`${url}/voice/history/${randomUUID()}`, { headers: as(KEY_B) });
      assert.equal(theirs.status, 404);
      assert.deepEqual(Object.keys(theirs.body).sort(), Object.keys(unknown.body).sort());

      const listA = await json(`${url}/voice/history`, { headers: as(KEY_A) });
      assert.ok(listA.body.entries.some((e: any) => e.id === turnId));
      const listB = await json(`${url}/voice/history`, { headers: as(KEY_B) });
      assert.equal(JSON.stringify(listB.body).includes('4111'), false, 'B lists none of A’s turns');
      const bySession = await json(`${url}/voice/history?runId=${runId}`, { headers: as(KEY_B) });
      assert.deepEqual(bySession.body.entries, []);

      assert.equal((await fetch(`${url}/runs/${runId}/sentences`, { headers: as(KEY_B) })).status, 404);
      const sentences = await fetch(`${url}/runs/${runId}/sentences`, { headers: as(KEY_A) });
      assert.equal(sentences.status, 200);
      await sentences.text();
    } finally {
      a.close();
    }
  });
});

describe('voice history listing without authentication', () => {
  it('is off unless enabled: an anonymous listing must name a session or run', async () => {
    const executor = new ActionExecutor({ logger: silentLogger });
    for (const listing of [undefined, true]) {
      const app = createHttpServer({ executor, logger: false });
      await app.register(voiceWsRoutes, { executor, tts: new FakeTts(null, 1), logger: silentLogger, ...(listing === undefined ? {} : { listing }) });
      const url = await app.listen({ port: 0, host: '127.0.0.1' });
      try {
        const all = await json(`${url}/voice/history`);
        if (listing === true) assert.equal(all.status, 200);
        else {
          assert.equal(all.status, 404);
          assert.match(all.body.error, /--enable-listing/);
        }
        assert.equal((await json(`${url}/voice/history?sessionId=${randomUUID()}`)).status, 200);
      } finally {
        await app.close();
      }
    }
    await executor.close();
  });
});
