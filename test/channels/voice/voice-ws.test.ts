/**
 * The voice WebSocket end to end, over a real socket on 127.0.0.1 port 0: sentences and real
 * audio from the embedded Flite engine as each sentence completes, barge-in with the right
 * history, per-turn allowInterruptions, malformed and out-of-order commands, a TTS failure for
 * one sentence, rails, history retrieval and disconnects.
 */

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { SluiceError } from '../../../src/protocol/errors.ts';
import { defineAction } from '../../../src/runtime/action.ts';
import { VoiceChannel } from '../../../src/channels/voice/channel.ts';
import { FliteTts } from '../../../src/channels/voice/flite.ts';
import { AUDIO_HEADER_BYTES, encodeAudioFrame } from '../../../src/channels/voice/session.ts';
import { pcmRms } from '../../../src/channels/voice/tts.ts';
import { FakeTts, Trace, VoiceClient, call, executorWith, pacedAction, startVoiceServer, type VoiceServer } from './helpers.ts';

const REPLY = 'Sure, here is the forecast. Paris will have light rain in the morning. It clears by noon. Enjoy your day!';
const LONG = `${REPLY} ${'After that the story goes on for a long while with many more words to say. '.repeat(6)}`;

describe('voice WebSocket with the embedded TTS', () => {
  const trace = new Trace();
  const longTrace = new Trace();
  const tts = new FliteTts();
  let server: VoiceServer;
  before(async () => {
    await tts.warmup();
    server = await startVoiceServer({
      executor: executorWith([pacedAction('action_reply', REPLY, 25, trace), pacedAction('action_long', LONG, 25, longTrace)]),
      tts,
      audioLeadMs: 600,
    });
  });
  after(async () => {
    await server.close();
    await tts.close();
  });

  it('streams sentences, then their audio as each sentence completes; the first audio comes before the model has finished', async () => {
    const client = await VoiceClient.connect(server.wsUrl);
    client.send({ type: 'start', id: 'c1', call: call('action_reply') });
    const start = await client.next((m) => m.type === 'turn-start');
    assert.equal(start.id, 'c1');
    assert.equal(start.kind, 'start');
    const end = await client.next((m) => m.type === 'turn-end', 15_000);

    const sentences = client.messages.filter((m) => m.type === 'sentence');
    assert.equal(sentences.map((m) => m.text).join(''), REPLY);
    assert.deepEqual(sentences.map((m) => m.index), [0, 1, 2, 3]);
    const frames = client.frames;
    assert.deepEqual([...new Set(frames.map((f) => f.index))], [0, 1, 2, 3], 'audio for every sentence, in order');
    for (const f of frames) {
      assert.equal(f.version, 1);
      assert.equal(f.encoding, 1);
      assert.equal(f.sampleRate, 16000);
      assert.equal(f.channels, 1);
      assert.equal(f.turn, start.turn);
    }
    for (const index of [0, 1, 2, 3]) {
      const pcm = Buffer.concat(frames.filter((f) => f.index === index).map((f) => f.pcm));
      assert.ok(pcmRms(pcm) > 300, `sentence ${index} is not silent`);
      const ms = (pcm.length / 32000) * 1000;
      const words = sentences[index]!.text.trim().split(/\s+/).length;
      assert.ok(ms > words * 120 && ms < words * 900, `sentence ${index}: ${ms.toFixed(0)} ms for ${words} words`);
      const audioEnd = client.messages.find((m) => m.type === 'audio-end' && m.index === index);
      assert.ok(Math.abs(audioEnd!.durationMs - ms) <= 1);
    }
    // Ordering on the wire: a sentence's text before its audio.
    for (const index of [0, 1, 2, 3]) {
      const textAt = client.received.findIndex((r) => 'json' in r && r.json.type === 'sentence' && r.json.index === index);
      const audioAt = client.received.findIndex((r) => 'audio' in r && r.audio.index === index);
      assert.ok(textAt < audioAt);
    }
    const firstAudio = client.received.find((r) => 'audio' in r)!.at;
    assert.ok(trace.finishedAt > 0);
    assert.ok(firstAudio < trace.finishedAt - 300, `first audio ${(trace.finishedAt - firstAudio).toFixed(0)} ms before the model finished`);
    // …and right after its sentence's last token (the first sentence ends with token 5).
    assert.ok(firstAudio - trace.tokenAt[4]! < 250, `first audio ${(firstAudio - trace.tokenAt[4]!).toFixed(0)} ms after the sentence's last token`);

    assert.equal(end.reason, 'completed');
    assert.equal(end.history.generated, REPLY);
    assert.equal(end.history.spoken, REPLY);
    assert.equal(end.history.interrupted, false);
    assert.deepEqual(end.result, { events: [{ event: 'slot', timestamp: null, name: 'finished', value: true }] });
    assert.deepEqual(server.channel.history.get(end.turnId), end.history);
    await client.close();
  });

  it('interrupt: model aborted through the barge-in path, TTS stopped, queued audio dropped, history keeps only what was heard', async () => {
    const client = await VoiceClient.connect(server.wsUrl);
    client.send({ type: 'start', call: call('action_long') });
    const start = await client.next((m) => m.type === 'turn-start');
    await client.until(() => client.frames.some((f) => f.index === 1));
    const sentBefore = client.messages.filter((m) => m.type === 'sentence').length;
    client.send({ type: 'interrupt', played: { sentence: 0 } });
    const interrupted = await client.next((m) => m.type === 'interrupted');
    const framesAtReply = client.frames.length;
    const end = await client.next((m) => m.type === 'turn-end', 5000);
    await sleep(100);

    assert.equal(interrupted.turnId, start.turnId);
    const h = interrupted.history;
    assert.equal(h.interrupted, true);
    assert.equal(h.reason, 'interrupted');
    assert.deepEqual(h.played, { sentence: 0 });
    assert.equal(h.spoken, 'Sure, here is the forecast. ');
    assert.ok(h.generated.startsWith(h.spoken) && h.generated.length > h.spoken.length, 'generated holds more than was heard');
    assert.ok(h.generated.length < LONG.length, 'the model was stopped early');
    assert.equal(longTrace.aborted, true, "the action's signal aborted (a model call using it stops)");
    assert.ok(h.sentences.some((s: { audio: string }) => s.audio === 'none') || sentBefore <= 3, 'queued sentences were never voiced');
    assert.equal(client.frames.length, framesAtReply, 'no audio after the interrupt was acknowledged');
    assert.equal(end.reason, 'interrupted');
    assert.equal(end.history.spoken, h.spoken);
    assert.deepEqual(end.result, { events: [{ event: 'slot', timestamp: null, name: 'finished', value: false }] }, "the action's events still arrive");
    assert.equal(server.channel.history.get(start.turnId)?.spoken, h.spoken);

    // The socket goes on: a new turn works.
    client.send({ type: 'say', text: 'Okay.' });
    const next = await client.next((m) => m.type === 'turn-end' && m.turnId !== start.turnId, 10_000);
    assert.equal(next.history.spoken, 'Okay.');
    await client.close();
  });
});

describe('voice WebSocket protocol (fake TTS)', () => {
  let server: VoiceServer;
  const slowTrace = new Trace();
  before(async () => {
    server = await startVoiceServer({
      executor: executorWith([
        pacedAction('action_slow', 'One two three. Four five six. Seven eight nine. Ten eleven twelve.', 60, slowTrace),
        pacedAction('action_fast', 'This works. This is broken. This works too.', 2),
        pacedAction('action_secret', 'Hello there. The secret code is 1234. Bye now.', 2),
        defineAction({
          name: 'action_static',
          run(dispatcher) {
            dispatcher.utterMessage({ text: 'A static answer. Spoken like any other.' });
            return [];
          },
        }),
      ]),
      tts: new FakeTts('broken', 50),
      audioLeadMs: Infinity,
      rails: undefined,
    });
  });
  after(() => server.close());

  it('say: a static text is one sentence stream; late interrupts with { ms } and { chars } correct the history', async () => {
    const client = await VoiceClient.connect(server.wsUrl);
    client.send({ type: 'say', text: 'First sentence. Second sentence here.' });
    const end = await client.next((m) => m.type === 'turn-end');
    assert.deepEqual(client.messages.filter((m) => m.type === 'sentence').map((m) => m.text), ['First sentence. ', 'Second sentence here.']);
    assert.equal(end.history.spoken, 'First sentence. Second sentence here.');
    // The audio (1,850 ms) was sent at once: the client is still playing it.
    client.send({ type: 'interrupt', played: { ms: 1200 } });
    const late = await client.next((m) => m.type === 'interrupted');
    assert.equal(late.turnId, end.turnId);
    assert.equal(late.history.spoken, 'First sentence. Second ');
    assert.equal(late.history.interrupted, true);
    assert.equal(server.channel.history.get(end.turnId)?.spoken, 'First sentence. Second ');

    client.send({ type: 'say', text: 'First sentence. Second sentence here.' });
    const second = await client.next((m) => m.type === 'turn-end' && m.turnId !== end.turnId);
    client.send({ type: 'interrupt', played: { chars: 20 } });
    const byChars = await client.next((m) => m.type === 'interrupted' && m.turnId === second.turnId);
    assert.equal(byChars.history.spoken, 'First sentence. Seco');
    await client.close();
  });

  it('text whose audio never started is never written as spoken', async () => {
    const client = await VoiceClient.connect(server.wsUrl);
    client.send({ type: 'start', call: call('action_slow') });
    await client.next((m) => m.type === 'sentence');
    client.send({ type: 'interrupt', played: { chars: 100_000 } });
    const { history } = await client.next((m) => m.type === 'interrupted');
    const voiced = history.sentences.filter((s: { audio: string }) => s.audio !== 'none').map((s: { text: string }) => s.text).join('');
    assert.equal(history.spoken, voiced);
    assert.ok(history.spoken.length <= 'One two three. '.length);
    await client.next((m) => m.type === 'turn-end');
    await client.close();
  });

  it('allowInterruptions: false refuses interrupts with an error, and the turn goes on to the end', async () => {
    const client = await VoiceClient.connect(server.wsUrl);
    client.send({ type: 'start', call: call('action_slow'), allowInterruptions: false });
    const start = await client.next((m) => m.type === 'turn-start');
    assert.equal(start.allowInterruptions, false);
    await client.next((m) => m.type === 'sentence');
    client.send({ type: 'interrupt' });
    const error = await client.next((m) => m.type === 'error');
    assert.equal(error.code, 'failed_precondition');
    assert.match(error.message, /interruptions are disabled/);
    const end = await client.next((m) => m.type === 'turn-end', 10_000);
    assert.equal(end.reason, 'completed');
    assert.equal(end.history.interrupted, false);
    assert.equal(end.history.spoken, 'One two three. Four five six. Seven eight nine. Ten eleven twelve.');
    await client.close();
  });

  it('malformed and out-of-order messages get errors; the running turn is not corrupted', async () => {
    const client = await VoiceClient.connect(server.wsUrl);
    client.send({ type: 'interrupt' });
    assert.equal((await client.next((m) => m.type === 'error')).code, 'failed_precondition');
    client.send({ type: 'start', call: call('action_slow') });
    await client.next((m) => m.type === 'turn-start');
    const from = client.messages.length;
    const bad: [unknown, string, RegExp][] = [
      ['{not json', 'invalid_argument', /not valid JSON/],
      [[1, 2], 'invalid_argument', /JSON object/],
      [{ kind: 'start' }, 'invalid_argument', /'type' is required/],
      [{ type: 'dance' }, 'invalid_argument', /unknown type "dance"/],
      [{ type: 'start', call: call('action_slow') }, 'failed_precondition', /still speaking/],
      [{ type: 'say', text: 'hi' }, 'failed_precondition', /still speaking/],
      [{ type: 'interrupt', played: { seconds: 2 } }, 'invalid_argument', /played/],
      [{ type: 'interrupt', played: { chars: -1 } }, 'invalid_argument', /played.chars/],
      [{ type: 'history', limit: 0 }, 'invalid_argument', /limit/],
    ];
    for (const [message] of bad) {
      const before = client.messages.length;
      client.send(typeof message === 'string' ? message : JSON.stringify(message));
      await client.next((m) => m.type === 'error', 2000, before);
    }
    client.socket.send(Buffer.from([1, 2, 3]), { binary: true });
    await client.until(() => client.messages.slice(from).filter((m) => m.type === 'error').length === bad.length + 1);
    const errors = client.messages.slice(from).filter((m) => m.type === 'error');
    bad.forEach(([, code, pattern], i) => {
      assert.equal(errors[i]!.code, code);
      assert.match(errors[i]!.message, pattern);
    });
    assert.match(errors.at(-1)!.message, /Binary frames/);
    const end = await client.next((m) => m.type === 'turn-end', 10_000);
    assert.equal(end.reason, 'completed');
    assert.equal(end.history.generated, 'One two three. Four five six. Seven eight nine. Ten eleven twelve.');
    // Bad calls are refused before a turn starts.
    const idle = client.messages.length;
    client.send({ type: 'start' });
    client.send({ type: 'start', call: call('action_missing') });
    client.send({ type: 'start', call: { next_action: 'action_slow' } });
    client.send({ type: 'say', text: '   ' });
    client.send({ type: 'start', call: call('action_slow'), allowInterruptions: 'no' });
    await client.until(() => client.messages.slice(idle).filter((m) => m.type === 'error').length === 5);
    assert.deepEqual(client.messages.slice(idle).map((m) => m.code), ['invalid_argument', 'not_found', 'invalid_argument', 'invalid_argument', 'invalid_argument']);
    assert.equal(client.messages.slice(idle).filter((m) => m.type === 'turn-start').length, 0);
    await client.close();
  });

  it('a TTS failure for one sentence is reported; its text still reaches text consumers; the others are spoken', async () => {
    const client = await VoiceClient.connect(server.wsUrl);
    client.send({ type: 'start', call: call('action_fast') });
    const start = await client.next((m) => m.type === 'turn-start');
    const run = server.executor.getRun(start.runId)!;
    const tokenText = (async () => {
      let text = '';
      for await (const e of run.subscribe()) if (e.type === 'chunk') text += e.text ?? '';
      return text;
    })();
    const end = await client.next((m) => m.type === 'turn-end');
    const failure = client.messages.find((m) => m.type === 'tts-error');
    assert.deepEqual({ index: failure?.index, message: failure?.message }, { index: 1, message: 'Speech synthesis failed' });
    assert.deepEqual(client.messages.filter((m) => m.type === 'sentence').map((m) => m.text), ['This works. ', 'This is broken. ', 'This works too.']);
    assert.deepEqual([...new Set(client.frames.map((f) => f.index))], [0, 2]);
    assert.equal(await tokenText, 'This works. This is broken. This works too.');
    assert.equal(end.reason, 'completed');
    assert.equal(end.history.spoken, 'This works. This works too.');
    assert.deepEqual(end.history.sentences.map((s: { audio: string }) => s.audio), ['complete', 'failed', 'complete']);
    await client.close();
  });

  it('static (utterMessage) responses are spoken like streamed ones', async () => {
    const client = await VoiceClient.connect(server.wsUrl);
    client.send({ type: 'start', call: call('action_static') });
    const end = await client.next((m) => m.type === 'turn-end');
    assert.deepEqual(client.messages.filter((m) => m.type === 'sentence').map((m) => m.text), ['A static answer. ', 'Spoken like any other.']);
    assert.deepEqual([...new Set(client.frames.map((f) => f.index))], [0, 1]);
    assert.equal(end.history.spoken, 'A static answer. Spoken like any other.');
    await client.close();
  });

  it('history is retrievable over the socket and over HTTP', async () => {
    const client = await VoiceClient.connect(server.wsUrl);
    client.send({ type: 'say', text: 'Remember me.' });
    const end = await client.next((m) => m.type === 'turn-end');
    client.send({ type: 'history' });
    const list = await client.next((m) => m.type === 'history');
    assert.deepEqual(list.entries.map((e: { id: string }) => e.id), [end.turnId]);
    const one = await fetch(`${server.url}/voice/history/${end.turnId}`);
    assert.equal(one.status, 200);
    assert.equal(((await one.json()) as { spoken: string }).spoken, 'Remember me.');
    const byRun = (await (await fetch(`${server.url}/voice/history?runId=${end.runId}`)).json()) as { entries: unknown[] };
    assert.equal(byRun.entries.length, 1);
    assert.equal((await fetch(`${server.url}/voice/history/nope`)).status, 404);
    await client.close();
  });

  it('a disconnect mid-turn cancels the run and records what was heard', async () => {
    const client = await VoiceClient.connect(server.wsUrl);
    client.send({ type: 'start', call: call('action_slow') });
    const start = await client.next((m) => m.type === 'turn-start');
    await client.next((m) => m.type === 'sentence');
    const run = server.executor.getRun(start.runId)!;
    await client.close();
    const end = await run.done;
    assert.equal(end.reason, 'cancelled');
    await sleep(20);
    const entry = server.channel.history.get(start.turnId)!;
    assert.equal(entry.reason, 'disconnected');
    assert.equal(entry.interrupted, true);
    assert.ok(entry.generated.length > 0);
  });
});

describe('voice WebSocket with output rails', () => {
  let server: VoiceServer;
  before(async () => {
    server = await startVoiceServer({
      executor: executorWith([pacedAction('action_secret', 'Hello there. The secret code is 1234. Bye now. And more.', 5)]),
      tts: new FakeTts(null, 10),
      audioLeadMs: Infinity,
      rails: { rail: ({ text }) => (/secret/.test(text) ? { action: 'block', reason: 'secret' } : 'allow'), policyMessage: 'I cannot share that.' },
    });
  });
  after(() => server.close());

  it('check-first: a blocked sentence is never sent or spoken; the policy message is; the run is cancelled', async () => {
    const client = await VoiceClient.connect(server.wsUrl);
    client.send({ type: 'start', call: call('action_secret') });
    const end = await client.next((m) => m.type === 'turn-end');
    const sentences = client.messages.filter((m) => m.type === 'sentence').map((m) => m.text);
    assert.deepEqual(sentences, ['Hello there. ', 'I cannot share that.']);
    assert.ok(!JSON.stringify(client.messages).includes('1234'));
    const error = client.messages.find((m) => m.type === 'run-error');
    assert.deepEqual({ code: error?.code, reason: error?.reason }, { code: 'permission_denied', reason: 'output_rail_blocked' });
    assert.deepEqual([...new Set(client.frames.map((f) => f.index))], [0, 1], 'the policy message is spoken');
    assert.equal(end.reason, 'blocked');
    assert.equal(end.history.spoken, 'Hello there. I cannot share that.');
    assert.equal(server.executor.getRun(end.runId)?.endReason, 'cancelled');
    await client.close();
  });
});

describe('VoiceChannel options and audio frames', () => {
  it('rejects bad options at construction, naming them', () => {
    const executor = executorWith([]);
    const bad: [Record<string, unknown>, RegExp][] = [
      [{}, /'executor'/],
      [{ executor, tts: {} }, /'tts'/],
      [{ executor, audioLeadMs: -1 }, /'audioLeadMs'/],
      [{ executor, allowInterruptions: 1 }, /'allowInterruptions'/],
      [{ executor, segmenter: { maxLength: 0 } }, /maxLength/],
      [{ executor, rails: { rail: 5 } }, /'rail'/],
      [{ executor, rails: { rail: () => 'allow', cancel: () => {} } }, /rails.cancel/],
      [{ executor, history: [] }, /'history'/],
      [{ executor, textFilter: 'strip' }, /'textFilter'/],
      [{ executor, maxSayLength: 0 }, /'maxSayLength'/],
      [{ executor, voice: 'slt' }, /unknown option 'voice'/],
    ];
    for (const [options, pattern] of bad) {
      assert.throws(() => new VoiceChannel(options as never), (e: unknown) => SluiceError.isInstance(e) && e.code === 'invalid_argument' && pattern.test(e.message), JSON.stringify(Object.keys(options)));
    }
  });

  it('encodes the documented 20-byte header', () => {
    const frame = encodeAudioFrame(7, 3, 2, { format: { encoding: 'pcm_s16le', sampleRate: 16000, channels: 1 }, data: new Uint8Array([1, 2, 3, 4]), durationMs: 0.125 });
    assert.equal(AUDIO_HEADER_BYTES, 20);
    assert.deepEqual([...frame.subarray(0, 20)], [1, 1, 1, 0, 7, 0, 0, 0, 3, 0, 0, 0, 0x80, 0x3e, 0, 0, 2, 0, 0, 0]);
    assert.deepEqual([...frame.subarray(20)], [1, 2, 3, 4]);
  });
});
