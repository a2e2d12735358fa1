/**
 * What Teams AI does not handle: 429 back-off, the Stop button, the 2-minute cap, conversations
 * that cannot stream, and a Bot Connector that fails or hangs.
 */

import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, afterEach, before, describe, it } from 'node:test';
import { SluiceError } from '../../../src/protocol/errors.ts';
import { silentLogger } from '../../../src/runtime/logger.ts';
import {
  BotConnectorSender,
  BotFrameworkStream,
  ManualClock,
  adaptiveCard,
  classifyConnectorResponse,
  classifySendError,
  getStreamInfo,
  parseRetryAfter,
  type ActivitySender,
  type BotConnectorSenderOptions,
  type BotFrameworkStreamOptions,
} from '../../../src/channels/botframework/index.ts';
import {
  FakeConnector,
  MemorySender,
  NOT_ALLOWED,
  SERVER_ERROR,
  STOPPED_BY_USER,
  THROTTLED,
  TIME_EXCEEDED,
} from './fixtures.ts';

function isError(code: string, reason: string): (error: unknown) => boolean {
  return (error: unknown) => {
    assert.ok(SluiceError.isInstance(error), 'a SluiceError');
    assert.equal(error.code, code);
    assert.equal(error.details.reason, reason);
    return true;
  };
}

describe('429: back off, honour Retry-After, resend the newest text', () => {
  it('waits Retry-After, then sends one update with everything queued meanwhile', async () => {
    const clock = new ManualClock();
    const sender = new MemorySender(clock);
    const stream = new BotFrameworkStream(sender, { clock, logger: silentLogger });
    stream.queueTextChunk('a ');
    await clock.advance(500);
    sender.script(THROTTLED(3));
    stream.queueTextChunk('b ');
    await clock.advance(500); // t=1000: update 'a b ' → 429, retry at ≥ 4000
    for (let i = 0; i < 35; i++) {
      stream.queueTextChunk(`${i} `); // chunk i at t = 1000 + 100·i
      await clock.advance(100);
    }
    assert.deepEqual(sender.sent.map((s) => s.at), [0, 1000, 4000]); // the loop ends at t = 4500
    assert.equal(sender.sent[2]!.activity.text, `a b ${Array.from({ length: 30 }, (_, i) => `${i} `).join('')}`);
    assert.equal(sender.sent[2]!.activity.channelData!.streamSequence, 2, 'the rejected update did not use up a sequence number');
    assert.equal(stream.error?.details.reason, 'rate_limited');
    const result = await clock.run(stream.endStream());
    assert.equal(result.outcome, 'completed');
  });

  it('without Retry-After the wait doubles', async () => {
    const clock = new ManualClock();
    const sender = new MemorySender(clock);
    const stream = new BotFrameworkStream(sender, { clock, logger: silentLogger, retryBaseMs: 1000 });
    sender.script(THROTTLED(), THROTTLED());
    stream.queueTextChunk('x');
    await clock.advance(10_000);
    assert.deepEqual(sender.sent.map((s) => s.at), [0, 1000, 3000]);
    assert.equal(stream.streamId, 'stream-1');
    await clock.run(stream.endStream());
  });

  it('retries exhausted on an update: updates stop, the final message is still delivered', async () => {
    const clock = new ManualClock();
    const sender = new MemorySender(clock);
    const stream = new BotFrameworkStream(sender, { clock, logger: silentLogger, maxRetries: 2 });
    stream.queueTextChunk('one ');
    await clock.advance(1000);
    sender.script(THROTTLED(1), THROTTLED(1), THROTTLED(1));
    stream.queueTextChunk('two ');
    await clock.advance(10_000);
    const count = sender.sent.length;
    assert.equal(count, 4, '1 update + 1 try + 2 retries');
    stream.queueTextChunk('three');
    await clock.advance(10_000);
    assert.equal(sender.sent.length, count, 'no more updates');
    const result = await clock.run(stream.endStream());
    assert.equal(result.outcome, 'completed');
    assert.equal(sender.activities().at(-1)!.text, 'one two three');
    assert.equal(stream.error?.code, 'resource_exhausted');
  });

  it('retries exhausted on the final message: endStream rejects with resource_exhausted', async () => {
    const clock = new ManualClock();
    const sender = new MemorySender(clock);
    const stream = new BotFrameworkStream(sender, { clock, logger: silentLogger, maxRetries: 1 });
    sender.script({ status: 202 }, THROTTLED(1), THROTTLED(1));
    stream.queueTextChunk('x');
    await assert.rejects(clock.run(stream.endStream()), isError('resource_exhausted', 'rate_limited'));
  });

  it('over HTTP: the Retry-After header is read and the protocol stays valid', async () => {
    const fake = await FakeConnector.start();
    try {
      const sender = new BotConnectorSender({ serviceUrl: fake.url, conversationId: 'c429', token: 't' });
      const clock = new ManualClock();
      const stream = new BotFrameworkStream(sender, { clock, logger: silentLogger });
      stream.queueTextChunk('hello');
      await stream.waitForQueue();
      fake.script(THROTTLED(2));
      stream.queueTextChunk(' world');
      await clock.run(stream.endStream());
      fake.assertClean();
      assert.deepEqual(fake.received.map((r) => r.status), [201, 429, 202]);
      assert.equal(fake.received[2]!.activity.text, 'hello world');
      assert.ok(clock.now() >= 3000, 'waited the 2 s Retry-After after the 1 s slot');
    } finally {
      await fake.close();
    }
  });
});

describe('the Stop button, the time limit, and conversations that cannot stream', () => {
  let fake: FakeConnector;
  let n = 0;
  before(async () => {
    fake = await FakeConnector.start();
  });
  after(() => fake.close());
  afterEach(() => {
    fake.onRequest = undefined;
  });

  function open(
    senderOptions: Partial<BotConnectorSenderOptions> = {},
    options: BotFrameworkStreamOptions = {},
  ): { stream: BotFrameworkStream; received: () => FakeConnector['received']; conversationId: string } {
    const conversationId = `19:conv-${++n}@thread.v2`;
    const sender = new BotConnectorSender({ serviceUrl: fake.url, conversationId, token: 't', ...senderOptions });
    const stream = new BotFrameworkStream(sender, { intervalMs: 0, logger: silentLogger, ...options });
    return { stream, conversationId, received: () => fake.received.filter((r) => r.conversationId === conversationId) };
  }

  it('403 "cancelled by user": the signal aborts, nothing more is sent, endStream resolves "stopped"', async () => {
    const { stream, received } = open();
    let stopReason: unknown;
    stream.signal.addEventListener('abort', () => (stopReason = stream.signal.reason));
    fake.onRequest = (r) => (r.activity.text === 'one two three ' ? STOPPED_BY_USER : undefined);
    for (const word of ['one ', 'two ', 'three ']) {
      stream.queueTextChunk(word);
      await stream.waitForQueue();
    }
    assert.ok(stream.stopped);
    assert.ok(stream.signal.aborted);
    assert.ok(isError('cancelled', 'stopped_by_user')(stopReason));
    stream.queueTextChunk('four ');
    stream.queueInformativeUpdate('ignored');
    await stream.waitForQueue();
    const result = await stream.endStream();
    assert.equal(result.outcome, 'stopped');
    assert.equal(received().length, 3, 'no request after the 403');
    assert.equal(stream.getMessage(), 'one two three four ', 'the text is kept for history');
  });

  it('403 "exceeded streaming time": the streamed bubble is updated in place with the whole reply', async () => {
    const { stream, received } = open({}, { generatedByAILabel: true });
    stream.queueTextChunk('part one, ');
    await stream.waitForQueue();
    fake.script(TIME_EXCEEDED);
    stream.queueTextChunk('part two, ');
    await stream.waitForQueue();
    assert.ok(stream.timedOut);
    stream.queueTextChunk('part three.');
    await stream.waitForQueue();
    const result = await stream.endStream();
    assert.equal(result.outcome, 'fallback');
    const last = received().at(-1)!;
    assert.equal(last.method, 'PUT');
    assert.equal(last.pathActivityId, stream.streamId);
    assert.equal(last.activity.id, stream.streamId);
    assert.equal(last.activity.text, 'part one, part two, part three.');
    assert.equal(getStreamInfo(last.activity), undefined, 'no stream fields on the update');
    assert.equal(last.activity.channelData!.streamType, undefined);
    assert.deepEqual(last.activity.entities![0]!.additionalType, ['AIGeneratedContent']);
  });

  it('403 "exceeded streaming time" with a sender that cannot update: one plain message', async () => {
    const clock = new ManualClock();
    const memory = new MemorySender(clock);
    const sender: ActivitySender = { send: (a) => memory.send(a) };
    const stream = new BotFrameworkStream(sender, { clock, intervalMs: 0, logger: silentLogger });
    stream.queueTextChunk('a');
    await stream.waitForQueue();
    memory.script(TIME_EXCEEDED);
    stream.queueTextChunk('b');
    await stream.waitForQueue();
    await stream.endStream();
    const last = memory.activities().at(-1)!;
    assert.equal(last.type, 'message');
    assert.equal(last.text, 'ab');
    assert.equal(getStreamInfo(last), undefined);
  });

  it('group chat (conversationType): no typing activities, one message with everything', async () => {
    const { stream, received } = open({ conversationType: 'groupChat' }, { generatedByAILabel: true, feedbackLoop: true });
    assert.equal(stream.streaming, false);
    stream.queueInformativeUpdate('Searching…');
    stream.setCitations([{ title: 'Doc', content: 'excerpt' }]);
    stream.queueTextChunk('The answer ');
    stream.queueTextChunk('is 42 [1].');
    stream.setAttachments([adaptiveCard({ type: 'AdaptiveCard', version: '1.5', body: [] })]);
    await stream.waitForQueue();
    assert.equal(received().length, 0, 'nothing before the end');
    const result = await stream.endStream();
    assert.deepEqual(result, { outcome: 'fallback', streamId: undefined, updatesSent: 0, messagesSent: 1 });
    const [message] = received().map((r) => r.activity);
    assert.equal(received().length, 1);
    assert.equal(message!.type, 'message');
    assert.equal(message!.text, 'The answer is 42 [1].');
    assert.equal(getStreamInfo(message!), undefined);
    assert.deepEqual(message!.channelData, { feedbackLoopEnabled: true });
    assert.equal(message!.attachments!.length, 1);
    assert.equal(message!.entities!.length, 1);
    assert.deepEqual((message!.entities![0]!.citation as { position: number }[]).map((c) => c.position), [1]);
    fake.assertClean();
  });

  it('streamingAllowed: false also sends one message; with nothing to say it sends nothing', async () => {
    const first = open({ conversationType: 'personal' }, { streamingAllowed: false });
    first.stream.queueTextChunk('only at the end');
    await first.stream.endStream();
    assert.deepEqual(first.received().map((r) => [r.activity.type, r.activity.text]), [['message', 'only at the end']]);
    const second = open({}, { streamingAllowed: false });
    assert.equal((await second.stream.endStream()).outcome, 'empty');
    assert.equal(second.received().length, 0);
  });

  it('403 "not allowed" on the first update: falls back to one message', async () => {
    const { stream, received } = open();
    fake.script(NOT_ALLOWED);
    stream.queueInformativeUpdate('Working…');
    stream.queueTextChunk('Hello');
    await stream.waitForQueue();
    stream.queueTextChunk(' there');
    const result = await stream.endStream();
    assert.equal(result.outcome, 'fallback');
    assert.deepEqual(received().map((r) => [r.status, r.activity.type, r.activity.text]), [
      [403, 'typing', 'Working…'],
      [201, 'message', 'Hello there'],
    ]);
  });

  it('405 from the service (a group chat the bot did not know about): falls back to one message', async () => {
    const { stream, received, conversationId } = open();
    fake.groupChats.add(conversationId);
    stream.queueTextChunk('Hi all');
    await stream.waitForQueue();
    await stream.endStream();
    assert.deepEqual(received().map((r) => r.status), [405, 201]);
    assert.equal(received()[1]!.activity.text, 'Hi all');
  });

  it('replyToId: every activity goes to …/activities/{replyToId} and carries replyToId', async () => {
    const { stream, received } = open({ replyToId: 'in:coming/1' });
    stream.queueTextChunk('x');
    await stream.waitForQueue();
    await stream.endStream();
    assert.equal(received().length, 2);
    for (const r of received()) {
      assert.equal(r.pathActivityId, 'in:coming/1');
      assert.equal(r.activity.replyToId, 'in:coming/1');
    }
    fake.assertClean();
  });
});

describe('the 2-minute cap: close the stream in time, send the rest as a message', () => {
  it('closes with a final message at maxStreamDurationMs and continues in one plain message', async () => {
    const clock = new ManualClock();
    const sender = new MemorySender(clock);
    const stream = new BotFrameworkStream(sender, {
      clock,
      logger: silentLogger,
      maxStreamDurationMs: 10_000,
      generatedByAILabel: true,
      feedbackLoop: true,
    });
    let expected = '';
    for (let i = 0; i < 50; i++) {
      expected += `s${i} `;
      stream.queueTextChunk(`s${i} `);
      if (i === 45) stream.setAttachments([adaptiveCard({ type: 'AdaptiveCard', body: [] })]);
      await clock.advance(500);
    }
    const result = await clock.run(stream.endStream());
    const activities = sender.activities();
    const finals = activities.filter((a) => getStreamInfo(a)?.streamType === 'final');
    assert.equal(finals.length, 1);
    const finalIndex = activities.indexOf(finals[0]!);
    assert.equal(sender.sent[finalIndex]!.at, 10_000, 'closed at the limit');
    assert.ok(activities.slice(finalIndex + 1).every((a) => a.type === 'message' && getStreamInfo(a) === undefined));
    const continuation = activities.at(-1)!;
    assert.equal(activities.length, finalIndex + 2);
    assert.equal(finals[0]!.text! + continuation.text!, expected, 'nothing lost, nothing repeated');
    assert.equal(finals[0]!.attachments, undefined);
    assert.equal(continuation.attachments!.length, 1, 'attachments go on the last message');
    for (const message of [finals[0]!, continuation]) {
      assert.equal(message.channelData!.feedbackLoopEnabled, true);
      assert.deepEqual(message.entities!.at(-1)!.additionalType, ['AIGeneratedContent']);
    }
    assert.equal(result.outcome, 'completed');
    assert.equal(result.messagesSent, 2);
  });

  it('a stream that goes quiet is still closed at the limit; ending later sends nothing more', async () => {
    const clock = new ManualClock();
    const sender = new MemorySender(clock);
    const stream = new BotFrameworkStream(sender, { clock, logger: silentLogger, maxStreamDurationMs: 5000 });
    stream.queueInformativeUpdate('Thinking…');
    stream.queueTextChunk('partial');
    await clock.advance(6000);
    assert.equal(sender.activities().at(-1)!.type, 'message');
    const result = await clock.run(stream.endStream());
    assert.equal(result.outcome, 'completed');
    assert.deepEqual(sender.activities().map((a) => [a.type, a.text]), [
      ['typing', 'Thinking…'],
      ['typing', 'partial'],
      ['message', 'partial'],
    ]);
    assert.equal(clock.pending, 0, 'no timer left behind');
  });
});

describe('a failing Bot Connector: a clear error, no hammering', () => {
  let fake: FakeConnector;
  let n = 0;
  before(async () => {
    fake = await FakeConnector.start();
  });
  after(() => fake.close());

  function open(senderOptions: Partial<BotConnectorSenderOptions> = {}): { stream: BotFrameworkStream; received: () => FakeConnector['received'] } {
    const conversationId = `fail-${++n}`;
    const sender = new BotConnectorSender({ serviceUrl: fake.url, conversationId, token: 't', ...senderOptions });
    const stream = new BotFrameworkStream(sender, { intervalMs: 0, logger: silentLogger });
    return { stream, received: () => fake.received.filter((r) => r.conversationId === conversationId) };
  }

  it('a 500 on an update stops the updates; the final message is still tried and can succeed', async () => {
    const { stream, received } = open();
    stream.queueTextChunk('a');
    await stream.waitForQueue();
    fake.script(SERVER_ERROR);
    stream.queueTextChunk('b');
    await stream.waitForQueue();
    stream.queueTextChunk('c');
    await stream.waitForQueue();
    assert.equal(received().length, 2, 'no update after the failure');
    const result = await stream.endStream();
    assert.equal(result.outcome, 'completed');
    assert.equal(received().at(-1)!.activity.text, 'abc');
    assert.equal(stream.error?.code, 'unavailable');
  });

  it('a connector that keeps answering 5xx: endStream rejects with unavailable and a safe message', async () => {
    const { stream } = open();
    fake.onRequest = (r) => (r.index >= 0 ? { status: 503, body: 'upstream db-7 is down (secret)' } : undefined);
    try {
      stream.queueTextChunk('x');
      await assert.rejects(stream.endStream(), (error: unknown) => {
        assert.ok(isError('unavailable', 'connector_error')(error));
        const e = error as SluiceError;
        assert.equal(e.message, 'The Bot Connector service is unavailable (HTTP 503)');
        assert.deepEqual(JSON.stringify(e), JSON.stringify({ code: 'unavailable', message: e.message }));
        return true;
      });
    } finally {
      fake.onRequest = undefined;
    }
  });

  it('a connector that does not answer: timeout, then the final message times out too', async () => {
    const { stream, received } = open({ timeoutMs: 150 });
    fake.script({ status: 201, hang: true }, { status: 201, hang: true });
    stream.queueTextChunk('slow');
    await stream.waitForQueue();
    assert.equal(stream.error?.details.reason, 'connector_timeout');
    await assert.rejects(stream.endStream(), (error: unknown) => {
      assert.ok(isError('timeout', 'connector_timeout')(error));
      assert.equal((error as SluiceError).message, 'The Bot Connector service did not answer in time');
      return true;
    });
    assert.equal(received().length, 2);
  });

  it('an unreachable connector: unavailable (connector_unreachable)', async () => {
    const server = createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    await new Promise<void>((r) => server.close(() => r()));
    const sender = new BotConnectorSender({ serviceUrl: `http://127.0.0.1:${port}`, conversationId: 'x', token: 't' });
    const stream = new BotFrameworkStream(sender, { intervalMs: 0, logger: silentLogger });
    stream.queueTextChunk('x');
    await assert.rejects(stream.endStream(), isError('unavailable', 'connector_unreachable'));
  });

  it('401: fatal at once, nothing more is sent, endStream rejects', async () => {
    const { stream, received } = open();
    fake.script({ status: 401, body: { message: 'Authorization has been denied for this request.' } });
    stream.queueTextChunk('a');
    await stream.waitForQueue();
    stream.queueTextChunk('b');
    await stream.waitForQueue();
    assert.equal(received().length, 1);
    await assert.rejects(stream.endStream(), isError('permission_denied', 'unauthorized'));
    assert.equal(received().length, 1);
  });

  it('400 BadSyntax on an update (stream fields lost on the way): one plain message instead', async () => {
    const { stream, received } = open();
    stream.queueTextChunk('a');
    await stream.waitForQueue();
    fake.script({ status: 400, body: { error: { code: 'BadSyntax', message: 'Only start streaming and continue streaming types are allowed as a typing activity' } } });
    stream.queueTextChunk('b');
    await stream.waitForQueue();
    stream.queueTextChunk('c');
    const result = await stream.endStream();
    assert.equal(result.outcome, 'fallback');
    assert.deepEqual(received().map((r) => [r.status, r.activity.type, r.activity.text]), [
      [201, 'typing', 'a'],
      [400, 'typing', 'ab'],
      [201, 'message', 'abc'],
    ]);
  });

  it('a first send without an id: no stream to continue, one message at the end', async () => {
    const { stream, received } = open();
    fake.script({ status: 200, body: {} });
    stream.queueTextChunk('a');
    await stream.waitForQueue();
    stream.queueTextChunk('b');
    await stream.endStream();
    assert.deepEqual(received().map((r) => [r.activity.type, r.activity.text, getStreamInfo(r.activity)?.streamType]), [
      ['typing', 'a', 'streaming'],
      ['message', 'ab', undefined],
    ]);
  });
});

describe('classification', () => {
  const body = (message: string, code = 'ContentStreamNotAllowed'): unknown => ({ error: { code, message } });
  const cases: [number, unknown, string, string][] = [
    [403, body('Content stream was cancelled by user.'), 'cancelled', 'stopped_by_user'],
    [403, body('Content stream finished due to exceeded streaming time.'), 'timeout', 'stream_time_exceeded'],
    [403, body('Content stream is not allowed'), 'permission_denied', 'streaming_not_allowed'],
    [403, body('Content stream is not allowed on an already completed streamed message'), 'failed_precondition', 'stream_already_completed'],
    [403, body('Message size too large'), 'invalid_argument', 'message_too_large'],
    [400, body('streaming api is not enabled', 'BadArgument'), 'permission_denied', 'streaming_not_allowed'],
    [405, 'Method Not Allowed', 'permission_denied', 'streaming_not_allowed'],
    [429, body('API calls quota exceeded', 'Throttled'), 'resource_exhausted', 'rate_limited'],
    [400, body('Start streaming activities should include text', 'BadRequest'), 'invalid_argument', 'bad_request'],
    [401, '', 'permission_denied', 'unauthorized'],
    [403, '', 'permission_denied', 'unauthorized'],
    [404, body('Conversation not found.', 'ConversationNotFound'), 'not_found', 'conversation_not_found'],
    [500, '<html>oops</html>', 'unavailable', 'connector_error'],
    [502, '', 'unavailable', 'connector_error'],
    [504, '', 'timeout', 'connector_timeout'],
  ];
  for (const [status, payload, code, reason] of cases) {
    it(`${status} ${JSON.stringify(payload).slice(0, 70)} → ${code} / ${reason}`, () => {
      const error = classifyConnectorResponse(status, typeof payload === 'string' ? payload : JSON.stringify(payload));
      assert.equal(error.code, code);
      assert.equal(error.details.reason, reason);
      assert.equal(error.details.status, status);
    });
  }

  it('Retry-After: seconds or an HTTP date', () => {
    assert.equal(parseRetryAfter('3'), 3000);
    assert.equal(parseRetryAfter('0.5'), 500);
    assert.equal(parseRetryAfter(new Date(10_000).toUTCString(), 4000), 6000);
    assert.equal(parseRetryAfter('soon'), undefined);
    assert.equal(parseRetryAfter(null), undefined);
    const error = classifyConnectorResponse(429, '', '7');
    assert.equal(error.details.retryAfterMs, 7000);
  });

  it("botbuilder's RestError (statusCode + response) is classified like an answer", () => {
    const restError = Object.assign(new Error('Content stream was cancelled by user.'), {
      name: 'RestError',
      statusCode: 403,
      code: 'ContentStreamNotAllowed',
      response: { status: 403, bodyAsText: JSON.stringify(body('Content stream was cancelled by user.')), headers: new Headers() },
    });
    const error = classifySendError(restError);
    assert.equal(error.details.reason, 'stopped_by_user');
    assert.equal(error.cause, restError);
    assert.equal(classifySendError(Object.assign(new Error('x'), { name: 'TimeoutError' })).details.reason, 'connector_timeout');
    assert.equal(classifySendError(new TypeError('fetch failed')).details.reason, 'connector_unreachable');
  });
});
