/**
 * The ACE plugin consumer: framing (NDJSON, back-to-back JSON, SSE, text), UTF-8 decoded as a
 * stream, and the action against a local `node:http` plugin server (incl. a character split
 * across network chunks, a malformed frame, the final frame's metadata, and barge-in).
 */

import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { SluiceError } from '../../../src/protocol/errors.ts';
import { slotSet } from '../../../src/runtime/rasa-events.ts';
import { acePluginAction, readAceStream, type AceFrame } from '../../../src/channels/voice/ace-plugin.ts';
import { sentencesOf } from '../../../src/channels/voice/sentences.ts';
import { call, collect, executorWith, texts } from './helpers.ts';

const enc = new TextEncoder();

function frame(text: string, final = false, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ UserId: 'u', Response: { Text: text, CleanedText: text, IsFinal: final, NeedUserResponse: true, ...extra } });
}

async function* pieces(parts: (string | Uint8Array)[]): AsyncGenerator<Uint8Array> {
  for (const p of parts) yield typeof p === 'string' ? enc.encode(p) : p;
}

async function frames(parts: (string | Uint8Array)[], options: Parameters<typeof readAceStream>[1] = {}): Promise<AceFrame[]> {
  return collect(readAceStream(pieces(parts), options));
}

/** Splits bytes at every given offset. */
function cut(bytes: Uint8Array, at: number[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  let from = 0;
  for (const p of at) {
    out.push(bytes.subarray(from, p));
    from = p;
  }
  out.push(bytes.subarray(from));
  return out;
}

describe('readAceStream', () => {
  it('back-to-back Chat Engine JSON under text/event-stream (ACE samples), frames cut anywhere', async () => {
    const body = frame('Hello { not a brace') + frame(' world "quoted" \\ end.') + frame('', true, { Json: { k: 1 } });
    const bytes = enc.encode(body);
    for (const at of [[5], [1, 2, 3, 40, 41, 90], [bytes.length - 1]]) {
      const got = await frames(cut(bytes, at), { contentType: 'text/event-stream' });
      assert.deepEqual(got.map((f) => f.text), ['Hello { not a brace', ' world "quoted" \\ end.', '']);
      assert.deepEqual(got.map((f) => f.final), [false, false, true]);
      assert.deepEqual(got[2]!.response?.Json, { k: 1 });
    }
  });

  it('NDJSON, SSE data events and plain text', async () => {
    const nd = await frames([`${frame('a')}\n${frame('b')}`, `\n\n${frame('', true)}\n`], { contentType: 'application/x-ndjson' });
    assert.deepEqual(nd.map((f) => f.text), ['a', 'b', '']);
    const sse = await frames([`data: ${frame('x')}\n\n: comment\n`, 'data: plain text\r\n\r\ndata: [DONE]\n\ndata: ignored\n\n'], { contentType: 'text/event-stream' });
    assert.deepEqual(sse.map((f) => f.text), ['x', 'plain text']);
    const text = await frames(['Just ', 'text.'], { contentType: 'text/plain' });
    assert.deepEqual(text.map((f) => f.text), ['Just ', 'text.']);
  });

  it('decodes UTF-8 as a stream: a character split between chunks arrives whole', async () => {
    const body = enc.encode(`${frame('Caf\u00e9 \u20ac5 \u{1F600} \u4f60\u597d')}${frame('', true)}`);
    const at = body.indexOf(0xc3) + 1; // inside "é"
    const euro = body.indexOf(0xe2) + 2; // inside "€"
    const emoji = body.indexOf(0xf0) + 1; // inside the emoji
    const got = await frames(cut(body, [at, euro, emoji, emoji + 1, emoji + 2]), { framing: 'json-stream' });
    assert.equal(got[0]!.text, 'Caf\u00e9 \u20ac5 \u{1F600} \u4f60\u597d');
    assert.ok(!got[0]!.text.includes('\ufffd'));
    const plain = await frames(cut(enc.encode('na\u00efve'), [3]), { framing: 'text' });
    assert.equal(plain.map((f) => f.text).join(''), 'na\u00efve');
  });

  it('stops at the IsFinal frame; a malformed frame is a typed error', async () => {
    const got = await frames([frame('a') + frame('', true) + 'garbage after the end'], { framing: 'json-stream' });
    assert.equal(got.length, 2);
    await assert.rejects(frames([frame('a') + 'Error: the retriever failed'], { framing: 'json-stream' }), (e: unknown) => SluiceError.isInstance(e) && e.details.reason === 'plugin_bad_frame');
    await assert.rejects(frames(['{"Response": {"Text": "cut'], { framing: 'json-stream' }), /ended inside a JSON frame/);
    await assert.rejects(frames(['not json\n'], { framing: 'ndjson' }), /not valid JSON/);
    await assert.rejects(frames(['{"Response":{"Text":5}}'], { framing: 'json-stream' }), /Response.Text/);
  });
});

/** A plugin server with a few routes. */
class PluginServer {
  requests: { url: string; body: unknown }[] = [];
  aborted = 0;
  url = '';
  server = http.createServer((req, res) => {
    let raw = '';
    req.on('data', (d) => (raw += d));
    req.on('end', async () => {
      this.requests.push({ url: req.url ?? '', body: raw === '' ? null : JSON.parse(raw) });
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      res.socket?.setNoDelay(true);
      const send = async (parts: (string | Uint8Array)[], type: string, delay = 15): Promise<void> => {
        res.writeHead(200, { 'content-type': type });
        res.on('close', () => {
          if (!res.writableFinished) this.aborted++;
        });
        for (const p of parts) {
          if (res.destroyed) return;
          res.write(p);
          await sleep(delay);
        }
        res.end();
      };
      if (path === '/rag/chat') {
        // ACE's sample framing: objects back to back, "é" split between two writes.
        const body = enc.encode(frame('Le caf\u00e9 ouvre \u00e0 9 h. ') + frame('Il ferme \u00e0 18 h.') + frame('', true, { Json: { source: 'handbook' } }));
        const split = body.indexOf(0xc3) + 1;
        return send(cut(body, [split, split + 20]), 'text/event-stream');
      }
      if (path === '/ndjson') return send([`${frame('One. ')}\n`, `${frame('Two.')}\n`, `${frame('', true)}\n`], 'application/x-ndjson');
      if (path === '/static') {
        res.writeHead(200, { 'content-type': 'application/json' });
        return res.end(frame('A whole answer. In one piece.', true));
      }
      if (path === '/broken') return send([frame('Partial answer. '), 'Internal error: boom'], 'text/event-stream');
      if (path === '/slow') return send(Array.from({ length: 100 }, (_, i) => frame(`word${i} `)), 'text/event-stream', 20);
      if (path === '/fail') return res.writeHead(500).end('oops');
      res.writeHead(404).end();
    });
  });
  async start(): Promise<void> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }
  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(() => r()));
  }
}

describe('acePluginAction (local plugin server)', () => {
  const plugin = new PluginServer();
  before(() => plugin.start());
  after(() => plugin.close());

  it('pipes the plugin stream into one streamed message; sends the ACE request; returns onFinal events', async () => {
    const action = acePluginAction({
      name: 'action_rag',
      url: `${plugin.url}/rag/chat`,
      onFinal: (f) => [slotSet('source', (f?.response?.Json as { source?: string } | undefined)?.source ?? null)],
    });
    const executor = executorWith([action]);
    const run = executor.start(call('action_rag', { sender: 'alice', text: 'Quand ouvre le café ?' }));
    const [events, sentences] = await Promise.all([collect(run.subscribe()), collect(sentencesOf(run))]);
    assert.equal(texts(events), 'Le caf\u00e9 ouvre \u00e0 9 h. Il ferme \u00e0 18 h.');
    assert.ok(!texts(events).includes('\ufffd'), 'the split character was decoded whole');
    assert.deepEqual(events.map((e) => e.type), ['run-start', 'stream-start', 'chunk', 'chunk', 'chunk', 'stream-end', 'result', 'run-end']);
    const custom = events.find((e) => e.type === 'chunk' && e.custom !== undefined) as { custom: unknown };
    assert.deepEqual(custom.custom, { source: 'handbook' });
    assert.deepEqual(sentences.map((s) => s.text), ['Le caf\u00e9 ouvre \u00e0 9 h. ', 'Il ferme \u00e0 18 h.']);
    const result = events.find((e) => e.type === 'result') as { events: unknown[] };
    assert.deepEqual(result.events, [slotSet('source', 'handbook')]);
    const req = plugin.requests.at(-1)!;
    assert.deepEqual(req.body, { Query: 'Quand ouvre le café ?', UserId: 'alice', Metadata: { SessionId: 'alice', StreamId: 'alice' } });
    const q = new URL(req.url, 'http://x').searchParams;
    assert.match(q.get('request_id') ?? '', /^[0-9a-f-]{36}$/);
    assert.equal(q.get('user_id'), 'alice');
    await executor.close();
  });

  it('NDJSON plugins and a non-streaming plugin (one JSON answer becomes a single chunk)', async () => {
    const executor = executorWith([
      acePluginAction({ name: 'action_nd', url: `${plugin.url}/ndjson` }),
      acePluginAction({ name: 'action_static', url: `${plugin.url}/static`, method: 'GET' }),
    ]);
    const nd = await collect(executor.start(call('action_nd')).subscribe());
    assert.equal(texts(nd), 'One. Two.');
    const st = await collect(executor.start(call('action_static')).subscribe());
    assert.equal(st.filter((e) => e.type === 'chunk').length, 1);
    assert.equal(texts(st), 'A whole answer. In one piece.');
    assert.equal(plugin.requests.at(-1)!.body, null, 'GET has no body');
    await executor.close();
  });

  it('a malformed frame ends the run with a typed error, the partial text delivered and its stream ended with reason error', async () => {
    const executor = executorWith([acePluginAction({ name: 'action_broken', url: `${plugin.url}/broken` })]);
    const events = await collect(executor.start(call('action_broken')).subscribe());
    assert.equal(texts(events), 'Partial answer. ');
    const end = events.find((e) => e.type === 'stream-end') as { reason: string };
    assert.equal(end.reason, 'error');
    const error = events.find((e) => e.type === 'error') as { code: string; reason: string };
    assert.deepEqual({ code: error.code, reason: error.reason }, { code: 'unavailable', reason: 'plugin_bad_frame' });
    const failing = executorWith([acePluginAction({ name: 'action_fail', url: `${plugin.url}/fail` })]);
    const failed = await collect(failing.start(call('action_fail')).subscribe());
    assert.equal((failed.find((e) => e.type === 'error') as { reason: string }).reason, 'plugin_http_error');
    await executor.close();
    await failing.close();
  });

  it('barge-in closes the connection to the plugin', async () => {
    const executor = executorWith([acePluginAction({ name: 'action_slow', url: `${plugin.url}/slow` })]);
    const run = executor.start(call('action_slow'));
    const before = plugin.aborted;
    for await (const event of run.subscribe()) {
      if (event.type === 'chunk') {
        assert.equal(executor.ack(event.responseId), true);
        break;
      }
    }
    const end = await run.done;
    assert.equal(end.reason, 'cancelled');
    await sleep(50);
    assert.equal(plugin.aborted, before + 1, 'the plugin saw its client go away');
    await executor.close();
  });

  it('rejects bad options at construction, naming them', () => {
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ url: 'http://x' }, /'name'/],
      [{ name: 'a', url: 'not a url' }, /'url'/],
      [{ name: 'a', url: 'http://x', framing: 'xml' }, /'framing'/],
      [{ name: 'a', url: 'http://x', method: 'PUT' }, /'method'/],
      [{ name: 'a', url: 'http://x', timeoutMs: -1 }, /'timeoutMs'/],
      [{ name: 'a', url: 'http://x', request: 'body' }, /'request'/],
      [{ name: 'a', url: 'http://x', streaming: false }, /unknown option 'streaming'/],
    ];
    for (const [options, pattern] of bad) {
      assert.throws(() => acePluginAction(options as never), (e: unknown) => SluiceError.isInstance(e) && e.code === 'invalid_argument' && pattern.test(e.message));
    }
  });
});
