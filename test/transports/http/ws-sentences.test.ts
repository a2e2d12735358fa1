/**
 * The WebSocket endpoint's sentence view (`view: 'sentences'`): sentences of streamed and whole
 * messages, then `result`/`error` and `run-end`; segmenter options; resume by sentence index;
 * barge-in by ack; disconnect; bad options.
 */

import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, afterEach, before, describe, it } from 'node:test';
import { AFTER_TOOL, BEFORE_TOOL, STORY, TOOL_MS, sentenceActions, toolTimes } from '../../channels/voice/sentence-actions.ts';
import { WsClient, assertSettled, call, startServer, waitFor, type TestServer } from './fixtures.ts';

async function start(client: WsClient, id: string, body: unknown, extra: Record<string, unknown> = {}): Promise<string> {
  client.send({ type: 'start', id, call: body, view: 'sentences', ...extra });
  const started = await client.next((m) => m.type === 'started' && m.id === id);
  return started.runId as string;
}

/** Everything the socket received for a run in the sentence view, once its run-end arrived. */
async function untilEnd(client: WsClient, runId: string): Promise<any[]> {
  await client.next((m) => m.type === 'run-end' && m.runId === runId);
  return client.messages.filter((m) => m.runId === runId && m.type !== 'started');
}

describe('WebSocket /ws, sentence view', () => {
  let server: TestServer;
  const aborted = new Set<string>();
  before(async () => {
    server = await startServer({ executor: { actions: sentenceActions(aborted) } });
  });
  after(() => server.close());
  afterEach(() => assertSettled(server.executor));

  it('streams sentences of streamed and whole messages, then result and run-end, nothing else', async () => {
    const client = await WsClient.connect(server.url);
    const runId = await start(client, 's1', call('action_story'));
    const got = await untilEnd(client, runId);
    assert.deepEqual(
      got.map((m) => m.type),
      ['sentence', 'sentence', 'sentence', 'sentence', 'result', 'run-end'],
    );
    const sentences = got.slice(0, 4);
    assert.deepEqual(
      sentences.map((m) => m.text),
      ['Good morning. ', 'The shop opens at nine. ', 'See you soon!', 'Anything else?'],
    );
    assert.deepEqual(sentences.map((m) => m.index), [0, 1, 2, 3]);
    const [first] = sentences;
    assert.deepEqual(Object.keys(first).sort(), ['index', 'responseId', 'runId', 'text', 'type']);
    assert.match(first.responseId, /^[0-9a-f]{32}$/);
    assert.ok(sentences.slice(0, 3).every((m) => m.responseId === first.responseId), 'one stream');
    assert.match(sentences[3].responseId, /^msg-\d+$/);

    const [result, end] = got.slice(4);
    assert.deepEqual(result.events, [{ event: 'slot', timestamp: null, name: 'told', value: true }]);
    assert.equal(result.responses[0].text, 'Anything else?');
    assert.equal(typeof result.seq, 'number');
    assert.equal(end.reason, 'completed');
    assert.equal(end.seq, result.seq + 1);
    await client.close();
  });

  it('a tool call releases the sentence before it at once, long before the tool ends', async () => {
    const client = await WsClient.connect(server.url);
    const runId = await start(client, 'tool', call('action_tool', { sender: 'ws-tool' }));
    const first = await client.next((m) => m.type === 'sentence' && m.runId === runId, TOOL_MS * 3);
    const arrivedAt = performance.now();
    assert.equal(first.text, BEFORE_TOOL);
    const got = await untilEnd(client, runId);
    const times = toolTimes.get('ws-tool')!;
    assert.ok(arrivedAt < times.endAt - TOOL_MS / 2, `the sentence came ${Math.round(arrivedAt - times.startAt)} ms after tool-start`);
    assert.deepEqual(got.filter((m) => m.type === 'sentence').map((m) => m.text), [BEFORE_TOOL, AFTER_TOOL]);
    await client.close();
  });

  it('speaks a static (non-streamed) message as sentences', async () => {
    const client = await WsClient.connect(server.url);
    const runId = await start(client, 'st', call('action_static'));
    const got = await untilEnd(client, runId);
    const sentences = got.filter((m) => m.type === 'sentence');
    assert.deepEqual(sentences.map((m) => m.text), ['Hello there. ', 'How are you today?']);
    assert.equal(sentences[0].responseId, sentences[1].responseId);
    assert.match(sentences[0].responseId, /^msg-\d+$/);
    const result = got.find((m) => m.type === 'result');
    assert.deepEqual(result.events, [{ event: 'slot', timestamp: null, name: 'greeted', value: true }]);
    assert.equal(result.responses[0].text, 'Hello there. How are you today?');
    await client.close();
  });

  it('applies segmenter options', async () => {
    const client = await WsClient.connect(server.url);
    const runId = await start(client, 'opt', call('action_story'), { segmenter: { minFirstLength: 20, mode: 'default', locale: 'en' } });
    const got = await untilEnd(client, runId);
    assert.deepEqual(
      got.filter((m) => m.type === 'sentence').map((m) => m.text),
      ['Good morning. The shop opens at nine. ', 'See you soon!', 'Anything else?'],
    );
    await client.close();
  });

  it('an error ends the sentences: error then run-end pass through', async () => {
    const client = await WsClient.connect(server.url);
    const runId = await start(client, 'f', call('action_fail'));
    const got = await untilEnd(client, runId);
    assert.deepEqual(got.map((m) => m.type), ['sentence', 'sentence', 'error', 'run-end']);
    assert.deepEqual(got.slice(0, 2).map((m) => m.text), ['Partial sentence. ', 'Broken']);
    assert.equal(got[2].code, 'internal');
    assert.equal(got[2].message, 'action exploded');
    assert.equal(got[3].reason, 'error');
    await client.close();
  });

  it('resume: after = index of the last sentence received, on another socket', async () => {
    const first = await WsClient.connect(server.url);
    const runId = await start(first, 'r', call('action_story'), { detach: true });
    await first.next((m) => m.type === 'sentence' && m.index === 1);
    first.socket.terminate();
    await first.closed;
    const run = server.executor.getRun(runId)!;
    await run.done;
    assert.equal(run.endReason, 'completed', 'a detached run outlives its socket');

    const second = await WsClient.connect(server.url);
    second.send({ type: 'resume', runId, view: 'sentences', after: 1 });
    const got = await untilEnd(second, runId);
    assert.deepEqual(got.map((m) => m.type), ['sentence', 'sentence', 'result', 'run-end']);
    assert.deepEqual(got.slice(0, 2).map((m) => [m.index, m.text]), [[2, 'See you soon!'], [3, 'Anything else?']]);

    await second.close();
  });

  it('one reader per run and view: a repeated resume replaces it; events and sentences side by side', async () => {
    const owner = await WsClient.connect(server.url);
    const runId = await start(owner, 'live', call('action_barge', { sender: 'ws-replace' }));
    const client = await WsClient.connect(server.url);
    client.send({ type: 'resume', runId, view: 'sentences' });
    await client.next((m) => m.type === 'sentence' && m.index === 0);
    client.send({ type: 'resume', runId, view: 'sentences', after: 0 });
    client.send({ type: 'resume', runId, after: 0 });
    await client.next((m) => m.type === 'chunk' && m.runId === runId);
    owner.send({ type: 'cancel', runId });
    await waitFor(() => client.messages.filter((m) => m.type === 'run-end').length === 2, 3000, 'both views to end');
    await sleep(20);
    assert.deepEqual(
      client.messages.filter((m) => m.seq === undefined).map((m) => m.type),
      ['sentence'],
      'sentence 0 once; the replaced reader sent nothing more',
    );
    assert.equal(client.messages.filter((m) => m.type === 'result').length, 2, 'one result per view');
    const events = client.ofRun(runId).map((m) => m.type);
    assert.deepEqual(
      events.filter((type) => type !== 'result' && type !== 'run-end'),
      ['run-start', 'stream-start', 'chunk', 'chunk', 'stream-end'],
      'the events view has the token stream',
    );
    await client.close();
    await owner.close();
  });

  it('barge-in: after an ack no more sentences arrive, the run ends with its events', async () => {
    const client = await WsClient.connect(server.url);
    const runId = await start(client, 'b', call('action_barge', { sender: 'ws-barge' }));
    const sentence = await client.next((m) => m.type === 'sentence' && m.runId === runId);
    assert.equal(sentence.text, 'First sentence. ');
    client.send({ type: 'ack', responseId: sentence.responseId });
    assert.deepEqual(await client.next((m) => m.type === 'acked'), { type: 'acked', responseId: sentence.responseId, acknowledged: true });
    const got = await untilEnd(client, runId);
    assert.deepEqual(got.map((m) => m.type), ['sentence', 'result', 'run-end']);
    assert.deepEqual(got[1].events, [{ event: 'slot', timestamp: null, name: 'interrupted', value: true }]);
    assert.equal(got[2].reason, 'cancelled');
    assert.ok(aborted.has('ws-barge'), 'the action saw its signal abort');
    await client.close();
  });

  it('closing the socket cancels the run it started in the sentence view', async () => {
    const client = await WsClient.connect(server.url);
    const runId = await start(client, 'd', call('action_forever', { sender: 'ws-forever' }));
    await client.next((m) => m.type === 'sentence' && m.runId === runId);
    const run = server.executor.getRun(runId)!;
    await client.close();
    await run.done;
    assert.equal(run.endReason, 'cancelled');
    assert.ok(aborted.has('ws-forever'));
    assert.equal(run.subscribers.size, 0, 'the reader was released');
  });

  it('refuses bad views and options with {type:error}; the socket and a live run carry on', async () => {
    const client = await WsClient.connect(server.url);
    const runId = await start(client, 'live', call('action_story'));
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ type: 'start', id: 'v', call: call('action_story'), view: 'tokens' }, /^start: 'view' must be 'events' or 'sentences' \(got "tokens"\)$/],
      [{ type: 'start', id: 'e', call: call('action_story'), segmenter: { maxLength: 40 } }, /^start: 'segmenter' needs view 'sentences'$/],
      [{ type: 'start', id: 'm', call: call('action_story'), view: 'sentences', segmenter: { mode: 'regex' } }, /^start: segmenter: option 'mode' must be one of 'default', 'ace' \(got "regex"\)$/],
      [{ type: 'start', id: 'x', call: call('action_story'), view: 'sentences', segmenter: { maxLength: 0 } }, /option 'maxLength' must be an integer ≥ 1 \(got 0\)/],
      [{ type: 'start', id: 'y', call: call('action_story'), view: 'sentences', segmenter: { minFirstLength: 10, maxLength: 5 } }, /option 'maxLength' must be ≥ minFirstLength/],
      [{ type: 'start', id: 'z', call: call('action_story'), view: 'sentences', segmenter: { voice: 'x' } }, /^start: segmenter: unknown option 'voice'/],
      [{ type: 'start', id: 'n', call: call('action_story'), view: 'sentences', segmenter: 5 }, /^start: segmenter: options must be an object/],
      [{ type: 'start', id: 'l', call: call('action_story'), view: 'sentences', segmenter: { locale: 'not a locale!' } }, /option 'locale' must be a BCP 47 language tag/],
      [{ type: 'resume', runId, view: 'sentences', segmenter: { stallFlushMs: -1 } }, /^resume: segmenter: option 'stallFlushMs' must be > 0/],
      [{ type: 'resume', runId, view: 'sentences', after: -1 }, /^resume: 'after' must be the index \(a non-negative integer\) of the last sentence received$/],
      [{ type: 'resume', runId, view: 'sentences', after: '2' }, /'after' must be the index/],
    ];
    for (const [message, pattern] of cases) {
      const before = client.messages.length;
      client.send(message);
      const reply = await client.next((m) => client.messages.indexOf(m) >= before && m.type === 'error');
      assert.match(reply.message, pattern);
      assert.equal(reply.code, 'invalid_argument');
      if (message.type === 'start') assert.equal(reply.id, message.id, 'the reply names the start it refuses');
    }
    client.send({ type: 'resume', runId: 'nope', view: 'sentences' });
    const unknown = await client.next((m) => m.type === 'error' && m.code === 'not_found');
    assert.equal(unknown.message, "resume: no run found with id 'nope'");

    const got = await untilEnd(client, runId);
    assert.deepEqual(got.filter((m) => m.type === 'sentence').map((m) => m.index), [0, 1, 2, 3], 'the live run is read once, in full');
    assert.equal(got.at(-1).reason, 'completed');
    assert.equal(client.messages.filter((m) => m.type === 'started').length, 1, 'no refused start began a run');
    await client.close();
  });
});
