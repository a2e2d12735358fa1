/**
 * Text-to-speech: the embedded Flite engine really speaks (offline, non-silent 16 kHz PCM of a
 * plausible length), stops on abort, and refuses bad options; the OpenAI-compatible adapter
 * against a local fake `/audio/speech` server.
 */

import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { SluiceError } from '../../../src/protocol/errors.ts';
import { FliteTts } from '../../../src/channels/voice/flite.ts';
import { OpenAiSpeechTts } from '../../../src/channels/voice/openai-speech.ts';
import { chunkPcm, pcmRms, speakableText, type AudioChunk } from '../../../src/channels/voice/tts.ts';

async function synth(engine: { synthesize(t: string, o: { signal: AbortSignal }): AsyncIterable<AudioChunk> }, text: string, signal = new AbortController().signal): Promise<AudioChunk[]> {
  const out: AudioChunk[] = [];
  for await (const c of engine.synthesize(text, { signal })) out.push(c);
  return out;
}

function joined(chunks: AudioChunk[]): Uint8Array {
  return Buffer.concat(chunks.map((c) => c.data));
}

describe('FliteTts (embedded)', () => {
  const tts = new FliteTts();
  after(() => tts.close());

  it('speaks: non-silent 16 kHz PCM16 whose duration fits the text', async () => {
    const text = 'Hello! The weather in Paris is light rain in the morning, clearing by noon.';
    const chunks = await synth(tts, text);
    assert.ok(chunks.length > 5, 'audio comes in ~100 ms chunks');
    for (const c of chunks) {
      assert.deepEqual(c.format, { encoding: 'pcm_s16le', sampleRate: 16000, channels: 1 });
      assert.equal(c.data.length % 2, 0);
      assert.ok(Math.abs(c.durationMs - (c.data.length / 32)) < 1e-9);
    }
    const pcm = joined(chunks);
    const seconds = pcm.length / 2 / 16000;
    assert.ok(seconds > 2.5 && seconds < 10, `duration ${seconds.toFixed(2)} s for ${text.split(' ').length} words`);
    assert.ok(pcmRms(pcm) > 300, `RMS ${pcmRms(pcm).toFixed(0)} (silence is 0)`);
    // Speech has pauses and loud parts: the loudness of 50 ms windows varies a lot.
    const windows: number[] = [];
    for (let at = 0; at + 1600 <= pcm.length; at += 1600) windows.push(pcmRms(pcm.subarray(at, at + 1600)));
    assert.ok(Math.min(...windows) < Math.max(...windows) / 5, 'not a constant signal');
  });

  it('a longer text gives longer audio; empty or punctuation-only text gives none', async () => {
    const short = joined(await synth(tts, 'Yes.')).length;
    const long = joined(await synth(tts, 'Yes, and then we went home and had dinner together.')).length;
    assert.ok(long > short * 3);
    assert.deepEqual(await synth(tts, ''), []);
    assert.deepEqual(await synth(tts, ' ... !'), []);
  });

  it('stops when its signal aborts (before or during synthesis)', async () => {
    const stop = new AbortController();
    stop.abort();
    assert.deepEqual(await synth(tts, 'Never spoken.', stop.signal), []);
    const midway = new AbortController();
    let n = 0;
    for await (const _ of tts.synthesize('This sentence is long enough to come in several chunks of audio.', { signal: midway.signal })) {
      if (++n === 2) midway.abort();
    }
    assert.equal(n, 2);
  });

  it('runs several syntheses at once in order of arrival, and on the calling thread with worker: false', async () => {
    const all = await Promise.all(['One.', 'Two two.', 'Three three three.'].map((t) => synth(tts, t)));
    assert.ok(all.every((c) => c.length > 0));
    const inline = new FliteTts({ worker: false, voice: 'slt', chunkMs: 200 });
    const chunks = await synth(inline, 'Hello world.');
    assert.ok(pcmRms(joined(chunks)) > 300);
    assert.ok(Math.abs(chunks[0]!.durationMs - 200) < 1);
    await inline.close();
  });

  it('rejects bad options at construction, naming them', () => {
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ voice: 'hal9000' }, /'voice'/],
      [{ rate: 0 }, /'rate'/],
      [{ rate: 10 }, /'rate'/],
      [{ chunkMs: 1 }, /'chunkMs'/],
      [{ worker: 'yes' }, /'worker'/],
      [{ speed: 2 }, /unknown option 'speed'/],
    ];
    for (const [options, pattern] of bad) {
      assert.throws(() => new FliteTts(options as never), (e: unknown) => SluiceError.isInstance(e) && e.code === 'invalid_argument' && pattern.test(e.message));
    }
  });
});

describe('speakableText and chunkPcm', () => {
  it('drops markdown marks and citation markers, keeps the words', () => {
    assert.equal(speakableText('**Note:** it is *sunny* [1]. See [the docs](https://x.y) and `code`.'), 'Note: it is sunny. See the docs and code.');
  });
  it('cuts PCM into whole frames', () => {
    const chunks = [...chunkPcm({ encoding: 'pcm_s16le', sampleRate: 16000, channels: 1 }, new Uint8Array(3201), 40)];
    assert.deepEqual(chunks.map((c) => c.data.length), [1280, 1280, 640]);
  });
});

interface SpeechRequest {
  headers: http.IncomingHttpHeaders;
  body: Record<string, unknown>;
}

/** A fake OpenAI `/audio/speech`: a 24 kHz (pcm) or 22.05 kHz (wav) tone, sent in odd-sized pieces. */
class FakeSpeechServer {
  readonly requests: SpeechRequest[] = [];
  closedEarly = 0;
  status = 200;
  server = http.createServer((req, res) => {
    let raw = '';
    req.on('data', (d) => (raw += d));
    req.on('end', async () => {
      const body = JSON.parse(raw) as Record<string, unknown>;
      this.requests.push({ headers: req.headers, body });
      if (req.url !== '/v1/audio/speech') return res.writeHead(404).end();
      if (this.status !== 200) return res.writeHead(this.status, { 'content-type': 'application/json' }).end('{"error":{"message":"nope"}}');
      const rate = body.response_format === 'wav' ? 22050 : 24000;
      const samples = Math.round((String(body.input).length * 60 * rate) / 1000);
      const pcm = Buffer.alloc(samples * 2);
      for (let i = 0; i < samples; i++) pcm.writeInt16LE(Math.round(8000 * Math.sin(i / 8)), i * 2);
      let payload = pcm;
      if (body.response_format === 'wav') {
        const header = Buffer.alloc(44);
        header.write('RIFF', 0);
        header.writeUInt32LE(0xffffffff, 4);
        header.write('WAVEfmt ', 8);
        header.writeUInt32LE(16, 16);
        header.writeUInt16LE(1, 20);
        header.writeUInt16LE(1, 22);
        header.writeUInt32LE(rate, 24);
        header.writeUInt32LE(rate * 2, 28);
        header.writeUInt16LE(2, 32);
        header.writeUInt16LE(16, 34);
        header.write('data', 36);
        header.writeUInt32LE(0xffffffff, 40);
        payload = Buffer.concat([header, pcm]);
      }
      res.writeHead(200, { 'content-type': body.response_format === 'wav' ? 'audio/wav' : 'audio/pcm' });
      res.on('close', () => {
        if (!res.writableFinished) this.closedEarly++;
      });
      // Odd piece sizes: samples (and the WAV header) are split between network chunks.
      for (let at = 0; at < payload.length; at += 777) {
        if (res.destroyed) return;
        res.write(payload.subarray(at, at + 777));
        await sleep(2);
      }
      res.end();
    });
  });
  url = '';
  async start(): Promise<void> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/v1`;
  }
  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(() => r()));
  }
}

describe('OpenAiSpeechTts (fake server)', () => {
  const fake = new FakeSpeechServer();
  before(() => fake.start());
  after(() => fake.close());

  it('posts the request and streams 24 kHz PCM in whole samples', async () => {
    const tts = new OpenAiSpeechTts({ baseUrl: fake.url, apiKey: 'sk-test', voice: 'nova', speed: 1.25, instructions: 'Cheerful.' });
    const chunks = await synth(tts, 'Hello from the fake server.');
    const last = fake.requests.at(-1)!;
    assert.equal(last.headers.authorization, 'Bearer sk-test');
    assert.deepEqual(last.body, { model: 'gpt-4o-mini-tts', input: 'Hello from the fake server.', voice: 'nova', response_format: 'pcm', speed: 1.25, instructions: 'Cheerful.' });
    assert.ok(chunks.length > 3, 'streamed, not buffered');
    for (const c of chunks) {
      assert.equal(c.data.length % 2, 0);
      assert.equal(c.format.sampleRate, 24000);
    }
    const pcm = joined(chunks);
    assert.equal(pcm.length, Math.round((27 * 60 * 24000) / 1000) * 2, 'no byte lost at the odd cuts');
    const view = Buffer.from(pcm);
    for (let i = 0; i < 50; i++) assert.equal(view.readInt16LE(i * 2), Math.round(8000 * Math.sin(i / 8)));
    const ms = chunks.reduce((n, c) => n + c.durationMs, 0);
    assert.ok(Math.abs(ms - 27 * 60) < 1);
  });

  it('reads the rate from a streamed WAV header', async () => {
    const tts = new OpenAiSpeechTts({ baseUrl: fake.url, responseFormat: 'wav' });
    const chunks = await synth(tts, 'Wave audio.');
    assert.equal(chunks[0]!.format.sampleRate, 22050);
    assert.equal(joined(chunks).length, Math.round((11 * 60 * 22050) / 1000) * 2);
  });

  it('an abort closes the connection (the provider stops)', async () => {
    const tts = new OpenAiSpeechTts({ baseUrl: fake.url });
    const stop = new AbortController();
    let n = 0;
    for await (const _ of tts.synthesize('A very long text that would take a while to synthesize completely.', { signal: stop.signal })) {
      if (++n === 2) stop.abort();
    }
    assert.equal(n, 2);
    const before = fake.closedEarly;
    await sleep(50);
    assert.ok(fake.closedEarly >= Math.max(1, before), 'the server saw the client go');
  });

  it('maps HTTP errors and unreachable servers to SluiceErrors', async () => {
    fake.status = 429;
    try {
      await assert.rejects(synth(new OpenAiSpeechTts({ baseUrl: fake.url }), 'Hi there.'), (e: unknown) => SluiceError.isInstance(e) && e.code === 'resource_exhausted' && /429/.test(e.message));
      fake.status = 401;
      await assert.rejects(synth(new OpenAiSpeechTts({ baseUrl: fake.url }), 'Hi there.'), (e: unknown) => SluiceError.isInstance(e) && e.code === 'permission_denied');
    } finally {
      fake.status = 200;
    }
    await assert.rejects(synth(new OpenAiSpeechTts({ baseUrl: 'http://127.0.0.1:1/v1' }), 'Hi there.'), (e: unknown) => SluiceError.isInstance(e) && e.code === 'unavailable');
  });

  it('rejects bad options at construction, naming them', () => {
    const bad: [Record<string, unknown>, RegExp][] = [
      [{}, /'baseUrl'/],
      [{ baseUrl: 'ftp://x' }, /'baseUrl'/],
      [{ baseUrl: fake.url, responseFormat: 'mp3' }, /'responseFormat'/],
      [{ baseUrl: fake.url, speed: 9 }, /'speed'/],
      [{ baseUrl: fake.url, timeoutMs: 0 }, /'timeoutMs'/],
      [{ baseUrl: fake.url, headers: { a: 1 } }, /'headers'/],
      [{ baseUrl: fake.url, voices: 'x' }, /unknown option 'voices'/],
    ];
    for (const [options, pattern] of bad) {
      assert.throws(() => new OpenAiSpeechTts(options as never), (e: unknown) => SluiceError.isInstance(e) && e.code === 'invalid_argument' && pattern.test(e.message));
    }
  });
});
