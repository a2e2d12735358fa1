/**
 * Voice turn-taking over a real socket on 127.0.0.1 port 0, with real audio from the embedded
 * Flite engine: a tool call releases the sentence before it (its audio comes while the tool
 * runs); pause → resume joins the audio exactly (byte-identical to an uninterrupted rendering);
 * pause → interrupt keeps what was heard at the pause; a pause resumes by itself after the
 * false-interruption timeout; the HTTP controls; per-turn segmenter options; bad commands.
 */

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { FliteTts } from '../../../src/channels/voice/flite.ts';
import type { AudioFrame } from '../../../src/channels/voice/session.ts';
import { VoiceClient, call, executorWith, pacedAction, startVoiceServer, type VoiceServer } from './helpers.ts';
import { AFTER_TOOL, BEFORE_TOOL, TOOL_MS, toolAction, toolTimes } from './sentence-actions.ts';

const TEXT = 'Good morning, this is your assistant. The shop opens at nine today. See you there soon!';

/** The PCM of one turn's frames, in order, and a check that no frame is missing or repeated. */
function pcmOf(frames: AudioFrame[], turn: number): Buffer {
  const own = frames.filter((f) => f.turn === turn);
  const next = new Map<number, number>();
  for (const f of own) {
    assert.equal(f.chunk, next.get(f.index) ?? 0, `sentence ${f.index}: chunks in order, none missing or repeated`);
    next.set(f.index, f.chunk + 1);
  }
  return Buffer.concat(own.map((f) => f.pcm));
}

/** Index in `client.received` of the first JSON message matching `predicate`. */
function positionOf(client: VoiceClient, predicate: (m: Record<string, any>) => boolean): number {
  return client.received.findIndex((r) => 'json' in r && predicate(r.json));
}

/** Audio frames received between two positions of `client.received`. */
function framesBetween(client: VoiceClient, from: number, to: number): AudioFrame[] {
  return client.received.slice(from, to).flatMap((r) => ('audio' in r ? [r.audio] : []));
}

describe('voice turn-taking (embedded TTS)', () => {
  const tts = new FliteTts();
  let server: VoiceServer;
  let reference: Buffer;
  before(async () => {
    await tts.warmup();
    server = await startVoiceServer({
      executor: executorWith([toolAction(), pacedAction('action_text', TEXT, 5)]),
      tts,
      audioLeadMs: 300,
      falseInterruptionTimeoutMs: 400,
    });
    // The uninterrupted rendering every paused one is compared with.
    const client = await VoiceClient.connect(server.wsUrl);
    client.send({ type: 'say', text: TEXT });
    const end = await client.next((m) => m.type === 'turn-end', 20_000);
    assert.equal(end.reason, 'completed');
    const start = client.messages.find((m) => m.type === 'turn-start')!;
    reference = pcmOf(client.frames, start.turn);
    assert.ok(reference.length > 32_000, 'more than a second of audio');
    await client.close();
  });
  after(async () => {
    await server.close();
    await tts.close();
  });

  it('a tool call releases the sentence before it: its sentence and audio arrive while the tool runs', async () => {
    const client = await VoiceClient.connect(server.wsUrl);
    client.send({ type: 'start', call: call('action_tool', { sender: 'voice-tool' }) });
    const first = await client.next((m) => m.type === 'sentence', TOOL_MS * 3);
    assert.equal(first.text, BEFORE_TOOL);
    await client.until(() => client.frames.length > 0, TOOL_MS * 3);
    const audioAt = client.received.find((r) => 'audio' in r)!.at;
    const times = toolTimes.get('voice-tool')!;
    assert.ok(audioAt < times.endAt || times.endAt < 0, 'first audio before the tool ended');
    assert.ok(audioAt - times.startAt < TOOL_MS / 2, `first audio ${Math.round(audioAt - times.startAt)} ms after tool-start`);
    const end = await client.next((m) => m.type === 'turn-end', 20_000);
    assert.equal(end.reason, 'completed');
    assert.deepEqual(client.messages.filter((m) => m.type === 'sentence').map((m) => m.text), [BEFORE_TOOL, AFTER_TOOL]);
    assert.equal(end.history.spoken, BEFORE_TOOL + AFTER_TOOL);
    await client.close();
  });

  it('pause stops the audio at once; resume goes on from the exact byte: the audio equals an uninterrupted rendering', async () => {
    const client = await VoiceClient.connect(server.wsUrl);
    client.send({ type: 'say', text: TEXT });
    const start = await client.next((m) => m.type === 'turn-start');
    await client.until(() => client.frames.length >= 3, 10_000);
    client.send({ type: 'pause' });
    const paused = await client.next((m) => m.type === 'paused');
    assert.equal(paused.turnId, start.turnId);
    assert.ok('ms' in paused.played);
    await sleep(250);
    const pausedAt = positionOf(client, (m) => m.type === 'paused');
    assert.equal(framesBetween(client, pausedAt, client.received.length).length, 0, 'no audio while paused');
    assert.equal(client.messages.some((m) => m.type === 'resumed'), false, 'not resumed before the timeout');
    client.send({ type: 'resume' });
    const resumed = await client.next((m) => m.type === 'resumed');
    assert.equal(resumed.auto, false);
    const end = await client.next((m) => m.type === 'turn-end', 20_000);
    assert.equal(end.reason, 'completed');
    assert.ok(pcmOf(client.frames, start.turn).equals(reference), 'byte-identical to the uninterrupted rendering');
    assert.deepEqual(end.history.marks.map((m: { type: string }) => m.type), ['pause', 'resume']);
    assert.equal(end.history.marks[0].spoken, paused.spoken);
    assert.equal(end.history.marks[1].auto, false);
    assert.equal(end.history.spoken, TEXT);
    assert.equal(end.history.interrupted, false);
    await client.close();
  });

  it('pause → interrupt: what was heard at the pause is what the history keeps; nothing is sent after the pause', async () => {
    const client = await VoiceClient.connect(server.wsUrl);
    client.send({ type: 'start', call: call('action_text') });
    await client.next((m) => m.type === 'turn-start');
    // Past the first sentence's audio, so that something was heard.
    await client.next((m) => m.type === 'audio-end', 10_000);
    await sleep(400);
    client.send({ type: 'pause' });
    const paused = await client.next((m) => m.type === 'paused');
    assert.notEqual(paused.spoken, '');
    assert.ok(TEXT.startsWith(paused.spoken));
    await sleep(100);
    client.send({ type: 'interrupt' });
    const interrupted = await client.next((m) => m.type === 'interrupted');
    const from = positionOf(client, (m) => m.type === 'paused');
    const to = positionOf(client, (m) => m.type === 'interrupted');
    assert.equal(framesBetween(client, from, to).length, 0, 'no audio between pause and interrupt');
    assert.equal(interrupted.history.spoken, paused.spoken);
    assert.deepEqual(interrupted.history.played, paused.played);
    assert.equal(interrupted.history.interrupted, true);
    assert.deepEqual(interrupted.history.marks.map((m: { type: string }) => m.type), ['pause']);
    // Every sentence counted as heard had audio sent before the pause.
    const heardBefore = new Set(framesBetween(client, 0, from).map((f) => f.index));
    const spokenSentences = interrupted.history.sentences.filter((s: { text: string }) => paused.spoken.includes(s.text.trim()));
    assert.ok(spokenSentences.length > 0 && spokenSentences.every((s: { index: number }) => heardBefore.has(s.index)));
    const end = await client.next((m) => m.type === 'turn-end', 10_000);
    assert.equal(end.reason, 'interrupted');
    assert.equal(end.history.spoken, paused.spoken);
    await client.close();
  });

  it('a pause with neither resume nor interrupt resumes by itself after the false-interruption timeout; the audio still joins exactly', async () => {
    const client = await VoiceClient.connect(server.wsUrl);
    client.send({ type: 'say', text: TEXT });
    const start = await client.next((m) => m.type === 'turn-start');
    await client.until(() => client.frames.length >= 2, 10_000);
    client.send({ type: 'pause', played: { sentence: 0 } });
    const paused = await client.next((m) => m.type === 'paused');
    assert.deepEqual(paused.played, { sentence: 0 });
    const pausedAt = client.received[positionOf(client, (m) => m.type === 'paused')]!.at;
    const resumed = await client.next((m) => m.type === 'resumed', 5000);
    const resumedAt = client.received[positionOf(client, (m) => m.type === 'resumed')]!.at;
    assert.equal(resumed.auto, true);
    assert.ok(resumedAt - pausedAt >= 300, `resumed ${Math.round(resumedAt - pausedAt)} ms after the pause (timeout 400 ms)`);
    const end = await client.next((m) => m.type === 'turn-end', 20_000);
    assert.ok(pcmOf(client.frames, start.turn).equals(reference));
    assert.deepEqual(end.history.marks.map((m: { type: string; auto?: boolean }) => [m.type, m.auto]), [['pause', undefined], ['resume', true]]);
    await client.close();
  });

  it('HTTP controls: pause, resume and interrupt a socket by its session id', async () => {
    const client = await VoiceClient.connect(server.wsUrl);
    client.send({ type: 'say', text: TEXT });
    const start = await client.next((m) => m.type === 'turn-start');
    assert.match(start.sessionId, /^[0-9a-f-]{36}$/);
    const post = (command: string, body?: unknown) =>
      fetch(`${server.url}/voice/sessions/${start.sessionId}/${command}`, {
        method: 'POST',
        ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
      });
    await client.until(() => client.frames.length >= 2, 10_000);
    const paused = await post('pause');
    assert.equal(paused.status, 200);
    const pauseBody = (await paused.json()) as Record<string, any>;
    assert.equal(pauseBody.turnId, start.turnId);
    assert.equal((await client.next((m) => m.type === 'paused')).turnId, start.turnId);
    assert.equal((await post('pause')).status, 409, 'already paused');
    const resumed = await post('resume');
    assert.equal(resumed.status, 200);
    assert.equal(((await resumed.json()) as Record<string, any>).auto, false);
    assert.equal((await post('resume')).status, 409, 'not paused');
    const interrupted = await post('interrupt', { played: { chars: 10 } });
    assert.equal(interrupted.status, 200);
    const body = (await interrupted.json()) as Record<string, any>;
    assert.equal(body.spoken, TEXT.slice(0, 10));
    assert.equal(body.history.interrupted, true);
    assert.equal((await client.next((m) => m.type === 'interrupted')).history.spoken, TEXT.slice(0, 10));
    const bad = await post('pause', { played: { ms: -1 } });
    assert.equal(bad.status, 400);
    const unknownField = await post('pause', { playd: 1 });
    assert.equal(unknownField.status, 400);
    assert.match(((await unknownField.json()) as Record<string, any>).error, /unknown field 'playd'/);
    const missing = await fetch(`${server.url}/voice/sessions/nope/pause`, { method: 'POST' });
    assert.equal(missing.status, 404);
    await client.close();
  });
});

describe('voice socket commands', () => {
  let server: VoiceServer;
  before(async () => {
    server = await startVoiceServer({ executor: executorWith([pacedAction('action_text', TEXT, 2)]), audioLeadMs: Infinity });
  });
  after(() => server.close());

  it('per-turn segmenter options apply to that turn; bad ones are refused naming the field', async () => {
    const client = await VoiceClient.connect(server.wsUrl);
    client.send({ type: 'start', call: call('action_text'), segmenter: { minFirstLength: 60 } });
    await client.next((m) => m.type === 'turn-end', 20_000);
    const sentences = client.messages.filter((m) => m.type === 'sentence').map((m) => m.text);
    assert.deepEqual(sentences, ['Good morning, this is your assistant. The shop opens at nine today. ', 'See you there soon!']);
    client.send({ type: 'say', text: 'Hi.', segmenter: { maxLength: 0 } });
    const error = await client.next((m) => m.type === 'error');
    assert.equal(error.code, 'invalid_argument');
    assert.match(error.message, /say: segmenter.*'maxLength'/);
    client.send({ type: 'start', call: call('action_text'), segmenter: { mode: 'regex' } });
    const second = await client.next((m) => m.type === 'error' && m !== error);
    assert.match(second.message, /start: segmenter.*'mode'/);
    await client.close();
  });

  it('pause and resume out of place get errors naming the problem; the socket carries on', async () => {
    const client = await VoiceClient.connect(server.wsUrl);
    client.send({ type: 'resume' });
    assert.match((await client.next((m) => m.type === 'error')).message, /resume: no turn is paused/);
    client.send({ type: 'pause' });
    assert.match((await client.next((m) => m.type === 'error' && m.message.startsWith('pause:'))).message, /pause: no turn is speaking/);
    client.send({ type: 'say', text: TEXT });
    await client.next((m) => m.type === 'turn-start');
    client.send({ type: 'pause', played: { seconds: 1 } });
    assert.match((await client.next((m) => m.type === 'error' && /played/.test(m.message))).message, /pause: 'played' must have exactly one of/);
    client.send({ type: 'say', text: 'x', allowInterruptions: false });
    await client.next((m) => m.type === 'error' && /still speaking/.test(m.message));
    client.send({ type: 'interrupt' });
    await client.next((m) => m.type === 'interrupted');
    client.send({ type: 'say', text: TEXT, allowInterruptions: false });
    await client.next((m) => m.type === 'turn-start' && m.allowInterruptions === false);
    client.send({ type: 'pause' });
    const refused = await client.next((m) => m.type === 'error' && /disabled/.test(m.message));
    assert.equal(refused.code, 'failed_precondition');
    assert.equal(typeof refused.turnId, 'string');
    const end = await client.next((m) => m.type === 'turn-end' && m.reason === 'completed', 20_000);
    assert.equal(end.history.marks, undefined, 'never paused');
    await client.close();
  });
});
