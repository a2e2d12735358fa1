/**
 * Fuzz: every message type of `/ws` (start, cancel, ack, resume) and `/voice/ws` (start, say,
 * interrupt, history), plus garbage frames. A client error is answered `{ type: 'error', code,
 * message }` with a client code (never `internal`), the socket stays open, and the server is
 * healthy after.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { WebSocket } from 'ws';
import type { RunningServer } from '../../src/cli/serve.ts';
import { ERROR_CODES } from '../../src/protocol/errors.ts';
import { anyJson, assertHealthy, deepJson, fuzzServer, hostileCall, hostileString, runs } from './harness.ts';

const END = JSON.stringify({ type: '__fuzz_end__' });

/** Sends the frames on a fresh socket, then a marker; resolves with every JSON reply up to the marker's. */
async function exchange(url: string, frames: (string | Buffer)[]): Promise<Record<string, unknown>[]> {
  const socket = new WebSocket(url, { perMessageDeflate: false });
  const replies: Record<string, unknown>[] = [];
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('error', reject);
    });
    const done = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no reply to the end marker; replies: ${JSON.stringify(replies).slice(0, 500)}`)), 10_000);
      socket.on('message', (data, isBinary) => {
        if (isBinary) return; // voice audio
        const reply = JSON.parse(String(data)) as Record<string, unknown>;
        replies.push(reply);
        if (reply.type === 'error' && typeof reply.message === 'string' && reply.message.includes('__fuzz_end__')) {
          clearTimeout(timer);
          resolve();
        }
      });
      socket.once('close', (code, reason) => {
        clearTimeout(timer);
        reject(new Error(`the server closed the socket: ${code} ${String(reason)}`));
      });
    });
    for (const frame of frames) socket.send(frame, { binary: Buffer.isBuffer(frame) });
    socket.send(END);
    await done;
    return replies;
  } finally {
    socket.terminate();
  }
}

function assertClientErrors(replies: Record<string, unknown>[], what: string): void {
  for (const reply of replies) {
    if (reply.type !== 'error' || typeof reply.seq === 'number') continue;
    assert.ok((ERROR_CODES as readonly unknown[]).includes(reply.code), `${what}: unknown code ${String(reply.code)}`);
    assert.notEqual(reply.code, 'internal', `${what}: ${JSON.stringify(reply).slice(0, 300)}`);
    assert.ok(typeof reply.message === 'string' && reply.message.length > 0 && reply.message.length < 2_000, `${what}: message ${JSON.stringify(reply.message).slice(0, 100)}`);
  }
}

const garbage = fc.oneof(
  hostileString.map((s) => s.slice(0, 100_000)),
  anyJson.map((v) => JSON.stringify(v) ?? 'null'),
  fc.constantFrom(deepJson(10_000), `{"type":${deepJson(10_000)}}`, `{"type":"start","call":${deepJson(5_000)}}`, '{', '\u0000'),
  fc.uint8Array({ maxLength: 64 }).map((bytes) => Buffer.from(bytes)),
);

const ids = fc.oneof(hostileString.map((s) => s.slice(0, 1_000)), anyJson, fc.uuid());

const wsMessage = fc.oneof(
  fc.record({ type: fc.constant('start'), id: ids, call: fc.oneof(hostileCall, anyJson), detach: anyJson, view: fc.oneof(fc.constantFrom('events', 'sentences'), anyJson), segmenter: anyJson }, { requiredKeys: ['type'] }),
  fc.record({ type: fc.constant('cancel'), runId: ids }, { requiredKeys: ['type'] }),
  fc.record({ type: fc.constant('ack'), responseId: ids }, { requiredKeys: ['type'] }),
  fc.record({ type: fc.constant('resume'), runId: ids, after: anyJson, view: anyJson, segmenter: anyJson }, { requiredKeys: ['type'] }),
  fc.record({ type: fc.oneof(hostileString, anyJson) }, { requiredKeys: [] }),
).map((m) => JSON.stringify(m));

const voiceMessage = fc.oneof(
  fc.record({ type: fc.constant('start'), id: ids, call: fc.oneof(hostileCall, anyJson), allowInterruptions: anyJson }, { requiredKeys: ['type'] }),
  fc.record({ type: fc.constant('say'), id: ids, text: fc.oneof(hostileString.map((s) => s.slice(0, 2_000)), anyJson), allowInterruptions: anyJson }, { requiredKeys: ['type'] }),
  fc.record({ type: fc.constant('interrupt'), played: anyJson }, { requiredKeys: ['type'] }),
  fc.record({ type: fc.constant('history'), limit: anyJson }, { requiredKeys: ['type'] }),
  fc.record({ type: fc.oneof(hostileString, anyJson) }, { requiredKeys: [] }),
).map((m) => JSON.stringify(m));

describe('fuzz: WebSocket messages', () => {
  let server: RunningServer;
  before(async () => {
    server = await fuzzServer();
  });
  after(() => server.close());

  it('/ws: every message type, hostile fields and garbage frames', async () => {
    const url = `${server.httpUrl.replace('http', 'ws')}/ws`;
    await fc.assert(
      fc.asyncProperty(fc.array(fc.oneof({ weight: 4, arbitrary: wsMessage }, { weight: 1, arbitrary: garbage }), { minLength: 1, maxLength: 8 }), async (frames) => {
        assertClientErrors(await exchange(url, frames), '/ws');
      }),
      { numRuns: runs(250) },
    );
  });

  it('/voice/ws: every message type, hostile fields and garbage frames', async () => {
    const url = `${server.httpUrl.replace('http', 'ws')}/voice/ws`;
    await fc.assert(
      fc.asyncProperty(fc.array(fc.oneof({ weight: 4, arbitrary: voiceMessage }, { weight: 1, arbitrary: garbage }), { minLength: 1, maxLength: 6 }), async (frames) => {
        assertClientErrors(await exchange(url, frames), '/voice/ws');
      }),
      { numRuns: runs(120) },
    );
  });

  it('afterwards: healthy, and the voice history reads back', async () => {
    await assertHealthy(server.httpUrl);
    const res = await fetch(`${server.httpUrl}/voice/history?limit=1000`);
    assert.ok(res.status < 500);
    const text = await res.text();
    if (res.status === 200) assert.doesNotThrow(() => JSON.parse(text));
  });
});
