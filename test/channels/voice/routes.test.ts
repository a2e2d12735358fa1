/**
 * `GET /runs/:runId/sentences` (SSE): sentences of a live run, resume by index, 404 and 400.
 */

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import Fastify, { type FastifyInstance } from 'fastify';
import { sentenceRoutes } from '../../../src/channels/voice/routes.ts';
import type { ActionExecutor } from '../../../src/runtime/executor.ts';
import { call, executorWith, pacedAction } from './helpers.ts';
import { AFTER_TOOL, BEFORE_TOOL, TOOL_MS, toolAction, toolTimes } from './sentence-actions.ts';

const TEXT = 'Good morning. The shop opens at nine. See you soon!';

function parseSse(body: string): { id?: string; event?: string; data: string }[] {
  return body
    .split('\n\n')
    .filter((block) => block.trim() !== '' && !block.startsWith(':'))
    .map((block) => {
      const frame: { id?: string; event?: string; data: string } = { data: '' };
      for (const line of block.split('\n')) {
        const [field, ...rest] = line.split(': ');
        const value = rest.join(': ');
        if (field === 'id') frame.id = value;
        else if (field === 'event') frame.event = value;
        else if (field === 'data') frame.data = value;
      }
      return frame;
    });
}

describe('GET /runs/:runId/sentences', () => {
  let app: FastifyInstance;
  let executor: ActionExecutor;
  let url = '';
  before(async () => {
    executor = executorWith([pacedAction('action_text', TEXT, 10), toolAction()]);
    app = Fastify({ logger: false });
    await app.register(sentenceRoutes, { executor });
    url = await app.listen({ port: 0, host: '127.0.0.1' });
  });
  after(async () => {
    await executor.close();
    await app.close();
  });

  it('streams the sentences of a live run as SSE, then an end frame', async () => {
    const run = executor.start(call('action_text'));
    const res = await fetch(`${url}/runs/${run.id}/sentences`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /text\/event-stream/);
    assert.equal(res.headers.get('x-sluice-run-id'), run.id);
    const frames = parseSse(await res.text());
    const sentences = frames.filter((f) => f.event === 'sentence');
    assert.deepEqual(sentences.map((f) => f.id), ['0', '1', '2']);
    assert.deepEqual(sentences.map((f) => JSON.parse(f.data).text), ['Good morning. ', 'The shop opens at nine. ', 'See you soon!']);
    const end = frames.at(-1)!;
    assert.equal(end.event, 'end');
    assert.deepEqual(JSON.parse(end.data), { runId: run.id, reason: 'completed' });
  });

  it('a tool call releases the sentence before it at once, long before the tool ends', async () => {
    const run = executor.start(call('action_tool', { sender: 'sse-tool' }));
    const res = await fetch(`${url}/runs/${run.id}/sentences`);
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let body = '';
    let firstAt = -1;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      body += value;
      if (firstAt < 0 && body.includes('event: sentence')) firstAt = performance.now();
    }
    const texts = parseSse(body).filter((f) => f.event === 'sentence').map((f) => JSON.parse(f.data).text);
    assert.deepEqual(texts, [BEFORE_TOOL, AFTER_TOOL]);
    const times = toolTimes.get('sse-tool')!;
    assert.ok(firstAt > 0 && firstAt < times.endAt - TOOL_MS / 2, `the sentence came ${Math.round(firstAt - times.startAt)} ms after tool-start`);
  });

  it('resumes after Last-Event-ID (or ?after=)', async () => {
    const run = executor.start(call('action_text'));
    await run.done;
    const byHeader = parseSse(await (await fetch(`${url}/runs/${run.id}/sentences`, { headers: { 'last-event-id': '0' } })).text());
    assert.deepEqual(byHeader.filter((f) => f.event === 'sentence').map((f) => f.id), ['1', '2']);
    const byQuery = parseSse(await (await fetch(`${url}/runs/${run.id}/sentences?after=1`)).text());
    assert.deepEqual(byQuery.filter((f) => f.event === 'sentence').map((f) => f.id), ['2']);
  });

  it('answers 404 for an unknown run and 400 for a bad resume point', async () => {
    assert.equal((await fetch(`${url}/runs/nope/sentences`)).status, 404);
    const run = executor.start(call('action_text'));
    assert.equal((await fetch(`${url}/runs/${run.id}/sentences?after=x`)).status, 400);
    await run.done;
  });

  it('rejects bad plugin options at registration', async () => {
    const bad = Fastify({ logger: false });
    await assert.rejects(async () => {
      await bad.register(sentenceRoutes, { executor, pingIntervalMs: 0 });
      await bad.ready();
    }, /pingIntervalMs/);
    await bad.close();
  });
});
