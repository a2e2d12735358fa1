/**
 * Shared fixtures of the voice tests: action calls, paced actions, an executor, a Fastify voice
 * server on 127.0.0.1 port 0 and a WebSocket client that keeps JSON messages and audio frames.
 */

import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import websocket from '@fastify/websocket';
import Fastify, { type FastifyInstance } from 'fastify';
import { WebSocket } from 'ws';
import { defineAction, type ActionDefinition } from '../../../src/runtime/action.ts';
import { ActionExecutor } from '../../../src/runtime/executor.ts';
import { silentLogger } from '../../../src/runtime/logger.ts';
import { slotSet } from '../../../src/runtime/rasa-events.ts';
import type { SluiceEvent } from '../../../src/protocol/events.ts';
import { VoiceChannel, type VoiceChannelOptions } from '../../../src/channels/voice/channel.ts';
import { decodeAudioFrame, type AudioFrame } from '../../../src/channels/voice/session.ts';
import { voiceWsRoutes } from '../../../src/channels/voice/ws-routes.ts';
import type { AudioChunk, SynthesizeOptions, TtsEngine } from '../../../src/channels/voice/tts.ts';

/** A Rasa action call. */
export function call(name: string, options: { sender?: string; text?: string; slots?: Record<string, unknown> } = {}): Record<string, unknown> {
  const { sender = 'user-1', text = 'hi', slots = {} } = options;
  return {
    next_action: name,
    sender_id: sender,
    tracker: { sender_id: sender, slots, latest_message: { text }, events: [], paused: false },
    domain: { version: '3.1', slots: {} },
    version: '3.17.0',
  };
}

/** Splits text into word tokens that join back exactly. */
export function tokens(text: string): string[] {
  return text.split(/(?<=\s)(?=\S)/);
}

/** What a paced action records. */
export class Trace {
  /** performance.now() when each token was yielded, in order. */
  readonly tokenAt: number[] = [];
  finishedAt = -1;
  aborted = false;
}

/**
 * A streaming action that yields `text` word by word, `delayMs` apart (cancellable), recording
 * times; it stops at once on barge-in and still returns its events.
 */
export function pacedAction(name: string, text: string, delayMs: number, trace = new Trace()): ActionDefinition {
  return defineAction({
    name,
    async *stream({ signal }) {
      for (const token of tokens(text)) {
        await sleep(delayMs, undefined, { signal }).catch(() => {});
        if (signal.aborted) {
          trace.aborted = true;
          return [slotSet('finished', false)];
        }
        trace.tokenAt.push(performance.now());
        yield token;
      }
      trace.finishedAt = performance.now();
      return [slotSet('finished', true)];
    },
  });
}

export function executorWith(actions: ActionDefinition[]): ActionExecutor {
  return new ActionExecutor({ logger: silentLogger, bargeInTimeoutSeconds: 0.5, actions });
}

/** Collects a run's events. */
export async function collect<T>(source: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of source) out.push(item);
  return out;
}

export function texts(events: SluiceEvent[]): string {
  return events.map((e) => (e.type === 'chunk' && typeof e.text === 'string' ? e.text : '')).join('');
}

/** A TTS engine that fails for texts containing `failOn`, and otherwise makes a 16 kHz tone. */
export class FakeTts implements TtsEngine {
  readonly name = 'fake';
  readonly calls: string[] = [];
  readonly failOn: string | null;
  readonly msPerChar: number;
  constructor(failOn: string | null = null, msPerChar = 50) {
    this.failOn = failOn;
    this.msPerChar = msPerChar;
  }
  async *synthesize(text: string, { signal }: SynthesizeOptions): AsyncGenerator<AudioChunk> {
    this.calls.push(text);
    if (this.failOn !== null && text.includes(this.failOn)) throw new Error('synthesizer exploded');
    const total = Math.round(text.length * this.msPerChar);
    for (let at = 0; at < total && !signal.aborted; at += 100) {
      const ms = Math.min(100, total - at);
      const data = new Uint8Array(ms * 32);
      for (let i = 0; i < data.length; i += 2) data[i + 1] = i % 64 < 32 ? 0x10 : 0xf0;
      yield { format: { encoding: 'pcm_s16le', sampleRate: 16000, channels: 1 }, data, durationMs: ms };
      await sleep(1);
    }
  }
}

/** A running voice server. */
export interface VoiceServer {
  app: FastifyInstance;
  channel: VoiceChannel;
  executor: ActionExecutor;
  url: string;
  wsUrl: string;
  close(): Promise<void>;
}

export async function startVoiceServer(options: Omit<VoiceChannelOptions, 'logger'> & { logger?: VoiceChannelOptions['logger'] }): Promise<VoiceServer> {
  const channel = new VoiceChannel({ logger: silentLogger, ...options });
  const app = Fastify({ logger: false });
  await app.register(websocket, { options: { perMessageDeflate: false } });
  await app.register(voiceWsRoutes, { channel });
  const url = await app.listen({ port: 0, host: '127.0.0.1' });
  return {
    app,
    channel,
    executor: options.executor,
    url,
    wsUrl: `${url.replace('http', 'ws')}/voice/ws`,
    async close() {
      await channel.close();
      await options.executor.close();
      await app.close();
    },
  };
}

export type Received = { at: number; json: Record<string, any> } | { at: number; audio: AudioFrame };

/** A WebSocket client that keeps every message, with the time it arrived. */
export class VoiceClient {
  readonly socket: WebSocket;
  readonly received: Received[] = [];
  #waiters: (() => void)[] = [];

  private constructor(socket: WebSocket) {
    this.socket = socket;
    socket.on('message', (data, isBinary) => {
      const at = performance.now();
      const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data as ArrayBuffer);
      this.received.push(isBinary ? { at, audio: decodeAudioFrame(new Uint8Array(bytes)) } : { at, json: JSON.parse(bytes.toString('utf8')) });
      for (const wake of this.#waiters.splice(0)) wake();
    });
  }

  static async connect(url: string): Promise<VoiceClient> {
    const socket = new WebSocket(url);
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('error', reject);
    });
    return new VoiceClient(socket);
  }

  send(message: unknown): void {
    this.socket.send(typeof message === 'string' ? message : JSON.stringify(message));
  }

  get messages(): Record<string, any>[] {
    return this.received.flatMap((r) => ('json' in r ? [r.json] : []));
  }

  get frames(): AudioFrame[] {
    return this.received.flatMap((r) => ('audio' in r ? [r.audio] : []));
  }

  /** The first JSON message (from `from`) matching `predicate`, waiting up to `timeoutMs`. */
  async next(predicate: (m: Record<string, any>) => boolean, timeoutMs = 5000, from = 0): Promise<Record<string, any>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.messages.slice(from).find(predicate);
      if (found !== undefined) return found;
      const left = deadline - Date.now();
      if (left <= 0) assert.fail(`Timed out waiting for a message; got ${JSON.stringify(this.messages.map((m) => m.type))}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Waits until `predicate` holds over everything received. */
  async until(predicate: () => boolean, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate()) {
      if (Date.now() > deadline) assert.fail('Timed out waiting for a condition');
      await sleep(5);
    }
  }

  async close(): Promise<void> {
    if (this.socket.readyState === WebSocket.CLOSED) return;
    await new Promise<void>((resolve) => {
      this.socket.once('close', () => resolve());
      this.socket.close();
    });
  }
}
