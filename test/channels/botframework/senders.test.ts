/**
 * The senders: the Bot Connector REST API (paths, token, body, what survives JSON) and the
 * botbuilder TurnContext adapter (structural, no botbuilder installed).
 */

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { SluiceError } from '../../../src/protocol/errors.ts';
import { silentLogger } from '../../../src/runtime/logger.ts';
import {
  BotConnectorSender,
  BotFrameworkStream,
  canStream,
  getStreamInfo,
  turnContextSender,
  type Activity,
  type TurnContextLike,
} from '../../../src/channels/botframework/index.ts';
import { FakeConnector, TIME_EXCEEDED } from './fixtures.ts';

describe('BotConnectorSender', () => {
  let fake: FakeConnector;
  before(async () => {
    fake = await FakeConnector.start();
  });
  after(() => fake.close());

  it('POSTs to /v3/conversations/{id}/activities with the bearer token and the merged activity', async () => {
    const conversationId = 'a:1Xy_z@thread.skype;messageid=17';
    const sender = new BotConnectorSender({
      serviceUrl: fake.url.replace(/\/$/, '') + '///',
      conversationId,
      token: 'secret-token',
      defaults: { from: { id: '28:bot' }, recipient: { id: '29:user' }, channelId: 'msteams', conversation: { tenantId: 't1' } },
    });
    const info = { streamType: 'streaming', streamSequence: 1 };
    const result = await sender.send({ type: 'typing', text: 'hi', channelData: info, entities: [{ type: 'streaminfo', ...info }] });
    assert.match(result!.id!, /^stream-/);
    const [r] = fake.received.splice(0);
    assert.equal(r!.method, 'POST');
    assert.equal(r!.path, `/v3/conversations/${encodeURIComponent(conversationId)}/activities`);
    assert.equal(r!.conversationId, conversationId);
    assert.equal(r!.authorization, 'Bearer secret-token');
    assert.deepEqual(r!.activity, {
      from: { id: '28:bot' },
      recipient: { id: '29:user' },
      channelId: 'msteams',
      conversation: { tenantId: 't1', id: conversationId },
      type: 'typing',
      text: 'hi',
      channelData: info,
      entities: [{ type: 'streaminfo', ...info }],
    });
  });

  it('calls a token provider for every request', async () => {
    let calls = 0;
    const sender = new BotConnectorSender({ serviceUrl: fake.url, conversationId: 'tok', token: async () => `t${++calls}` });
    const stream = new BotFrameworkStream(sender, { intervalMs: 0, logger: silentLogger });
    stream.queueTextChunk('a');
    await stream.waitForQueue();
    stream.queueTextChunk('b');
    await stream.endStream();
    assert.deepEqual(fake.received.splice(0).map((r) => r.authorization), ['Bearer t1', 'Bearer t2', 'Bearer t3']);
  });

  it('a failing token provider is unavailable/token_unavailable, nothing is sent', async () => {
    const sender = new BotConnectorSender({
      serviceUrl: fake.url,
      conversationId: 'tok2',
      token: () => {
        throw new Error('AAD down');
      },
    });
    await assert.rejects(sender.send({ type: 'message', text: 'x' }), (error: unknown) => {
      assert.ok(SluiceError.isInstance(error));
      assert.equal(error.code, 'unavailable');
      assert.equal(error.details.reason, 'token_unavailable');
      return true;
    });
    assert.equal(fake.received.length, 0);
  });

  it('every stream field survives serialization (the botbuilder 4.23.3 entity bug)', async () => {
    const sender = new BotConnectorSender({ serviceUrl: fake.url, conversationId: 'ser', conversationType: 'personal', token: 't' });
    const stream = new BotFrameworkStream(sender, { intervalMs: 0, logger: silentLogger, generatedByAILabel: true });
    stream.setCitations([{ title: 'T', snippet: 'S', url: 'https://e.x', keywords: ['k'], icon: 'PDF' }]);
    stream.queueInformativeUpdate('Looking…');
    await stream.waitForQueue();
    stream.queueTextChunk('Fact [1].');
    await stream.waitForQueue();
    await stream.endStream();
    fake.assertClean();
    const received = fake.received.splice(0).map((r) => r.activity);
    assert.deepEqual(received.map((a) => getStreamInfo(a)), [
      { streamType: 'informative', streamSequence: 1 },
      { streamType: 'streaming', streamSequence: 2, streamId: stream.streamId },
      { streamType: 'final', streamId: stream.streamId },
    ]);
    assert.deepEqual(received[1]!.entities![1]!.citation, [
      {
        '@type': 'Claim',
        position: 1,
        appearance: {
          '@type': 'DigitalDocument',
          name: 'T',
          abstract: 'S',
          url: 'https://e.x',
          image: { '@type': 'ImageObject', name: 'PDF' },
          keywords: ['k'],
        },
      },
    ]);
  });

  it('rejects a bad configuration early', () => {
    assert.throws(() => new BotConnectorSender({ serviceUrl: 'ftp://x', conversationId: 'c', token: 't' }), TypeError);
    assert.throws(() => new BotConnectorSender({ serviceUrl: 'https://x', conversationId: '', token: 't' }), TypeError);
  });

  it('can stream: personal or unknown conversations only, unless told otherwise', () => {
    const s = (conversationType?: string, streamingAllowed?: boolean) =>
      canStream(new BotConnectorSender({ serviceUrl: 'https://x', conversationId: 'c', token: 't', conversationType, streamingAllowed }));
    assert.deepEqual([s('personal'), s(undefined), s('groupChat'), s('channel'), s('personal', false)], [true, true, false, false, false]);
  });
});

/** A stand-in for botbuilder's TurnContext: same method signatures, records what is sent. */
class FakeTurnContext {
  readonly sent: Partial<Activity>[] = [];
  readonly updated: Partial<Activity>[] = [];
  readonly activity: { conversation: { conversationType?: string; id: string }; deliveryMode?: string; id: string };
  fail: ((activity: Partial<Activity>) => unknown) | undefined;
  constructor(conversationType: string, deliveryMode?: string) {
    this.activity = { id: 'incoming', conversation: { id: 'c', conversationType }, deliveryMode };
  }
  // botbuilder: sendActivity(activityOrText: string | Partial<Activity>, speak?: string, inputHint?: string)
  async sendActivity(activityOrText: string | Partial<Activity>, _speak?: string, _inputHint?: string): Promise<{ id: string } | undefined> {
    const activity = typeof activityOrText === 'string' ? { type: 'message', text: activityOrText } : activityOrText;
    const failure = this.fail?.(activity);
    if (failure !== undefined) throw failure;
    this.sent.push(structuredClone(activity));
    return { id: `act-${this.sent.length}` };
  }
  async updateActivity(activity: Partial<Activity>): Promise<void> {
    this.updated.push(structuredClone(activity));
  }
}

/** botbuilder's RestError, as far as the classifier reads it. */
function restError(status: number, body: unknown): Error {
  return Object.assign(new Error('request failed'), {
    name: 'RestError',
    statusCode: status,
    response: { status, bodyAsText: JSON.stringify(body), headers: new Headers() },
  });
}

describe('turnContextSender', () => {
  it('a TurnContext-shaped object satisfies TurnContextLike', () => {
    const context: TurnContextLike = new FakeTurnContext('personal');
    assert.ok(context);
  });

  it('streams in a personal chat: the first id becomes the stream id', async () => {
    const context = new FakeTurnContext('personal');
    const stream = new BotFrameworkStream(turnContextSender(context), { intervalMs: 0, logger: silentLogger });
    stream.queueTextChunk('one');
    await stream.waitForQueue();
    stream.queueTextChunk(' two');
    await stream.endStream();
    assert.equal(stream.streamId, 'act-1');
    assert.deepEqual(context.sent.map((a) => [a.type, a.text, a.id]), [
      ['typing', 'one', undefined],
      ['typing', 'one two', 'act-1'],
      ['message', 'one two', 'act-1'],
    ]);
  });

  it('falls back to one message in a group chat and with deliveryMode expectReplies', async () => {
    for (const context of [new FakeTurnContext('groupChat'), new FakeTurnContext('personal', 'expectReplies')]) {
      const stream = new BotFrameworkStream(turnContextSender(context), { intervalMs: 0, logger: silentLogger });
      stream.queueInformativeUpdate('…');
      stream.queueTextChunk('all at once');
      const result = await stream.endStream();
      assert.equal(result.outcome, 'fallback');
      assert.deepEqual(context.sent.map((a) => [a.type, a.text]), [['message', 'all at once']]);
    }
  });

  it("classifies botbuilder's RestError: 403 cancelled by user stops the stream", async () => {
    const context = new FakeTurnContext('personal');
    const stream = new BotFrameworkStream(turnContextSender(context), { intervalMs: 0, logger: silentLogger });
    stream.queueTextChunk('a');
    await stream.waitForQueue();
    context.fail = () => restError(403, { error: { code: 'ContentStreamNotAllowed', message: 'Content stream was cancelled by user.' } });
    stream.queueTextChunk('b');
    await stream.waitForQueue();
    assert.ok(stream.stopped);
    assert.equal((await stream.endStream()).outcome, 'stopped');
  });

  it('uses updateActivity to finish a stream the service timed out', async () => {
    const context = new FakeTurnContext('personal');
    const stream = new BotFrameworkStream(turnContextSender(context), { intervalMs: 0, logger: silentLogger });
    stream.queueTextChunk('a');
    await stream.waitForQueue();
    context.fail = () => restError(403, TIME_EXCEEDED.body);
    stream.queueTextChunk('b');
    await stream.waitForQueue();
    context.fail = undefined;
    await stream.endStream();
    assert.deepEqual(context.updated.map((a) => [a.type, a.id, a.text]), [['message', 'act-1', 'ab']]);
  });
});
