/**
 * `streamRunToBotFramework`: the event mapping (status, several messages, citations, rich content,
 * errors), then end to end: a real ActionExecutor run bridged to the REST sender and a local Bot
 * Connector, with the Stop button (403) mid-stream, a group chat and a failing connector.
 */

import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, afterEach, before, describe, it } from 'node:test';
import type { EventInput } from '../../../src/protocol/events.ts';
import { defineAction, status } from '../../../src/runtime/action.ts';
import { ActionExecutor } from '../../../src/runtime/executor.ts';
import { silentLogger } from '../../../src/runtime/logger.ts';
import { slotSet } from '../../../src/runtime/rasa-events.ts';
import { Run } from '../../../src/runtime/run.ts';
import {
  BotConnectorSender,
  BotFrameworkStream,
  ManualClock,
  getStreamInfo,
  streamRunToBotFramework,
  type BridgeOptions,
  type BridgeResult,
} from '../../../src/channels/botframework/index.ts';
import { FakeConnector, MemorySender, STOPPED_BY_USER, assertRate } from './fixtures.ts';

const RESPONSE_A = 'a'.repeat(32);
const RESPONSE_B = 'b'.repeat(32);

/** Runs the bridge over a hand-driven run; `script` emits the events. */
async function bridge(
  script: (emit: (event: EventInput) => void) => void,
  options: BridgeOptions = {},
): Promise<{ result: BridgeResult; sender: MemorySender }> {
  const clock = new ManualClock();
  const sender = new MemorySender(clock);
  const stream = new BotFrameworkStream(sender, { clock, logger: silentLogger });
  const run = new Run({ action: 'test' });
  const done = streamRunToBotFramework(run, stream, { logger: silentLogger, ...options });
  const emit = (event: EventInput): void => void run.emit(event);
  emit({ type: 'run-start', action: 'test', at: 0 });
  script(emit);
  return { result: await clock.run(done), sender };
}

describe('streamRunToBotFramework: mapping', () => {
  it('status → informative; several messages → one reply separated by blank lines; citations; rich → attachments', async () => {
    const card = { type: 'AdaptiveCard', version: '1.5', body: [{ type: 'TextBlock', text: 'card' }] };
    const { result, sender } = await bridge((emit) => {
      emit({ type: 'status', text: 'Searching…' });
      emit({ type: 'stream-start', responseId: RESPONSE_A });
      emit({ type: 'chunk', responseId: RESPONSE_A, text: 'Hello ', citations: [{ position: 1, title: 'Doc', snippet: 'excerpt' }] });
      emit({ type: 'chunk', responseId: RESPONSE_A, text: 'world [1].' });
      emit({ type: 'stream-end', responseId: RESPONSE_A, reason: 'completed' });
      emit({ type: 'message', message: { text: 'Second message', buttons: [{ title: 'Yes', payload: '/affirm' }] } });
      emit({ type: 'tool-start', toolCallId: 't1', name: 'lookup' });
      emit({ type: 'stream-start', responseId: RESPONSE_B });
      emit({ type: 'chunk', responseId: RESPONSE_B, text: 'Third', image: 'https://img.example/pic.jpg' });
      emit({ type: 'chunk', responseId: RESPONSE_B, custom: card });
      emit({ type: 'chunk', responseId: RESPONSE_B, custom: { anything: 'else' } });
      emit({ type: 'stream-end', responseId: RESPONSE_B, reason: 'completed' });
      emit({ type: 'result', events: [slotSet('done', true)], responses: [] });
      emit({ type: 'run-end', reason: 'completed' });
    });
    const activities = sender.activities();
    assert.deepEqual(activities[0]!.channelData, { streamType: 'informative', streamSequence: 1 });
    assert.equal(activities[0]!.text, 'Searching…');
    const final = activities.at(-1)!;
    assert.equal(final.type, 'message');
    assert.equal(final.text, 'Hello world [1].\n\nSecond message\n\nThird');
    assert.deepEqual(
      final.attachments!.map((a) => a.contentType),
      ['application/vnd.microsoft.card.hero', 'image/jpeg', 'application/vnd.microsoft.card.adaptive'],
    );
    assert.deepEqual(final.attachments![0]!.content, { buttons: [{ type: 'imBack', title: 'Yes', value: '/affirm' }] });
    assert.equal(final.attachments![1]!.contentUrl, 'https://img.example/pic.jpg');
    assert.deepEqual(final.attachments![2]!.content, card);
    const cited = final.entities!.find((e) => e.type === 'https://schema.org/Message')!;
    assert.deepEqual((cited.citation as { position: number }[]).map((c) => c.position), [1]);
    assert.equal(result.terminal?.type, 'result');
    assert.equal(result.runEnd, 'completed');
    assert.equal(result.reply?.outcome, 'completed');
    assert.equal(result.channelError, undefined);
    assert.equal(result.stoppedByUser, false);
  });

  it('an error ends the reply with the partial text and a note', async () => {
    const { result, sender } = await bridge((emit) => {
      emit({ type: 'chunk', responseId: RESPONSE_A, text: 'Partial answer' });
      emit({ type: 'stream-end', responseId: RESPONSE_A, reason: 'error' });
      emit({ type: 'error', code: 'internal', message: 'db password wrong' });
      emit({ type: 'run-end', reason: 'error' });
    });
    const final = sender.activities().at(-1)!;
    assert.equal(final.text, 'Partial answer\n\n_(The response was interrupted by an error.)_');
    assert.doesNotMatch(final.text!, /password/);
    assert.equal(result.terminal?.type, 'error');
    assert.equal(result.runEnd, 'error');
  });

  it('an error before any text: an apology; a custom note; no note at all', async () => {
    const fail = (emit: (event: EventInput) => void): void => {
      emit({ type: 'status', text: 'Working…' });
      emit({ type: 'error', code: 'unavailable', message: 'model down' });
      emit({ type: 'run-end', reason: 'error' });
    };
    const apology = await bridge(fail);
    assert.equal(apology.sender.activities().at(-1)!.text, 'Sorry, something went wrong while answering.');
    const custom = await bridge(fail, { errorNote: (e) => `Error: ${e.code}` });
    assert.equal(custom.sender.activities().at(-1)!.text, 'Error: unavailable');
    const none = await bridge(fail, { errorNote: null });
    assert.equal(none.sender.activities().at(-1)!.text, '');
  });

  it('options: a custom separator, status updates off', async () => {
    const { sender } = await bridge(
      (emit) => {
        emit({ type: 'status', text: 'hidden' });
        emit({ type: 'chunk', responseId: RESPONSE_A, text: 'One' });
        emit({ type: 'chunk', responseId: RESPONSE_B, text: 'Two' });
        emit({ type: 'result', events: [], responses: [] });
        emit({ type: 'run-end', reason: 'completed' });
      },
      { messageSeparator: ' / ', informativeUpdates: false },
    );
    assert.deepEqual(sender.activities().map((a) => a.text), ['One', 'One / Two']);
  });

  it('a run with nothing to show sends nothing', async () => {
    const { result, sender } = await bridge((emit) => {
      emit({ type: 'result', events: [slotSet('x', 1)], responses: [] });
      emit({ type: 'run-end', reason: 'completed' });
    });
    assert.equal(sender.sent.length, 0);
    assert.equal(result.reply, undefined);
    assert.deepEqual((result.terminal as { events: unknown[] }).events, [slotSet('x', 1)]);
  });
});

const call = (name: string, conversationSlots: Record<string, unknown> = {}): Record<string, unknown> => ({
  next_action: name,
  sender_id: 'u1',
  tracker: { sender_id: 'u1', slots: conversationSlots, latest_message: { text: 'hi' }, events: [], paused: false },
  domain: { version: '3.1', slots: {} },
  version: '3.17.0',
});

/** Streams until its signal aborts (at most 300 chunks), then returns whether it was interrupted. */
const answer = defineAction({
  name: 'action_answer',
  async *stream({ signal }) {
    yield status('Thinking…');
    for (let i = 0; i < 300 && !signal.aborted; i++) {
      yield `w${i} `;
      await sleep(2);
    }
    return [slotSet('interrupted', signal.aborted)];
  },
});

/** Ignores the cancel and keeps going: its result must still arrive. */
const stubborn = defineAction({
  name: 'action_stubborn',
  async *stream() {
    for (let i = 0; i < 40; i++) {
      yield `s${i} `;
      await sleep(2);
    }
    return [slotSet('finished', true)];
  },
});

/** A short two-message answer. */
const short = defineAction({
  name: 'action_short',
  async *stream() {
    yield status('Looking it up…');
    yield 'First part.';
    await sleep(5);
    yield { type: 'stream-end' };
    yield 'Second part.';
    return [slotSet('answered', true)];
  },
});

describe('end to end: ActionExecutor → streamRunToBotFramework → Bot Connector REST', () => {
  let fake: FakeConnector;
  let executor: ActionExecutor;
  let n = 0;
  before(async () => {
    fake = await FakeConnector.start();
    executor = new ActionExecutor({ actions: [answer, stubborn, short], logger: silentLogger, bargeInTimeoutSeconds: 5 });
  });
  after(async () => {
    await executor.close();
    await fake.close();
  });
  afterEach(() => {
    fake.onRequest = undefined;
    fake.assertClean();
    assert.equal(executor.activeRuns, 0, 'no run left behind');
  });

  function open(conversationType = 'personal', intervalMs = 40): { stream: BotFrameworkStream; conversationId: string; received: () => FakeConnector['received'] } {
    const conversationId = `e2e-${++n}`;
    const sender = new BotConnectorSender({ serviceUrl: fake.url, conversationId, conversationType, token: 't' });
    const stream = new BotFrameworkStream(sender, { intervalMs, logger: silentLogger, generatedByAILabel: true });
    return { stream, conversationId, received: () => fake.received.filter((r) => r.conversationId === conversationId) };
  }

  it('streams a run: informative update, paced cumulative updates, one final message, the result', async () => {
    const { stream, received } = open('personal', 40);
    const run = executor.start(call('action_short'));
    const result = await streamRunToBotFramework(run, stream, { logger: silentLogger });
    assert.deepEqual((result.terminal as { events: unknown[] }).events, [slotSet('answered', true)]);
    assert.equal(result.runEnd, 'completed');
    const activities = received().map((r) => r.activity);
    assert.equal(activities[0]!.text, 'Looking it up…');
    assert.equal(getStreamInfo(activities[0]!)!.streamType, 'informative');
    const final = activities.at(-1)!;
    assert.equal(final.text, 'First part.\n\nSecond part.');
    assert.deepEqual(final.entities!.at(-1)!.additionalType, ['AIGeneratedContent']);
    assert.equal(result.reply?.outcome, 'completed');
  });

  it('the Stop button (403) mid-stream cancels the run; the action finishes and its result arrives', async () => {
    const { stream, received, conversationId } = open('personal', 30);
    let seen = 0;
    fake.onRequest = (r) => (r.conversationId === conversationId && ++seen === 3 ? STOPPED_BY_USER : undefined);
    const run = executor.start(call('action_answer'));
    const result = await streamRunToBotFramework(run, stream, { logger: silentLogger });
    assert.ok(result.stoppedByUser);
    assert.equal(result.runEnd, 'cancelled');
    assert.deepEqual((result.terminal as { events: unknown[] }).events, [slotSet('interrupted', true)]);
    assert.equal(result.reply?.outcome, 'stopped');
    assert.equal(received().length, 3);
    await sleep(100);
    assert.equal(received().length, 3, 'nothing was sent after the 403');
    assert.ok(stream.getMessage().startsWith('w0 w1 '), 'the text kept for history');
    assert.ok(run.isCancelled);
  });

  it('an action that ignores the cancel still delivers its events (barge-in path), through executor.cancel', async () => {
    const { stream, conversationId } = open('personal', 20);
    fake.onRequest = (r) => (r.conversationId === conversationId && r.activity.text?.includes('s3 ') === true ? STOPPED_BY_USER : undefined);
    const run = executor.start(call('action_stubborn'));
    let cancelled = 0;
    const result = await streamRunToBotFramework(run, stream, {
      logger: silentLogger,
      cancel: () => void (cancelled += Number(executor.cancel(run.id, 'Stopped in Teams'))),
    });
    assert.equal(cancelled, 1);
    assert.equal(result.runEnd, 'cancelled');
    assert.deepEqual((result.terminal as { events: unknown[] }).events, [slotSet('finished', true)]);
  });

  it('a group chat gets one message with the whole answer, and the result', async () => {
    const { stream, received } = open('groupChat');
    const run = executor.start(call('action_short'));
    const result = await streamRunToBotFramework(run, stream, { logger: silentLogger });
    assert.deepEqual(received().map((r) => [r.activity.type, r.activity.text, getStreamInfo(r.activity)]), [
      ['message', 'First part.\n\nSecond part.', undefined],
    ]);
    assert.equal(result.reply?.outcome, 'fallback');
    assert.deepEqual((result.terminal as { events: unknown[] }).events, [slotSet('answered', true)]);
  });

  it('a Bot Connector answering 500: a clear channel error, and the run still delivers its result', async () => {
    const { stream, conversationId } = open();
    fake.onRequest = (r) => (r.conversationId === conversationId ? { status: 500, body: 'boom' } : undefined);
    const run = executor.start(call('action_short'));
    const result = await streamRunToBotFramework(run, stream, { logger: silentLogger });
    assert.equal(result.channelError?.code, 'unavailable');
    assert.equal(result.channelError?.message, 'The Bot Connector service is unavailable (HTTP 500)');
    assert.equal(result.runEnd, 'completed');
    assert.deepEqual((result.terminal as { events: unknown[] }).events, [slotSet('answered', true)]);
  });

  it('a slow Bot Connector: timeout error, result delivered', async () => {
    const conversationId = `e2e-${++n}`;
    const sender = new BotConnectorSender({ serviceUrl: fake.url, conversationId, conversationType: 'personal', token: 't', timeoutMs: 100 });
    const stream = new BotFrameworkStream(sender, { intervalMs: 20, logger: silentLogger });
    fake.onRequest = (r) => (r.conversationId === conversationId ? { status: 201, delayMs: 400 } : undefined);
    const run = executor.start(call('action_short'));
    const result = await streamRunToBotFramework(run, stream, { logger: silentLogger });
    assert.equal(result.channelError?.code, 'timeout');
    assert.equal(result.channelError?.details.reason, 'connector_timeout');
    assert.deepEqual((result.terminal as { events: unknown[] }).events, [slotSet('answered', true)]);
  });

  it('pacing holds end to end: the service sees ≤ 1 request per interval', async () => {
    const { stream, received } = open('personal', 100);
    const run = executor.start(call('action_answer'));
    await streamRunToBotFramework(run, stream, { logger: silentLogger });
    const times = received().map((r) => r.at);
    // Sends start ≥ 100 ms apart; arrival times carry some network jitter.
    assertRate(times, 1, 70);
    assert.ok(received().length >= 3);
    assert.equal(received().at(-1)!.activity.text, Array.from({ length: 300 }, (_, i) => `w${i} `).join(''));
  });
});
