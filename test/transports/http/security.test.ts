/**
 * Authentication, ownership and cross-site protection of the HTTP transport (issue 14, defects 9
 * and 10): API keys the ways real clients send them, the authenticate hook, 404 for someone
 * else's run (never 403), CORS and the WebSocket Origin check.
 */

import assert from 'node:assert/strict';
import http from 'node:http';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { WebSocket } from 'ws';
import { SluiceError } from '../../../src/protocol/errors.ts';
import { Authenticator } from '../../../src/transports/auth.ts';
import { WsClient, call, openSse, startServer, type TestServer } from './fixtures.ts';

const KEY_A = 'a'.repeat(8) + randomUUID();
const KEY_B = 'b'.repeat(8) + randomUUID();

function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}

/** Status and body of a WebSocket upgrade the server refused (or 101 when it accepted). */
function upgradeStatus(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, { headers, perMessageDeflate: false });
    socket.once('open', () => {
      socket.close();
      resolve({ status: 101, body: '' });
    });
    socket.once('unexpected-response', (_req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    socket.once('error', (error) => {
      if (!/Unexpected server response/.test(error.message)) reject(error);
    });
  });
}

async function wsConnect(url: string, headers: Record<string, string>): Promise<WsClient> {
  const socket = new WebSocket(url.replace(/^http/, 'ws') + '/ws', { headers, perMessageDeflate: false });
  const client = new WsClient(socket);
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve());
    socket.once('error', reject);
  });
  return client;
}

/** Starts a detached ticker run as `key`; returns its run id. */
async function startDetached(server: TestServer, key: string, sender: string): Promise<string> {
  const stream = await openSse(`${server.url}/webhook/stream?detach=true`, {
    body: call('action_ticker', { sender, slots: { count: 1000, interval_ms: 20 } }),
    headers: { authorization: `Bearer ${key}` },
  });
  assert.equal(stream.status, 200);
  const runId = stream.res.headers['x-sluice-run-id'] as string;
  stream.req.destroy();
  return runId;
}

describe('HTTP authentication', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer({
      server: {
        auth: {
          apiKeys: [KEY_A, { key: KEY_B, principal: 'user-b' }],
          authenticate: (request) => {
            if (request.headers['x-test-user'] === 'boom') throw new Error('token service down');
            return request.headers['x-test-user'] === 'jwt-user' ? { id: 'jwt-user' } : null;
          },
        },
      },
    });
  });
  after(() => server.close());

  it('keeps GET /health open and refuses everything else without credentials (401, WWW-Authenticate, clear body)', async () => {
    assert.equal((await fetch(`${server.url}/health`)).status, 200);
    for (const path of ['/actions', '/nope', `/runs/${randomUUID()}/events`]) {
      const res = await fetch(`${server.url}${path}`);
      assert.equal(res.status, 401, path);
      assert.equal(res.headers.get('www-authenticate'), 'Bearer realm="sluice"');
      const body = (await res.json()) as { error: string; code: string };
      assert.equal(body.code, 'unauthenticated');
      assert.match(body.error, /Authorization: Bearer/);
    }
    const post = await fetch(`${server.url}/webhook`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(call('action_hello')) });
    assert.equal(post.status, 401);
    assert.equal(server.probe.finished.size, 0, 'no action ran');
  });

  it('accepts a key as Bearer, as Rasa’s token query parameter, and as Basic auth (password, or username with an empty password)', async () => {
    const ways: [string, RequestInit, string][] = [
      ['bearer', { headers: { authorization: `Bearer ${KEY_A}` } }, '/actions'],
      ['token', {}, `/actions?token=${encodeURIComponent(KEY_B)}`],
      ['basic password', { headers: { authorization: basic('rasa', KEY_A) } }, '/actions'],
      ['basic username', { headers: { authorization: basic(KEY_B, '') } }, '/actions'],
      ['hook', { headers: { 'x-test-user': 'jwt-user' } }, '/actions'],
    ];
    for (const [name, init, path] of ways) {
      const res = await fetch(`${server.url}${path}`, init);
      assert.equal(res.status, 200, name);
    }
  });

  it('a failing authenticate hook refuses the request (401), never a 500', async () => {
    const res = await fetch(`${server.url}/actions`, { headers: { 'x-test-user': 'boom' } });
    assert.equal(res.status, 401);
    assert.equal(((await res.json()) as { code: string }).code, 'unauthenticated');
  });

  it('refuses a wrong key, a key in the wrong scheme, and a prefix of a key', async () => {
    for (const authorization of [`Bearer ${KEY_A}x`, `Bearer ${KEY_A.slice(0, -1)}`, `Token ${KEY_A}`, basic(KEY_A, 'wrong')]) {
      const res = await fetch(`${server.url}/actions`, { headers: { authorization } });
      assert.equal(res.status, 401, authorization);
      assert.match(((await res.json()) as { error: string }).error, /not valid/);
    }
  });

  it('authenticates WebSocket upgrades: 401 without credentials, ?token= or a header otherwise', async () => {
    const ws = server.url.replace(/^http/, 'ws');
    const refused = await upgradeStatus(`${ws}/ws`);
    assert.equal(refused.status, 401);
    assert.equal(JSON.parse(refused.body).code, 'unauthenticated');
    assert.equal((await upgradeStatus(`${ws}/ws?token=${encodeURIComponent(KEY_A)}`)).status, 101);
    assert.equal((await upgradeStatus(`${ws}/ws`, { authorization: `Bearer ${KEY_B}` })).status, 101);
  });

  it('refuses bad key settings at construction, naming the problem', () => {
    assert.throws(() => new Authenticator({ apiKeys: ['short'] }), (e: unknown) => SluiceError.isInstance(e) && /at least 16/.test(e.message));
    assert.throws(() => new Authenticator({ tokenName: 'a b' }), /tokenName/);
    assert.equal(new Authenticator({}).enabled, false);
  });

  it('keys given one principal authenticate as it (rotation keeps access to runs); other keys are their own', async () => {
    const auth = new Authenticator({ apiKeys: [{ key: KEY_A, principal: 'web' }, { key: KEY_B, principal: 'web' }, `${KEY_A}-other`] });
    const idOf = async (key: string) => {
      const result = await auth.authenticate({ headers: { authorization: `Bearer ${key}` }, url: '/', query: new URLSearchParams(), method: 'GET', remoteAddress: undefined, transport: 'http' });
      return result.ok ? result.principal?.id : null;
    };
    assert.equal(await idOf(KEY_A), 'web');
    assert.equal(await idOf(KEY_B), 'web');
    assert.match(String(await idOf(`${KEY_A}-other`)), /^key-[0-9a-f]{12}$/);
    assert.equal(await idOf('not-a-key-not-a-key'), null);
  });
});

describe('HTTP ownership (defect 10)', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer({ server: { auth: { apiKeys: [KEY_A, KEY_B] } } });
  });
  after(() => server.close());

  const as = (key: string): Record<string, string> => ({ authorization: `Bearer ${key}` });

  it('answers another principal’s run exactly like an unknown one: read, cancel (404, same body)', async () => {
    const runId = await startDetached(server, KEY_A, 'owner-a');
    const unknown = randomUUID();
    const normalise = (text: string, id: string): string => text.replaceAll(id, '<id>');

    const theirs = await fetch(`${server.url}/runs/${runId}/events`, { headers: as(KEY_B) });
    const none = await fetch(`${server.url}/runs/${unknown}/events`, { headers: as(KEY_B) });
    assert.equal(theirs.status, 404);
    assert.equal(normalise(await theirs.text(), runId), normalise(await none.text(), unknown));

    const cancel = await fetch(`${server.url}/runs/${runId}/cancel`, { method: 'POST', headers: as(KEY_B) });
    const cancelNone = await fetch(`${server.url}/runs/${unknown}/cancel`, { method: 'POST', headers: as(KEY_B) });
    assert.equal(cancel.status, 404);
    assert.equal(normalise(await cancel.text(), runId), normalise(await cancelNone.text(), unknown));
    assert.equal(server.executor.getRun(runId)?.state, 'running', 'the run goes on');

    // Its owner reads and cancels it.
    const own = await openSse(`${server.url}/runs/${runId}/events`, { headers: as(KEY_A) });
    assert.equal(own.status, 200);
    own.req.destroy();
    assert.equal((await fetch(`${server.url}/runs/${runId}/cancel`, { method: 'POST', headers: as(KEY_A) })).status, 202);
    await server.executor.getRun(runId)?.done;
  });

  it('an ack of another principal’s stream finds nothing and does not barge in', async () => {
    const runId = await startDetached(server, KEY_A, 'ack-a');
    const run = server.executor.getRun(runId)!;
    const start = await new Promise<string>((resolve) => {
      const sub = run.subscribe();
      void (async () => {
        for await (const event of sub) {
          if (event.type === 'stream-start') {
            sub.unsubscribe();
            resolve(event.responseId);
          }
        }
      })();
    });
    const theirs = await fetch(`${server.url}/streams/${start}/ack`, { method: 'POST', headers: as(KEY_B) });
    assert.deepEqual(await theirs.json(), { acknowledged: false, responseId: start });
    assert.equal(run.isCancelled, false);
    const mine = await fetch(`${server.url}/streams/${start}/ack`, { method: 'POST', headers: as(KEY_A) });
    assert.deepEqual(await mine.json(), { acknowledged: true, responseId: start });
    await run.done;
  });

  it('over /ws: resume, cancel and ack of another principal’s run are not_found / not acknowledged', async () => {
    const a = await wsConnect(server.url, as(KEY_A));
    const b = await wsConnect(server.url, as(KEY_B));
    try {
      a.send({ type: 'start', id: 's1', detach: true, call: call('action_ticker', { sender: 'ws-a', slots: { count: 1000, interval_ms: 20 } }) });
      const { runId } = await a.next((m) => m.type === 'started');
      const streamStart = await a.next((m) => m.type === 'stream-start' && m.runId === runId);
      b.send({ type: 'resume', runId });
      assert.equal((await b.next((m) => m.type === 'error')).code, 'not_found');
      b.send({ type: 'cancel', runId });
      await b.next((m) => m.type === 'error' && /cancel/.test(m.message));
      b.send({ type: 'ack', responseId: streamStart.responseId });
      assert.equal((await b.next((m) => m.type === 'acked')).acknowledged, false);
      assert.equal(b.ofRun(runId).length, 0, 'b received none of its events');
      assert.equal(server.executor.getRun(runId)?.isCancelled, false);
      a.send({ type: 'cancel', runId });
      await a.next((m) => m.type === 'cancelled');
      await server.executor.getRun(runId)?.done;
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('run ids are random 122-bit UUIDs (unguessable capabilities when authentication is off)', async () => {
    const runId = await startDetached(server, KEY_A, 'uuid');
    assert.match(runId, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    server.executor.cancel(runId);
    await server.executor.getRun(runId)?.done;
  });
});

describe('HTTP cross-site protection (defect 9)', () => {
  it('refuses WebSocket upgrades from another origin; same-origin and no-Origin clients connect', async () => {
    const server = await startServer();
    try {
      const ws = `${server.url.replace(/^http/, 'ws')}/ws`;
      const evil = await upgradeStatus(ws, { origin: 'https://evil.example' });
      assert.equal(evil.status, 403);
      assert.equal(JSON.parse(evil.body).code, 'permission_denied');
      assert.equal((await upgradeStatus(ws, { origin: 'null' })).status, 403);
      assert.equal((await upgradeStatus(ws, { origin: server.url })).status, 101);
      assert.equal((await upgradeStatus(ws)).status, 101);
    } finally {
      await server.close();
    }
  });

  it('CORS is off by default: no Access-Control headers, preflight not answered', async () => {
    const server = await startServer();
    try {
      const res = await fetch(`${server.url}/actions`, { headers: { origin: 'https://app.example' } });
      assert.equal(res.headers.get('access-control-allow-origin'), null);
      const pre = await fetch(`${server.url}/webhook`, { method: 'OPTIONS', headers: { origin: 'https://app.example', 'access-control-request-method': 'POST' } });
      assert.equal(pre.headers.get('access-control-allow-origin'), null);
    } finally {
      await server.close();
    }
  });

  it('with --cors origins: preflight answered, listed origin reflected with credentials, WebSocket from it allowed', async () => {
    const server = await startServer({ server: { cors: ['https://app.example/'], auth: { apiKeys: [KEY_A] } } });
    try {
      const pre = await fetch(`${server.url}/webhook/stream`, {
        method: 'OPTIONS',
        headers: { origin: 'https://app.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type' },
      });
      assert.equal(pre.status, 204, 'a preflight needs no credentials');
      assert.equal(pre.headers.get('access-control-allow-origin'), 'https://app.example');
      assert.equal(pre.headers.get('access-control-allow-credentials'), 'true');
      assert.match(pre.headers.get('access-control-allow-headers') ?? '', /authorization/);
      const res = await fetch(`${server.url}/actions`, { headers: { origin: 'https://app.example', authorization: `Bearer ${KEY_A}` } });
      assert.equal(res.headers.get('access-control-allow-origin'), 'https://app.example');
      const other = await fetch(`${server.url}/actions`, { headers: { origin: 'https://evil.example', authorization: `Bearer ${KEY_A}` } });
      assert.equal(other.headers.get('access-control-allow-origin'), null);
      // SSE streams hijack the reply: the CORS headers must still be there.
      const stream = await openSse(`${server.url}/webhook/stream`, { body: call('action_hello'), headers: { origin: 'https://app.example', authorization: `Bearer ${KEY_A}` } });
      assert.equal(stream.res.headers['access-control-allow-origin'], 'https://app.example');
      assert.match(String(stream.res.headers['access-control-expose-headers']), /x-sluice-run-id/);
      await stream.ended;
      const ws = `${server.url.replace(/^http/, 'ws')}/ws?token=${KEY_A}`;
      assert.equal((await upgradeStatus(ws, { origin: 'https://app.example' })).status, 101);
      assert.equal((await upgradeStatus(ws, { origin: 'https://evil.example' })).status, 403);
    } finally {
      await server.close();
    }
  });

  it("with --cors '*': any origin, never with credentials", async () => {
    const server = await startServer({ server: { cors: ['*'] } });
    try {
      const res = await fetch(`${server.url}/actions`, { headers: { origin: 'https://any.example' } });
      assert.equal(res.headers.get('access-control-allow-origin'), '*');
      assert.equal(res.headers.get('access-control-allow-credentials'), null);
      assert.equal((await upgradeStatus(`${server.url.replace(/^http/, 'ws')}/ws`, { origin: 'https://any.example' })).status, 101);
    } finally {
      await server.close();
    }
  });

  it('a plain cross-site form post cannot start or cancel anything (415), even with an empty body', async () => {
    const server = await startServer();
    try {
      const runId = randomUUID();
      const form = await new Promise<number>((resolve, reject) => {
        const req = http.request(`${server.url}/runs/${runId}/cancel`, { method: 'POST', headers: { 'content-type': 'text/plain', 'content-length': '0' } });
        req.on('response', (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', reject);
        req.end();
      });
      assert.equal(form, 415);
      assert.throws(() => new Authenticator({ apiKeys: [42 as unknown as string] }), /apiKeys\[0\]/);
    } finally {
      await server.close();
    }
  });
});
