/**
 * Fuzz: every HTTP route of `sluice serve` with generated malformed and hostile input (bodies,
 * content encodings, path ids, query strings, headers). No client error may be a 5xx, every error
 * has a clear JSON body (`error` names the problem), the server is healthy after, and nothing
 * stored (chats, app state, voice history) fails to read back.
 */
import assert from 'node:assert/strict';
import { deflateSync, gzipSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import type { RunningServer } from '../../src/cli/serve.ts';
import { anyJson, assertHealthy, deepJson, fuzzServer, hostileBody, hostileString, runs } from './harness.ts';

interface Answer {
  status: number;
  type: string;
  text: string;
}

/** Sends a request; a streamed (SSE) answer is read for its headers only, then dropped. */
async function send(url: string, init: RequestInit): Promise<Answer> {
  const res = await fetch(url, { ...init, signal: AbortSignal.timeout(10_000) });
  const type = res.headers.get('content-type') ?? '';
  if (type.startsWith('text/event-stream')) {
    await res.body?.cancel();
    return { status: res.status, type, text: '' };
  }
  return { status: res.status, type, text: await res.text() };
}

/** A client error: 4xx (never 5xx) with a JSON body naming the problem; or a success. */
function assertClientAnswer(answer: Answer, what: string): void {
  assert.ok(answer.status < 500, `${what}: ${answer.status} ${answer.text.slice(0, 300)}`);
  if (answer.status >= 400) {
    let body: unknown;
    assert.doesNotThrow(() => (body = JSON.parse(answer.text)), `${what}: error body is not JSON: ${answer.text.slice(0, 200)}`);
    const error = (body as { error?: unknown }).error;
    assert.ok(typeof error === 'string' && error.length > 0, `${what}: no 'error' message in ${answer.text.slice(0, 200)}`);
    assert.doesNotMatch(error, /at .*\.ts:\d+|node_modules|Maximum call stack/, `${what}: internals leak: ${error}`);
  }
}

const POST_ROUTES = ['/webhook', '/webhook/stream', '/api/chat', '/apps/{id}/stream', '/runs/{id}/cancel', '/streams/{id}/ack', '/api/chat/{id}/stop', '/apps/{id}/runs/{id}/cancel'];
const GET_ROUTES = ['/health', '/actions', '/runs/{id}/events', '/runs/{id}/sentences', '/api/chat/{id}/stream', '/api/chat/{id}/messages', '/apps/{id}/state', '/apps/{id}/runs', '/apps/{id}/runs/{id}/events', '/voice/history', '/voice/history/{id}', '/nope/{id}'];

const pathId = fc.oneof(hostileString.map((s) => encodeURIComponent(s.slice(0, 2000).toWellFormed())), fc.constantFrom('%', '%zz', '..', '%2e%2e', 'a%00b', 'x'.repeat(5000)), fc.uuid());
const query = fc.oneof(
  fc.constant(''),
  fc.dictionary(fc.constantFrom('after', 'detach', 'limit', 'runId', 'sessionId', 'x'), hostileString.map((s) => s.slice(0, 500))).map((q) => `?${new URLSearchParams(q)}`),
  fc.constantFrom('?after=-1', '?after=1e400', '?detach=maybe', '?limit=0', '?limit=abc', '?%zz=1', '?after=99999999999999999999'),
);
const headers = fc.record(
  {
    'content-type': fc.constantFrom('application/json', 'text/plain', 'application/x-www-form-urlencoded', '', 'application/json; charset=latin1', 'multipart/form-data; boundary=x'),
    'content-encoding': fc.constantFrom('deflate', 'gzip', 'br', 'identity', 'x-gzip', 'gzip, deflate'),
    accept: fc.constantFrom('text/event-stream', 'application/json', '*/*', 'text/event-stream;q=0'),
    'last-event-id': fc.oneof(fc.constantFrom('-1', 'abc', '99999999999999999999', '1'), hostileString.map((s) => s.replace(/[^\x20-\x7e]/g, '').slice(0, 200))),
    'x-sluice-detach': fc.constantFrom('true', 'false', 'maybe', ''),
  },
  { requiredKeys: [] },
);

function fill(route: string, ids: string[]): string {
  let i = 0;
  return route.replace(/\{id\}/g, () => ids[i++ % ids.length]!);
}

describe('fuzz: HTTP routes', () => {
  let server: RunningServer;
  const chats = new Set<string>();
  before(async () => {
    server = await fuzzServer();
  });
  after(() => server.close());

  it('POST routes: hostile bodies, encodings and ids never give a 5xx', async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...POST_ROUTES), fc.array(pathId, { minLength: 2, maxLength: 2 }), query, hostileBody, headers, fc.constantFrom('none', 'deflate', 'gzip', 'garbage'), async (route, ids, q, body, h, encode) => {
        let bytes: Buffer = Buffer.from(body);
        const sent: Record<string, string> = { ...h };
        if (encode === 'deflate') {
          bytes = deflateSync(bytes);
          sent['content-encoding'] = 'deflate';
        } else if (encode === 'gzip') {
          bytes = gzipSync(bytes);
          sent['content-encoding'] = 'gzip';
        } else if (encode === 'none') delete sent['content-encoding'];
        if (route === '/api/chat') {
          try {
            const id = (JSON.parse(body) as { id?: unknown }).id;
            if (typeof id === 'string') chats.add(id);
          } catch {}
        }
        const answer = await send(`${server.httpUrl}${fill(route, ids)}${q}`, { method: 'POST', headers: sent, body: bytes });
        assertClientAnswer(answer, `POST ${route}`);
      }),
      { numRuns: runs(500) },
    );
  });

  it('AI SDK chat: hostile messages are refused or stored so that they read back', async () => {
    const part = fc.oneof(fc.record({ type: fc.constant('text'), text: hostileString }), fc.record({ type: hostileString, text: anyJson }, { requiredKeys: [] }), anyJson);
    const message = fc.record({ id: fc.oneof(hostileString, anyJson), role: fc.constantFrom('user', 'assistant', 'system', 'tool', ''), parts: fc.oneof(fc.array(part, { maxLength: 3 }), anyJson), metadata: anyJson }, { requiredKeys: ['role', 'parts'] });
    await fc.assert(
      fc.asyncProperty(fc.oneof(fc.uuid(), hostileString.map((s) => s.slice(0, 300))), fc.array(message, { minLength: 0, maxLength: 4 }), fc.boolean(), async (id, messages, deep) => {
        let body = JSON.stringify({ id, messages });
        if (deep) body = JSON.stringify({ id, messages: [{ role: 'user', parts: [{ type: 'text', text: 'hi' }], metadata: 'DEEP' }] }).replace('"DEEP"', deepJson(10_000));
        chats.add(id);
        const answer = await send(`${server.httpUrl}/api/chat`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
        assertClientAnswer(answer, 'POST /api/chat');
        if (deep) assert.equal(answer.status, 400, 'a 10,000-deep metadata is refused');
      }),
      { numRuns: runs(300) },
    );
  });

  it('GET routes: hostile ids, queries and headers never give a 5xx', async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...GET_ROUTES), fc.array(pathId, { minLength: 2, maxLength: 2 }), query, headers, async (route, ids, q, h) => {
        const answer = await send(`${server.httpUrl}${fill(route, ids)}${q}`, { method: 'GET', headers: { ...h, 'content-encoding': 'identity' } });
        assertClientAnswer(answer, `GET ${route}`);
      }),
      { numRuns: runs(500) },
    );
  });

  it('afterwards: healthy, and everything stored reads back', async () => {
    await assertHealthy(server.httpUrl);
    for (const id of chats) {
      if (id === '' || id.length > 256 || !id.isWellFormed()) continue;
      const answer = await send(`${server.httpUrl}/api/chat/${encodeURIComponent(id.toWellFormed())}/messages`, { method: 'GET' });
      assert.ok(answer.status === 200 || answer.status === 404, `chat ${JSON.stringify(id).slice(0, 80)}: ${answer.status} ${answer.text.slice(0, 200)}`);
      if (answer.status === 200) assert.doesNotThrow(() => JSON.parse(answer.text));
    }
    const history = await send(`${server.httpUrl}/voice/history`, { method: 'GET' });
    assert.ok(history.status < 500);
    const actions = await send(`${server.httpUrl}/actions`, { method: 'GET' });
    assert.equal(actions.status, 200);
  });
});
