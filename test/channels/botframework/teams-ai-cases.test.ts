/**
 * The streaming cases of Teams AI and its ports (reference/teams-ai.md §4), against a local
 * server that behaves like the Bot Connector (every activity goes through HTTP and JSON).
 */

import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { SluiceError } from '../../../src/protocol/errors.ts';
import { silentLogger } from '../../../src/runtime/logger.ts';
import {
  BotConnectorSender,
  BotFrameworkStream,
  ManualClock,
  adaptiveCard,
  type BotFrameworkStreamOptions,
} from '../../../src/channels/botframework/index.ts';
import { FakeConnector, SERVER_ERROR } from './fixtures.ts';

const AI_ENTITY = {
  type: 'https://schema.org/Message',
  '@type': 'Message',
  '@context': 'https://schema.org',
  '@id': '',
  additionalType: ['AIGeneratedContent'],
  citation: [],
};

describe('Teams AI StreamingResponse cases', () => {
  let fake: FakeConnector;
  let conversation = 0;
  before(async () => {
    fake = await FakeConnector.start();
  });
  after(() => fake.close());
  afterEach(() => {
    fake.assertClean();
    fake.received.length = 0;
  });

  /** A stream to a fresh conversation; the pacing interval is 0 so these cases don't wait. */
  function open(options: BotFrameworkStreamOptions = {}): { stream: BotFrameworkStream; replies: () => ReturnType<FakeConnector['activities']> } {
    const conversationId = `a:conv-${++conversation}`;
    const sender = new BotConnectorSender({ serviceUrl: fake.url, conversationId, conversationType: 'personal', token: 't0ken' });
    const stream = new BotFrameworkStream(sender, { intervalMs: 0, logger: silentLogger, ...options });
    return { stream, replies: () => fake.received.filter((r) => r.conversationId === conversationId).map((r) => r.activity) };
  }

  function assertEnded(fn: () => unknown): void {
    assert.throws(fn, (error: unknown) => {
      assert.ok(SluiceError.isInstance(error));
      assert.equal(error.code, 'failed_precondition');
      assert.equal(error.message, 'The stream has already ended.');
      return true;
    });
  }

  it('1. the constructor creates an instance', () => {
    const { stream } = open();
    assert.ok(stream);
    assert.equal(stream.streamId, undefined);
    assert.equal(stream.updatesSent, 0);
  });

  it('2. an informative update sends one typing activity', async () => {
    const { stream, replies } = open();
    stream.queueInformativeUpdate('starting');
    await stream.waitForQueue();
    assert.equal(typeof stream.streamId, 'string');
    assert.ok(stream.streamId!.length > 0);
    assert.equal(stream.updatesSent, 1);
    const [reply] = replies();
    assert.equal(reply!.type, 'typing');
    assert.equal(reply!.text, 'starting');
    assert.deepEqual(reply!.channelData, { streamType: 'informative', streamSequence: 1 });
    assert.deepEqual(reply!.entities, [{ type: 'streaminfo', streamType: 'informative', streamSequence: 1 }]);
    await stream.endStream();
  });

  it('3. the sequence increments across informative updates', async () => {
    const { stream, replies } = open();
    stream.queueInformativeUpdate('first');
    stream.queueInformativeUpdate('second');
    await stream.waitForQueue();
    assert.equal(stream.updatesSent, 2);
    const typing = replies();
    assert.equal(typing.length, 2);
    assert.equal(typing[0]!.channelData!.streamSequence, 1);
    assert.equal(typing[1]!.channelData!.streamSequence, 2);
    assert.deepEqual(typing[1]!.channelData, { streamType: 'informative', streamSequence: 2, streamId: stream.streamId });
    await stream.endStream();
  });

  it('4. an informative update after the end throws', async () => {
    const { stream } = open();
    const ending = stream.endStream();
    assertEnded(() => stream.queueInformativeUpdate('late'));
    await ending;
  });

  it('5. text chunks are cumulative: first, then firstsecond', async () => {
    const { stream, replies } = open();
    stream.queueTextChunk('first');
    stream.queueTextChunk('second');
    await stream.waitForQueue();
    const sent = replies();
    assert.equal(sent.length, 2);
    assert.equal(sent[0]!.type, 'typing');
    assert.equal(sent[0]!.text, 'first');
    assert.deepEqual(sent[0]!.channelData, { streamType: 'streaming', streamSequence: 1 });
    assert.equal(sent[1]!.type, 'typing');
    assert.equal(sent[1]!.text, 'firstsecond');
    assert.deepEqual(sent[1]!.channelData, { streamType: 'streaming', streamSequence: 2, streamId: stream.streamId });
    assert.equal(sent[1]!.id, stream.streamId);
    await stream.endStream();
  });

  it('6. a text chunk after the end throws (and nothing more is counted)', async () => {
    const { stream } = open();
    stream.queueTextChunk('first');
    stream.queueTextChunk('second');
    await stream.waitForQueue();
    const ending = stream.endStream();
    assertEnded(() => stream.queueTextChunk('late'));
    assertEnded(() => stream.endStream());
    assertEnded(() => stream.setAttachments([]));
    await ending;
    assert.equal(stream.updatesSent, 2);
  });

  it('7. ending at once sends one empty final message', async () => {
    const { stream, replies } = open();
    const result = await stream.endStream();
    assert.equal(stream.updatesSent, 0);
    const sent = replies();
    assert.equal(sent.length, 1);
    assert.equal(sent[0]!.type, 'message');
    assert.equal(sent[0]!.text, '');
    assert.deepEqual(sent[0]!.channelData, { streamType: 'final', feedbackLoopEnabled: false });
    assert.deepEqual(sent[0]!.entities, [{ type: 'streaminfo', streamType: 'final' }]);
    assert.deepEqual(result, { outcome: 'completed', streamId: undefined, updatesSent: 0, messagesSent: 1 });
  });

  it('8. the final message carries the whole text', async () => {
    const { stream, replies } = open();
    stream.queueTextChunk('first');
    stream.queueTextChunk('second');
    await stream.waitForQueue();
    await stream.endStream();
    const sent = replies();
    assert.equal(sent.length, 3);
    assert.deepEqual(
      sent.slice(0, 2).map((a) => a.channelData!.streamSequence),
      [1, 2],
    );
    assert.equal(sent[2]!.type, 'message');
    assert.equal(sent[2]!.text, 'firstsecond');
    assert.ok(!('streamSequence' in sent[2]!.channelData!), 'the final message has no streamSequence');
    assert.deepEqual(sent[2]!.channelData, { streamType: 'final', streamId: stream.streamId, feedbackLoopEnabled: false });
    assert.equal(stream.updatesSent, 2, 'the final message is not an update');
  });

  it('9. the final message with citations', async () => {
    const { stream, replies } = open();
    stream.setCitations([{ content: 'test-content', url: 'https://example.com', title: 'test', filepath: 'test' }]);
    stream.queueTextChunk('first');
    stream.queueTextChunk('second');
    await stream.waitForQueue();
    await stream.endStream();
    assert.equal(stream.citations.length, 1);
    const sent = replies();
    assert.equal(sent.length, 3);
    assert.deepEqual(sent[2]!.channelData, { streamType: 'final', streamId: stream.streamId, feedbackLoopEnabled: false });
    assert.deepEqual(stream.citations[0], {
      '@type': 'Claim',
      position: 1,
      appearance: { '@type': 'DigitalDocument', name: 'test', abstract: 'test-content', url: 'https://example.com' },
    });
  });

  it('10. the final message with the Powered-by-AI features', async () => {
    const { stream, replies } = open();
    stream.setFeedbackLoop(true);
    stream.setGeneratedByAILabel(true);
    stream.queueTextChunk('first');
    stream.queueTextChunk('second');
    await stream.waitForQueue();
    await stream.endStream();
    const sent = replies();
    assert.equal(sent.length, 3);
    for (const typing of sent.slice(0, 2)) {
      assert.equal(typing.entities!.length, 1);
      assert.deepEqual(typing.entities![0], { type: 'streaminfo', ...typing.channelData });
    }
    const final = sent[2]!;
    assert.deepEqual(final.channelData, { streamType: 'final', streamId: stream.streamId, feedbackLoopEnabled: true });
    assert.deepEqual(final.entities, [{ type: 'streaminfo', streamType: 'final', streamId: stream.streamId }, AI_ENTITY]);
  });

  it('11. the final message with attachments', async () => {
    const { stream, replies } = open();
    const card = { type: 'AdaptiveCard', version: '1.5', body: [{ type: 'TextBlock', text: 'hello' }] };
    stream.queueTextChunk('first');
    stream.queueTextChunk('second');
    await stream.waitForQueue();
    stream.setAttachments([adaptiveCard(card)]);
    await stream.endStream();
    const sent = replies();
    const final = sent[2]!;
    assert.equal(final.text, 'firstsecond');
    assert.deepEqual(final.channelData, { streamType: 'final', streamId: stream.streamId, feedbackLoopEnabled: false });
    assert.equal(final.attachments!.length, 1);
    assert.deepEqual(final.attachments![0]!.content, card);
    assert.equal(final.attachments![0]!.contentType, 'application/vnd.microsoft.card.adaptive');
    for (const typing of sent.slice(0, 2)) assert.equal(typing.attachments, undefined, 'attachments go on the final message only');
  });

  describe('LLMClient streaming (§4.2): the pending chunk folds into the final message', () => {
    it('completes a streaming prompt with 2 activities', async () => {
      const clock = new ManualClock();
      const { stream, replies } = open({ intervalMs: 1500, clock });
      stream.setGeneratedByAILabel(true);
      stream.queueTextChunk('hi!');
      stream.queueTextChunk(' how are you?');
      await clock.run(stream.endStream());
      const sent = replies();
      assert.equal(sent.length, 2);
      assert.equal(sent[0]!.type, 'typing');
      assert.equal(sent[0]!.text, 'hi!');
      assert.equal(sent[1]!.type, 'message');
      assert.equal(sent[1]!.text, 'hi! how are you?');
    });

    it('sends startStreamingMessage first', async () => {
      const clock = new ManualClock();
      const { stream, replies } = open({ intervalMs: 1500, clock, feedbackLoop: true });
      stream.queueInformativeUpdate('start');
      stream.queueTextChunk('hi!');
      stream.queueTextChunk(' how are you?');
      await clock.run(stream.endStream());
      const sent = replies();
      assert.equal(sent.length, 2);
      assert.equal(sent[0]!.text, 'start');
      assert.equal(sent[0]!.channelData!.streamType, 'informative');
      assert.equal(sent[1]!.text, 'hi! how are you?');
      assert.equal(sent[1]!.channelData!.feedbackLoopEnabled, true);
    });
  });

  describe('.NET and Python ports (§4.4)', () => {
    it('a send that fails makes endStream reject with a clear error', async () => {
      const { stream } = open();
      fake.script(SERVER_ERROR, SERVER_ERROR);
      stream.queueTextChunk('first');
      await stream.waitForQueue();
      await assert.rejects(stream.endStream(), (error: unknown) => {
        assert.ok(SluiceError.isInstance(error));
        assert.equal(error.code, 'unavailable');
        assert.equal(error.message, 'The Bot Connector service is unavailable (HTTP 500)');
        assert.doesNotMatch(error.message, /secret/);
        assert.equal(error.details.status, 500);
        assert.match(String((error.cause as Error).message), /secret detail/, 'the service detail is kept for logs');
        return true;
      });
    });

    it('unique citations: [1] twice and [2] once give 2 citations with unique positions', async () => {
      const { stream, replies } = open();
      stream.setGeneratedByAILabel(true);
      stream.setCitations([
        { content: 'one', title: 'One' },
        { content: 'two', title: 'Two' },
        { content: 'three', title: 'Three' },
      ]);
      stream.queueTextChunk('A [1] and B [2] and again [1].');
      await stream.waitForQueue();
      await stream.endStream();
      const sent = replies();
      for (const activity of sent) {
        const entity = activity.entities!.find((e) => e.type === 'https://schema.org/Message')!;
        const positions = (entity.citation as { position: number }[]).map((c) => c.position);
        assert.deepEqual(positions, [1, 2]);
      }
    });

    it('citations that the text does not reference are left out of chunks', async () => {
      const { stream, replies } = open();
      stream.setCitations([{ content: 'one' }, { content: 'two' }]);
      stream.queueTextChunk('No citation here. ');
      await stream.waitForQueue();
      stream.queueTextChunk('Now [2].');
      await stream.waitForQueue();
      await stream.endStream();
      const [first, second, final] = replies();
      assert.equal(first!.entities!.length, 1, 'no citation entity before any [n]');
      const cited = second!.entities![1]!;
      assert.equal(cited.additionalType, undefined, 'chunk citation entity has no AI label');
      assert.deepEqual((cited.citation as { position: number }[]).map((c) => c.position), [2]);
      const finalEntity = final!.entities![1]!;
      assert.deepEqual((finalEntity.citation as { position: number }[]).map((c) => c.position), [2]);
    });

    it('the final chunk with feedback (custom type), AI label and sensitivity label', async () => {
      const { stream, replies } = open();
      const label = { type: 'https://schema.org/Message' as const, '@type': 'CreativeWork' as const, name: 'Confidential', description: 'Internal only' };
      stream.setFeedbackLoop(true);
      stream.setFeedbackLoopType('custom');
      stream.setGeneratedByAILabel(true);
      stream.setSensitivityLabel(label);
      stream.queueTextChunk('answer');
      await stream.endStream();
      const final = replies().at(-1)!;
      assert.deepEqual(final.channelData, { streamType: 'final', streamId: stream.streamId, feedbackLoop: { type: 'custom' } });
      assert.deepEqual(final.entities![1], { ...AI_ENTITY, usageInfo: label });
    });

    it('[docN] markers become [N] and the citation positions follow the text', async () => {
      const { stream, replies } = open();
      stream.setCitations([{ content: 'x', title: 'X' }]);
      stream.queueTextChunk('See [doc1]');
      stream.queueTextChunk(' and [DOCS1].');
      await stream.waitForQueue();
      await stream.endStream();
      assert.equal(stream.getMessage(), 'See [1] and [1].');
      assert.equal(replies().at(-1)!.text, 'See [1] and [1].');
    });
  });
});
