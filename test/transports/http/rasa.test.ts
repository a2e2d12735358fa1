/**
 * Rasa's action-server HTTP protocol (reference/rasa-sdk.md §1b) over a real server.
 */

import assert from 'node:assert/strict';
import http from 'node:http';
import { deflateRawSync, deflateSync, gzipSync } from 'node:zlib';
import { after, afterEach, before, describe, it } from 'node:test';
import { createHttpServer } from '../../../src/transports/http/index.ts';
import { ActionExecutor } from '../../../src/runtime/executor.ts';
import { silentLogger } from '../../../src/runtime/logger.ts';
import { assertSettled, call, postJson, startServer, waitFor, type TestServer } from './fixtures.ts';

const MESSAGE_SHAPE = { buttons: [], elements: [], custom: {}, template: null, response: null, image: null, attachment: null };

describe('Rasa HTTP protocol', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer({ server: { bodyLimit: 64 * 1024 } });
  });
  after(() => server.close());
  afterEach(() => assertSettled(server.executor));

  it('GET /health → 200 {"status":"ok"}', async () => {
    const res = await fetch(`${server.url}/health`);
    assert.equal(res.status, 200);
    assert.equal(await res.text(), '{"status":"ok"}');
  });

  it('GET /actions lists actions in registration order', async () => {
    const res = await fetch(`${server.url}/actions`);
    assert.equal(res.status, 200);
    const body = (await res.json()) as { name: string }[];
    assert.deepEqual(body.slice(0, 3), [{ name: 'action_hello' }, { name: 'action_stream' }, { name: 'action_reject' }]);
    assert.deepEqual(body, server.executor.actions);
  });

  it('POST /webhook → 200 {events, responses}', async () => {
    const { status, json, headers } = await postJson(`${server.url}/webhook`, call('action_hello'));
    assert.equal(status, 200);
    assert.match(headers.get('content-type') ?? '', /^application\/json/);
    assert.deepEqual(json, {
      events: [{ event: 'slot', timestamp: null, name: 'greeted', value: true }],
      responses: [{ text: 'Hello', ...MESSAGE_SHAPE }],
    });
  });

  it('replays a streaming action one chunk per response', async () => {
    const { status, json } = await postJson(`${server.url}/webhook`, call('action_stream'));
    assert.equal(status, 200);
    assert.deepEqual(json, {
      events: [{ event: 'slot', timestamp: null, name: 'streamed', value: true }],
      responses: ['one ', 'two ', 'three'].map((text) => ({ text, ...MESSAGE_SHAPE })),
    });
  });

  it('answers JSON null when next_action is missing or empty', async () => {
    for (const body of [call(null), call(''), { tracker: { sender_id: 'x' } }, {}]) {
      const res = await fetch(`${server.url}/webhook`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      assert.equal(res.status, 200);
      assert.equal(await res.text(), 'null');
    }
  });

  it('inflates a Content-Encoding: deflate body (zlib, as Rasa sends) and gzip', async () => {
    const body = JSON.stringify(call('action_hello'));
    for (const [encoding, bytes] of [
      ['deflate', deflateSync(body)],
      ['deflate', deflateRawSync(body)],
      ['gzip', gzipSync(body)],
    ] as const) {
      const { status, json } = await postJson(`${server.url}/webhook`, new Uint8Array(bytes), { 'content-encoding': encoding });
      assert.equal(status, 200, encoding);
      assert.equal((json as { responses: { text: string }[] }).responses[0]?.text, 'Hello');
    }
  });

  it('400 {"error":"Invalid body request"} for a body that is not JSON, or no body', async () => {
    for (const body of ['{not json', '', 'null']) {
      const { status, json } = await postJson(`${server.url}/webhook`, body);
      assert.equal(status, 400, JSON.stringify(body));
      assert.deepEqual(json, { error: 'Invalid body request' });
    }
    const bad = await postJson(`${server.url}/webhook`, new Uint8Array(Buffer.from('not deflate')), { 'content-encoding': 'deflate' });
    assert.equal(bad.status, 400);
    assert.match((bad.json as { error: string }).error, /^Invalid body request/);
  });

  it('reads JSON bodies only: another content type is 415 (a cross-site form cannot start actions)', async () => {
    const body = JSON.stringify(call('action_hello'));
    for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x']) {
      const res = await fetch(`${server.url}/webhook`, { method: 'POST', headers: { 'content-type': type }, body });
      assert.equal(res.status, 415, type);
      assert.deepEqual(Object.keys((await res.json()) as object).sort(), ['code', 'error']);
    }
    const untyped = await fetch(`${server.url}/webhook`, { method: 'POST', body: new Blob([body]) });
    assert.equal(untyped.status, 415);
    for (const type of ['application/json', 'application/json; charset=utf-8', 'application/vnd.rasa+json']) {
      const res = await fetch(`${server.url}/webhook`, { method: 'POST', headers: { 'content-type': type }, body });
      assert.equal(res.status, 200, type);
    }
  });

  it('400 naming the field for a malformed call', async () => {
    const noTracker = await postJson(`${server.url}/webhook`, { next_action: 'action_hello' });
    assert.equal(noTracker.status, 400);
    assert.deepEqual(noTracker.json, { error: 'Invalid action call: tracker: is required', action_name: 'action_hello' });

    const wrongType = await postJson(`${server.url}/webhook`, call('action_hello', { tracker: { sender_id: 42 } }));
    assert.equal(wrongType.status, 400);
    assert.match((wrongType.json as { error: string }).error, /tracker\.sender_id/);

    const notObject = await postJson(`${server.url}/webhook`, [1, 2]);
    assert.equal(notObject.status, 400);
    assert.match((notObject.json as { error: string }).error, /must be a JSON object/);

    const badName = await postJson(`${server.url}/webhook`, { next_action: 7, tracker: { sender_id: 'x' } });
    assert.equal(badName.status, 400);
    assert.match((badName.json as { error: string }).error, /next_action/);
  });

  it('400 {error, action_name} when the action rejects execution', async () => {
    const { status, json } = await postJson(`${server.url}/webhook`, call('action_reject'));
    assert.equal(status, 400);
    assert.deepEqual(json, { error: "Custom action 'action_reject' rejected execution.", action_name: 'action_reject' });
  });

  it('404 {error, action_name} for an unknown action', async () => {
    const { status, json } = await postJson(`${server.url}/webhook`, call('action_nope'));
    assert.equal(status, 404);
    assert.deepEqual(json, { error: "No registered action found for name 'action_nope'.", action_name: 'action_nope' });
  });

  it('449 {error, action_name} when the domain is missing', async () => {
    const { status, json } = await postJson(`${server.url}/webhook`, call('action_hello', { domain: {}, domain_digest: 'unknown-digest' }));
    assert.equal(status, 449);
    const body = json as { error: string; action_name: string };
    assert.equal(body.action_name, 'action_hello');
    assert.match(body.error, /^Missing domain context, assistant will retry the request and include the domain/);
  });

  it('500 {error, request_body} when the action throws', async () => {
    const body = call('action_boom');
    const { status, json } = await postJson(`${server.url}/webhook`, body);
    assert.equal(status, 500);
    assert.deepEqual(json, { error: 'test exception', request_body: body });

    const streamed = await postJson(`${server.url}/webhook`, call('action_boom_stream'));
    assert.equal(streamed.status, 500);
    assert.equal((streamed.json as { error: string }).error, 'action exploded');
  });

  it('413 with a clear error for an oversized body (raw or once inflated)', async () => {
    const huge = JSON.stringify(call('action_hello', { padding: 'x'.repeat(80 * 1024) }));
    const raw = await postJson(`${server.url}/webhook`, huge);
    assert.equal(raw.status, 413);
    assert.match((raw.json as { error: string }).error, /too large.*65536 bytes/);

    const bomb = await postJson(`${server.url}/webhook`, new Uint8Array(deflateSync(huge)), { 'content-encoding': 'deflate' });
    assert.equal(bomb.status, 413);
    assert.match((bomb.json as { error: string }).error, /too large once inflated/);
    // Still serving.
    assert.equal((await fetch(`${server.url}/health`)).status, 200);
  });

  it('415 for an unsupported Content-Encoding', async () => {
    const { status, json } = await postJson(`${server.url}/webhook`, '{}', { 'content-encoding': 'br' });
    assert.equal(status, 415);
    assert.match((json as { error: string }).error, /Content-Encoding 'br'/);
  });

  it('404 JSON for unknown routes and methods', async () => {
    const res = await fetch(`${server.url}/nope?x=1`);
    assert.equal(res.status, 404);
    assert.deepEqual(await res.json(), { error: 'Route GET /nope not found', code: 'not_found' });
    const put = await fetch(`${server.url}/webhook`, { method: 'PUT', body: '{}' });
    assert.equal(put.status, 404);
    assert.match(((await put.json()) as { error: string }).error, /PUT \/webhook/);
  });

  it('cancels the action when the client hangs up before the answer', async () => {
    const body = JSON.stringify(call('action_ticker', { sender: 'unary-hangup', slots: { count: 1000, interval_ms: 20 } }));
    const req = http.request(`${server.url}/webhook`, { method: 'POST', agent: false, headers: { 'content-type': 'application/json' } });
    req.on('error', () => {});
    req.end(body);
    await waitFor(() => server.executor.activeRuns === 1, 2000, 'the run to start');
    req.destroy();
    await waitFor(() => server.probe.aborted.has('unary-hangup'), 2000, 'the action to be aborted');
  });
});

describe('createHttpServer options', () => {
  it('validates its options', () => {
    const executor = new ActionExecutor({ logger: silentLogger });
    assert.throws(() => createHttpServer({ executor, sse: { pingIntervalMs: 0 } }), /sse\.pingIntervalMs/);
    assert.throws(() => createHttpServer({ executor, sse: { maxDurationMs: -1 } }), /sse\.maxDurationMs/);
    assert.throws(() => createHttpServer({ executor, bodyLimit: 1.5 }), /bodyLimit/);
    assert.throws(() => createHttpServer({ executor, ws: { heartbeatMs: Number.NaN } }), /ws\.heartbeatMs/);
  });
});
