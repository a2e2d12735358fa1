/**
 * Sentence consumers of a run: streamed and static messages, beside token consumers; the pull API;
 * stall flush; cancel; resume; encoders; bad options.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { SluiceError } from '../../../src/protocol/errors.ts';
import { defineAction, endStream, message } from '../../../src/runtime/action.ts';
import { Run } from '../../../src/runtime/run.ts';
import { encodeSentenceJson, encodeSentenceSse, sentencesOf } from '../../../src/channels/voice/sentences.ts';
import { SentencePuller } from '../../../src/channels/voice/puller.ts';
import { call, collect, executorWith, pacedAction, texts, tokens } from './helpers.ts';

const STORY = 'Hello there. Dr. Jones met me at 10 a.m. today. It weighs approx. 5 kg. That is all.';

describe('sentencesOf', () => {
  it('derives sentences from a streamed message while a token consumer reads the same run', async () => {
    const executor = executorWith([pacedAction('action_story', STORY, 1)]);
    const run = executor.start(call('action_story'));
    const [events, sentences] = await Promise.all([collect(run.subscribe()), collect(sentencesOf(run))]);
    assert.equal(texts(events), STORY, 'the token consumer gets every chunk');
    assert.deepEqual(
      sentences.map((s) => s.text),
      ['Hello there. ', 'Dr. Jones met me at 10 a.m. today. ', 'It weighs approx. 5 kg. ', 'That is all.'],
    );
    assert.deepEqual(sentences.map((s) => s.index), [0, 1, 2, 3]);
    const responseId = events.find((e) => e.type === 'stream-start')!.type === 'stream-start' ? (events.find((e) => e.type === 'stream-start') as { responseId: string }).responseId : '';
    for (const s of sentences) {
      assert.equal(s.type, 'sentence');
      assert.equal(s.runId, run.id);
      assert.equal(s.responseId, responseId);
      assert.equal(s.source, 'stream');
      assert.ok(s.seq > 0);
    }
    await executor.close();
  });

  it('releases a sentence as soon as the next one starts, not at the end of the stream', async () => {
    const executor = executorWith([pacedAction('action_slow', 'First sentence here. Second one comes much later.', 40)]);
    const run = executor.start(call('action_slow'));
    const started = performance.now();
    const reader = sentencesOf(run);
    const first = await reader.next();
    const firstAt = performance.now() - started;
    assert.equal(first.value?.text, 'First sentence here. ');
    await run.done;
    const total = performance.now() - started;
    assert.ok(firstAt < total - 150, `first sentence after ${firstAt.toFixed(0)} ms, run took ${total.toFixed(0)} ms`);
    assert.equal((await reader.next()).value?.text, 'Second one comes much later.');
    assert.equal((await reader.next()).done, true);
    await executor.close();
  });

  it('delivers a static message as one sentence stream of its own, in order with streamed ones', async () => {
    const executor = executorWith([
      defineAction({
        name: 'action_mixed',
        async *stream() {
          yield 'Streamed first. ';
          yield 'Streamed second.';
          yield endStream();
          yield message({ text: 'A static reply. It has two sentences.' });
          yield 'Streamed again.';
        },
      }),
    ]);
    const run = executor.start(call('action_mixed'));
    const sentences = await collect(sentencesOf(run));
    assert.deepEqual(
      sentences.map((s) => [s.index, s.source, s.text]),
      [
        [0, 'stream', 'Streamed first. '],
        [1, 'stream', 'Streamed second.'],
        [2, 'message', 'A static reply. '],
        [3, 'message', 'It has two sentences.'],
        [4, 'stream', 'Streamed again.'],
      ],
    );
    const messageSeq = run.events().find((e) => e.type === 'message')!.seq;
    assert.equal(sentences[2]!.responseId, `msg-${messageSeq}`);
    assert.equal(sentences[3]!.responseId, `msg-${messageSeq}`);
    assert.notEqual(sentences[4]!.responseId, sentences[0]!.responseId, 'a new stream has its own id');
    await executor.close();
  });

  it('a Rasa-style utterMessage-only action is spoken like any other', async () => {
    const executor = executorWith([
      defineAction({
        name: 'action_static',
        run(dispatcher) {
          dispatcher.utterMessage({ text: 'Our store opens at 9. See you then!' });
          dispatcher.utterMessage({ image: 'https://example.com/x.png' });
          return [];
        },
      }),
    ]);
    const sentences = await collect(sentencesOf(executor.start(call('action_static'))));
    assert.deepEqual(sentences.map((s) => s.text), ['Our store opens at 9. ', 'See you then!']);
    const without = await collect(sentencesOf(executor.start(call('action_static')), { messages: false }));
    assert.deepEqual(without, []);
    await executor.close();
  });

  it('drops the unfinished sentence of a barged-in stream (or flushes it when asked)', async () => {
    for (const onCancel of ['drop', 'flush'] as const) {
      const executor = executorWith([pacedAction('action_long', 'One full sentence. And then a long unfinished one that goes on and on', 15)]);
      const run = executor.start(call('action_long'));
      const sentences: string[] = [];
      for await (const s of sentencesOf(run, { onCancel })) {
        sentences.push(s.text);
        if (sentences.length > 1) continue;
        await sleep(60);
        assert.equal(executor.ack(s.responseId), true);
      }
      await run.done;
      if (onCancel === 'drop') assert.deepEqual(sentences, ['One full sentence. ']);
      else {
        assert.equal(sentences.length, 2);
        assert.match(sentences[1]!, /^And\b/);
      }
      await executor.close();
    }
  });

  it('stall flush: pending text of a stalled model is released after stallFlushMs', async () => {
    const run = new Run();
    run.emit({ type: 'run-start', action: 'x', at: 0 });
    run.emit({ type: 'stream-start', responseId: 'a'.repeat(32) });
    run.emit({ type: 'chunk', responseId: 'a'.repeat(32), text: 'I am thinking about it' });
    const reader = sentencesOf(run, { stallFlushMs: 50 });
    const started = performance.now();
    const first = await reader.next();
    assert.equal(first.value?.text, 'I am thinking about ');
    assert.ok(performance.now() - started >= 40);
    run.emit({ type: 'chunk', responseId: 'a'.repeat(32), text: ' now.' });
    run.emit({ type: 'stream-end', responseId: 'a'.repeat(32), reason: 'completed' });
    run.emit({ type: 'result', events: [], responses: [] });
    run.emit({ type: 'run-end', reason: 'completed' });
    assert.equal((await reader.next()).value?.text, 'it now.');
    assert.equal((await reader.next()).done, true);
  });

  it('resumes after a sentence index; stops reading on abort without cancelling the run', async () => {
    const executor = executorWith([pacedAction('action_story', STORY, 1)]);
    const run = executor.start(call('action_story'));
    await run.done;
    const resumed = await collect(sentencesOf(run, { afterIndex: 1 }));
    assert.deepEqual(resumed.map((s) => s.index), [2, 3]);

    const slow = executorWith([pacedAction('action_slow', 'One. Two. Three. Four. Five.', 30)]);
    const live = slow.start(call('action_slow'));
    const stop = new AbortController();
    const got: string[] = [];
    for await (const s of sentencesOf(live, { signal: stop.signal })) {
      got.push(s.text);
      stop.abort();
    }
    assert.deepEqual(got, ['One. ']);
    const end = await live.done;
    assert.equal(end.reason, 'completed', 'leaving the sentence reader is not a cancel');
    await executor.close();
    await slow.close();
  });

  it('encodes sentences for SSE and WebSocket', () => {
    const s = { type: 'sentence' as const, runId: 'r', responseId: 'x', index: 3, text: 'Hi "you".\n', source: 'stream' as const, seq: 7 };
    assert.equal(encodeSentenceSse(s), `id: 3\nevent: sentence\ndata: ${JSON.stringify(s)}\n\n`);
    assert.ok(!encodeSentenceSse(s).slice(0, -2).includes('\n\n'), 'a newline in the text cannot break the frame');
    assert.deepEqual(JSON.parse(encodeSentenceJson(s)), s);
  });

  it('rejects bad options at once, naming them', () => {
    const run = new Run();
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ stallFlushMs: -1 }, /stallFlushMs/],
      [{ maxLength: 0 }, /maxLength/],
      [{ mode: 'nope' }, /'mode'/],
      [{ onCancel: 'keep' }, /onCancel/],
      [{ afterIndex: 1.5 }, /afterIndex/],
      [{ messages: 'yes' }, /messages/],
      [{ colour: 'red' }, /unknown option 'colour'/],
    ];
    for (const [options, pattern] of bad) {
      assert.throws(() => sentencesOf(run, options as never), (e: unknown) => SluiceError.isInstance(e) && e.code === 'invalid_argument' && pattern.test(e.message));
    }
    assert.throws(() => sentencesOf(42 as never), /expected a run/);
  });
});

describe('SentencePuller', () => {
  it('nextSentence() resolves each sentence in turn, then null', async () => {
    const executor = executorWith([pacedAction('action_story', STORY, 2)]);
    const puller = new SentencePuller(executor.start(call('action_story')));
    const got: string[] = [];
    for (let s = await puller.nextSentence(); s !== null; s = await puller.nextSentence()) got.push(s.text);
    assert.equal(got.join(''), STORY);
    assert.equal(got.length, 4);
    assert.equal(await puller.nextSentence(), null, 'stays null');
    assert.equal(puller.ended, true);
    await executor.close();
  });

  it('serves concurrent calls in order; close() makes pending calls resolve null', async () => {
    const executor = executorWith([pacedAction('action_story', STORY, 2)]);
    const puller = new SentencePuller(executor.start(call('action_story')));
    const [a, b] = await Promise.all([puller.nextSentence(), puller.nextSentence()]);
    assert.equal(a?.index, 0);
    assert.equal(b?.index, 1);
    const pending = puller.nextSentence();
    puller.close();
    const c = await pending;
    assert.ok(c === null || c.index === 2);
    assert.equal(await puller.nextSentence(), null);
    await executor.close();
  });

  it('rejects bad options at construction', () => {
    assert.throws(() => new SentencePuller(new Run(), { minFirstLength: -3 }), /minFirstLength/);
  });

  it('tokens() helper splits without losing text', () => {
    assert.equal(tokens(STORY).join(''), STORY);
  });
});
