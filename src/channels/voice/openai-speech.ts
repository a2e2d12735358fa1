/**
 * `OpenAiSpeechTts`: a {@link TtsEngine} for any OpenAI-compatible `POST /audio/speech` endpoint
 * (OpenAI, or local servers that copy its API). Audio is streamed as the response body arrives;
 * the signal goes to `fetch`, so a barge-in closes the connection and the provider stops.
 * @module
 */

import { SluiceError } from '../../protocol/errors.ts';
import type { ErrorCode } from '../../protocol/errors.ts';
import type { AudioChunk, AudioFormat, SynthesizeOptions, TtsEngine } from './tts.ts';
import { durationOf } from './tts.ts';
import { idleAbort } from './idle-abort.ts';
import { checkOptionsObject, enumOption, functionOption, invalidOption, numberOption, stringOption } from './validate.ts';

/** Options of {@link OpenAiSpeechTts}. */
export interface OpenAiSpeechOptions {
  /** Base URL of the API, e.g. `https://api.openai.com/v1` or `http://127.0.0.1:8880/v1` (required). */
  baseUrl: string;
  /** Sent as `Authorization: Bearer …` when given. */
  apiKey?: string;
  /** Default `gpt-4o-mini-tts`. */
  model?: string;
  /** Default `alloy`. */
  voice?: string;
  /**
   * `pcm` (default: raw PCM16LE, OpenAI's is 24 kHz mono) or `wav` (the header gives the rate).
   * Compressed formats are not offered: audio chunks carry exact durations, which needs PCM.
   */
  responseFormat?: 'pcm' | 'wav';
  /** Sample rate of `pcm` output. Default 24000 (OpenAI's). */
  sampleRate?: number;
  /** 0.25–4. */
  speed?: number;
  /** Voice instructions (models that take them). */
  instructions?: string;
  /** Extra request headers. */
  headers?: Record<string, string>;
  /** Longest wait for the response headers and between body chunks, in ms. Default 30,000. */
  timeoutMs?: number;
  /** The `fetch` to use (default the global one). */
  fetch?: typeof fetch;
}

const KEYS = ['baseUrl', 'apiKey', 'model', 'voice', 'responseFormat', 'sampleRate', 'speed', 'instructions', 'headers', 'timeoutMs', 'fetch'] as const;

function codeForStatus(status: number): ErrorCode {
  if (status === 400 || status === 422) return 'invalid_argument';
  if (status === 401 || status === 403) return 'permission_denied';
  if (status === 404) return 'not_found';
  if (status === 429) return 'resource_exhausted';
  if (status === 408 || status === 504) return 'timeout';
  return 'unavailable';
}

/** OpenAI-compatible speech synthesis. */
export class OpenAiSpeechTts implements TtsEngine {
  readonly name: string;
  readonly #url: string;
  readonly #headers: Record<string, string>;
  readonly #model: string;
  readonly #voice: string;
  readonly #format: 'pcm' | 'wav';
  readonly #sampleRate: number;
  readonly #speed: number | undefined;
  readonly #instructions: string | undefined;
  readonly #timeoutMs: number;
  readonly #fetch: typeof fetch;

  /** @throws {SluiceError} `invalid_argument` naming a bad option. */
  constructor(options: OpenAiSpeechOptions) {
    const who = 'OpenAiSpeechTts';
    const o = checkOptionsObject(who, options, KEYS);
    const baseUrl = stringOption(who, 'baseUrl', o.baseUrl ?? '', '');
    let url: URL;
    try {
      url = new URL(baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`);
    } catch {
      throw invalidOption(who, 'baseUrl', 'an absolute http(s) URL', o.baseUrl);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw invalidOption(who, 'baseUrl', 'an absolute http(s) URL', o.baseUrl);
    this.#url = new URL('audio/speech', url).href;
    this.#model = stringOption(who, 'model', o.model, 'gpt-4o-mini-tts');
    this.#voice = stringOption(who, 'voice', o.voice, 'alloy');
    this.#format = enumOption(who, 'responseFormat', o.responseFormat, ['pcm', 'wav'] as const, 'pcm');
    this.#sampleRate = numberOption(who, 'sampleRate', o.sampleRate, 24000, { min: 1000 });
    if (o.speed !== undefined) {
      const speed = numberOption(who, 'speed', o.speed, 1, { integer: false, min: 0.25 });
      if (speed > 4) throw invalidOption(who, 'speed', 'a number between 0.25 and 4', speed);
      this.#speed = speed;
    }
    if (o.instructions !== undefined) this.#instructions = stringOption(who, 'instructions', o.instructions, '');
    this.#timeoutMs = numberOption(who, 'timeoutMs', o.timeoutMs, 30_000, { min: 1 });
    this.#fetch = functionOption<typeof fetch>(who, 'fetch', o.fetch) ?? globalThis.fetch;
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (o.headers !== undefined) {
      if (typeof o.headers !== 'object' || o.headers === null || Object.values(o.headers).some((v) => typeof v !== 'string')) {
        throw invalidOption(who, 'headers', 'an object of strings', o.headers);
      }
      Object.assign(headers, o.headers);
    }
    if (o.apiKey !== undefined) headers.authorization = `Bearer ${stringOption(who, 'apiKey', o.apiKey, '')}`;
    this.#headers = headers;
    this.name = `openai-speech:${this.#model}:${this.#voice}`;
  }

  async *synthesize(text: string, options: SynthesizeOptions): AsyncGenerator<AudioChunk> {
    if (typeof text !== 'string') throw new SluiceError('invalid_argument', 'OpenAiSpeechTts.synthesize: text must be a string');
    const signal = options?.signal;
    if (!(signal instanceof AbortSignal)) throw new SluiceError('invalid_argument', 'OpenAiSpeechTts.synthesize: options.signal must be an AbortSignal');
    if (signal.aborted || !/[\p{L}\p{N}]/u.test(text)) return;
    const body: Record<string, unknown> = { model: this.#model, input: text, voice: this.#voice, response_format: this.#format };
    if (this.#speed !== undefined) body.speed = this.#speed;
    if (this.#instructions !== undefined) body.instructions = this.#instructions;

    const idle = idleAbort(signal, this.#timeoutMs, () => new SluiceError('timeout', 'The speech service stopped responding'));
    try {
      idle.arm();
      let response: Response;
      try {
        response = await this.#fetch(this.#url, { method: 'POST', headers: this.#headers, body: JSON.stringify(body), signal: idle.signal });
      } catch (error) {
        if (signal.aborted) return;
        throw this.#failure(error);
      }
      if (!response.ok) {
        const detail = await response.text().catch(() => '');
        throw new SluiceError(codeForStatus(response.status), `The speech service answered ${response.status}`, {
          cause: new Error(detail.slice(0, 500)),
          details: { reason: 'tts_http_error', status: response.status },
        });
      }
      if (response.body === null) return;
      const decoder = new PcmDecoder(this.#format, this.#sampleRate);
      const reader = response.body.getReader();
      try {
        for (;;) {
          idle.arm();
          let step: Awaited<ReturnType<typeof reader.read>>;
          try {
            step = await reader.read();
          } catch (error) {
            if (signal.aborted) return;
            throw this.#failure(error);
          }
          if (step.done) break;
          const chunk = decoder.push(step.value);
          if (chunk !== null) yield chunk;
          if (signal.aborted) return;
        }
        decoder.end();
      } finally {
        reader.releaseLock();
        if (!idle.signal.aborted) void response.body.cancel().catch(() => {});
      }
    } finally {
      idle.close();
    }
  }

  #failure(error: unknown): SluiceError {
    if (SluiceError.isInstance(error)) return error;
    const reason = error instanceof Error && SluiceError.isInstance(error.cause) ? error.cause : undefined;
    if (reason !== undefined) return reason;
    if (typeof error === 'object' && error !== null && (error as { name?: unknown }).name === 'AbortError') {
      const r = (error as { cause?: unknown }).cause;
      if (SluiceError.isInstance(r)) return r;
    }
    return new SluiceError('unavailable', 'The speech service could not be reached', { cause: error, details: { reason: 'tts_unreachable' } });
  }
}

/**
 * Turns a byte stream into whole-frame PCM chunks: reads a WAV header first when the format is
 * `wav`, and carries a sample split between two network chunks over to the next one.
 */
export class PcmDecoder {
  #format: AudioFormat | null;
  readonly #wav: boolean;
  #head: Uint8Array = new Uint8Array(0);
  #carry: Uint8Array = new Uint8Array(0);

  constructor(kind: 'pcm' | 'wav', sampleRate: number) {
    this.#wav = kind === 'wav';
    this.#format = this.#wav ? null : { encoding: 'pcm_s16le', sampleRate, channels: 1 };
  }

  /** The next chunk of audio, or null when these bytes completed no frame yet. */
  push(bytes: Uint8Array): AudioChunk | null {
    if (this.#format === null) {
      this.#head = concat(this.#head, bytes);
      const found = findWavData(this.#head);
      if (found === null) {
        if (this.#head.length > 64 * 1024) throw new SluiceError('internal', 'The speech service sent no WAVE data header', { details: { reason: 'bad_audio' } });
        return null;
      }
      this.#format = found.format;
      bytes = this.#head.subarray(found.dataAt);
      this.#head = new Uint8Array(0);
    }
    const format = this.#format;
    const frame = format.channels * 2;
    const all = this.#carry.length === 0 ? bytes : concat(this.#carry, bytes);
    const usable = all.length - (all.length % frame);
    this.#carry = all.slice(usable);
    if (usable === 0) return null;
    const data = all.subarray(0, usable);
    return { format, data, durationMs: durationOf(format, usable) };
  }

  /** Checks the stream ended cleanly. */
  end(): void {
    if (this.#wav && this.#format === null && this.#head.length > 0) {
      throw new SluiceError('internal', 'The speech service sent a truncated WAVE header', { details: { reason: 'bad_audio' } });
    }
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

function findWavData(head: Uint8Array): { format: AudioFormat; dataAt: number } | null {
  if (head.length < 12) return null;
  const tag = (at: number): string => String.fromCharCode(head[at]!, head[at + 1]!, head[at + 2]!, head[at + 3]!);
  if (tag(0) !== 'RIFF' || tag(8) !== 'WAVE') throw new SluiceError('internal', 'The speech service did not send WAVE audio', { details: { reason: 'bad_audio' } });
  const v = new DataView(head.buffer, head.byteOffset, head.byteLength);
  let format: AudioFormat | null = null;
  let at = 12;
  while (at + 8 <= head.length) {
    const id = tag(at);
    const size = v.getUint32(at + 4, true);
    if (id === 'data') return format === null ? null : { format, dataAt: at + 8 };
    if (at + 8 + size > head.length) return null;
    if (id === 'fmt ') {
      const code = v.getUint16(at + 8, true);
      const bits = v.getUint16(at + 22, true);
      if (code !== 1 || bits !== 16) throw new SluiceError('internal', `Unsupported WAVE format ${code}/${bits} bits (expected PCM 16-bit)`, { details: { reason: 'bad_audio' } });
      format = { encoding: 'pcm_s16le', sampleRate: v.getUint32(at + 12, true), channels: v.getUint16(at + 10, true) };
    }
    at += 8 + size + (size & 1);
  }
  return null;
}
