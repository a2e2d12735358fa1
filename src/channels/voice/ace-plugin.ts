/**
 * Consumes an NVIDIA ACE Agent plugin endpoint that streams its answer (`reference/ace-and-voice.md`
 * §1.2–1.3), as a Sluice action: the plugin's text is piped into the dispatcher as the chunks of
 * one streamed message, so every Sluice consumer (tokens, sentences, voice) gets it.
 *
 * What it does differently from ACE's own consumer, on purpose:
 * - **UTF-8 is decoded as a stream** (`TextDecoder` in stream mode): a character whose bytes are
 *   split between two network chunks is decoded whole, instead of becoming U+FFFD and being stripped.
 * - **Frames are delimited explicitly**, never "one network chunk = one frame": NDJSON (one JSON
 *   object per line), a JSON stream (objects back to back, with or without whitespace, which is
 *   what ACE's sample plugins write under `text/event-stream`), SSE `data:` events, or plain text.
 * - **A malformed frame is a typed error** (`unavailable`, reason `plugin_bad_frame`), not regex
 *   recovery; the text already streamed stays delivered and its message ends with reason `error`.
 * - **The text is not rewritten** (ACE replaces quotes and newlines for Colang).
 * - **The run's signal reaches the request**: a barge-in closes the plugin's connection.
 * @module
 */

import { randomUUID } from 'node:crypto';
import { SluiceError } from '../../protocol/errors.ts';
import type { RasaEvent } from '../../protocol/events.ts';
import type { ActionContext, ActionDefinition } from '../../runtime/action.ts';
import { defineAction } from '../../runtime/action.ts';
import { idleAbort } from './idle-abort.ts';
import { checkOptionsObject, enumOption, functionOption, invalidOption, numberOption, stringOption } from './validate.ts';

/** How the plugin's body is cut into frames. `auto` decides from the content type (and the first byte). */
export type AceFraming = 'auto' | 'ndjson' | 'json-stream' | 'sse' | 'text';

/** One frame of a plugin's answer. */
export interface AceFrame {
  /** New text (ACE forwards only `Response.Text`); may be empty. */
  text: string;
  /** True for the frame with `IsFinal: true` (its `response` carries the full-response metadata). */
  final: boolean;
  /** The `Response` object of a Chat Engine frame (`Text`, `CleanedText`, `Json`, `NeedUserResponse`, `IsFinal`). */
  response?: Record<string, unknown>;
  /** The whole frame as received (parsed JSON, or the text). */
  raw: unknown;
}

const FRAMINGS = ['auto', 'ndjson', 'json-stream', 'sse', 'text'] as const;

function badFrame(message: string, cause?: unknown): SluiceError {
  return new SluiceError('unavailable', `The plugin sent a malformed frame: ${message}`, { cause, details: { reason: 'plugin_bad_frame' } });
}

/** Reads a frame in the Chat Engine response schema (a bare JSON string counts as text). */
export function interpretFrame(value: unknown): AceFrame {
  if (typeof value === 'string') return { text: value, final: false, raw: value };
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw badFrame(`expected a JSON object, got ${Array.isArray(value) ? 'an array' : typeof value}`);
  const response = (value as Record<string, unknown>).Response;
  if (response === undefined || response === null) return { text: '', final: false, raw: value };
  if (typeof response !== 'object' || Array.isArray(response)) throw badFrame("'Response' must be an object");
  const r = response as Record<string, unknown>;
  const text = r.Text ?? '';
  if (typeof text !== 'string') throw badFrame("'Response.Text' must be a string");
  return { text, final: r.IsFinal === true, response: r, raw: value };
}

/** Picks the framing for a content type; `first` is the first non-blank character of the body. */
export function detectFraming(contentType: string | null, first: string): Exclude<AceFraming, 'auto'> {
  const type = (contentType ?? '').split(';')[0]!.trim().toLowerCase();
  if (type === 'application/x-ndjson' || type === 'application/jsonl' || type === 'application/ndjson') return 'ndjson';
  if (type === 'application/json') return 'json-stream';
  if (type === 'text/event-stream') return first === '{' || first === '"' ? 'json-stream' : 'sse';
  return 'text';
}

/**
 * Incremental scanner for JSON values written back to back (optionally separated by whitespace,
 * so NDJSON is accepted too). Tracks strings and escapes, so braces inside text do not count.
 */
class JsonStreamScanner {
  #buf = '';
  #pos = 0;
  #start = -1;
  #depth = 0;
  #inString = false;
  #escape = false;

  push(text: string, out: unknown[]): void {
    this.#buf += text;
    const buf = this.#buf;
    for (let i = this.#pos; i < buf.length; i++) {
      const c = buf.charCodeAt(i);
      if (this.#start < 0) {
        if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09 || c === 0x1e) continue;
        if (c !== 0x7b && c !== 0x5b && c !== 0x22) throw badFrame(`unexpected ${JSON.stringify(buf[i])} between frames`);
        this.#start = i;
        this.#depth = 0;
        if (c === 0x22) {
          this.#inString = true;
          continue;
        }
      }
      if (this.#inString) {
        if (this.#escape) this.#escape = false;
        else if (c === 0x5c) this.#escape = true;
        else if (c === 0x22) {
          this.#inString = false;
          if (this.#depth === 0) this.#complete(i + 1, out);
        }
        continue;
      }
      if (c === 0x22) this.#inString = true;
      else if (c === 0x7b || c === 0x5b) this.#depth++;
      else if (c === 0x7d || c === 0x5d) {
        this.#depth--;
        if (this.#depth === 0) this.#complete(i + 1, out);
      }
    }
    this.#pos = this.#buf.length;
    if (this.#start < 0) {
      this.#buf = '';
      this.#pos = 0;
    } else if (this.#start > 0) {
      this.#buf = this.#buf.slice(this.#start);
      this.#pos -= this.#start;
      this.#start = 0;
    }
  }

  end(): void {
    if (this.#start >= 0 && this.#buf.slice(this.#start).trim() !== '') throw badFrame('the stream ended inside a JSON frame');
  }

  #complete(end: number, out: unknown[]): void {
    const text = this.#buf.slice(this.#start, end);
    this.#start = -1;
    try {
      out.push(JSON.parse(text));
    } catch (error) {
      throw badFrame('invalid JSON', error);
    }
  }
}

/** NDJSON: one JSON value per line; blank lines are skipped. */
class NdjsonSplitter {
  #rest = '';

  push(text: string, out: unknown[]): void {
    const all = this.#rest + text;
    let from = 0;
    for (let nl = all.indexOf('\n'); nl >= 0; nl = all.indexOf('\n', from)) {
      this.#line(all.slice(from, nl), out);
      from = nl + 1;
    }
    this.#rest = all.slice(from);
  }

  end(out: unknown[]): void {
    this.#line(this.#rest, out);
    this.#rest = '';
  }

  #line(line: string, out: unknown[]): void {
    const trimmed = line.trim();
    if (trimmed === '') return;
    try {
      out.push(JSON.parse(trimmed));
    } catch (error) {
      throw badFrame('a line is not valid JSON', error);
    }
  }
}

/** SSE: `data:` lines joined per event; JSON data is a frame, other data is text; `[DONE]` ends. */
class SseSplitter {
  #rest = '';
  #data: string[] = [];
  done = false;

  push(text: string, out: unknown[]): void {
    const all = this.#rest + text;
    let from = 0;
    for (let nl = all.indexOf('\n'); nl >= 0; nl = all.indexOf('\n', from)) {
      let line = all.slice(from, nl);
      if (line.endsWith('\r')) line = line.slice(0, -1);
      this.#line(line, out);
      from = nl + 1;
    }
    this.#rest = all.slice(from);
  }

  end(out: unknown[]): void {
    if (this.#rest !== '') this.#line(this.#rest, out);
    this.#line('', out);
  }

  #line(line: string, out: unknown[]): void {
    if (this.done) return;
    if (line === '') {
      if (this.#data.length === 0) return;
      const data = this.#data.join('\n');
      this.#data = [];
      if (data.trim() === '[DONE]') {
        this.done = true;
        return;
      }
      const t = data.trimStart();
      if (t.startsWith('{')) {
        try {
          out.push(JSON.parse(data));
        } catch (error) {
          throw badFrame('an SSE event is not valid JSON', error);
        }
      } else out.push(data);
      return;
    }
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    if (field !== 'data') return;
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    this.#data.push(value);
  }
}

/** Options of {@link readAceStream}. */
export interface ReadAceStreamOptions {
  framing?: AceFraming;
  /** The response's content type, for `auto`. */
  contentType?: string | null;
}

/**
 * Decodes a plugin's byte stream into frames. Ends after the `IsFinal` frame (anything after it is
 * ignored) or when the bytes end. Throws `unavailable` (`plugin_bad_frame`) for a malformed frame.
 */
export async function* readAceStream(body: AsyncIterable<Uint8Array>, options: ReadAceStreamOptions = {}): AsyncGenerator<AceFrame> {
  const decoder = new TextDecoder('utf-8');
  let framing = options.framing ?? 'auto';
  let pending = '';
  let json: JsonStreamScanner | null = null;
  let ndjson: NdjsonSplitter | null = null;
  let sse: SseSplitter | null = null;
  const out: unknown[] = [];

  const feed = function* (text: string, last: boolean): Generator<AceFrame, boolean> {
    if (framing === 'auto') {
      pending += text;
      const first = pending.trimStart()[0];
      if (first === undefined && !last) return false;
      framing = detectFraming(options.contentType ?? null, first ?? '');
      text = pending;
      pending = '';
    }
    if (framing === 'text') {
      if (text !== '') yield { text, final: false, raw: text };
      return false;
    }
    let failure: unknown = null;
    try {
      if (framing === 'json-stream') {
        json ??= new JsonStreamScanner();
        json.push(text, out);
        if (last) json.end();
      } else if (framing === 'ndjson') {
        ndjson ??= new NdjsonSplitter();
        ndjson.push(text, out);
        if (last) ndjson.end(out);
      } else {
        sse ??= new SseSplitter();
        sse.push(text, out);
        if (last) sse.end(out);
      }
    } catch (error) {
      // Frames before the bad one still count; after the final frame nothing does.
      failure = error;
    }
    for (const value of out.splice(0)) {
      const frame = interpretFrame(value);
      yield frame;
      if (frame.final) return true;
    }
    if (failure !== null) throw failure;
    return sse?.done === true;
  };

  for await (const bytes of body) {
    // `stream: true` keeps the bytes of a character cut at the end of this chunk for the next one.
    const text = decoder.decode(bytes, { stream: true });
    if (yield* feed(text, false)) return;
  }
  yield* feed(decoder.decode(), true);
}

/** What the request to the plugin is built from. */
export interface AcePluginRequest {
  /** Query parameters added to the URL. */
  query?: Record<string, string>;
  /** JSON body (POST). */
  body?: unknown;
  headers?: Record<string, string>;
}

/** Options of {@link acePluginAction}. */
export interface AcePluginActionOptions {
  /** The action's name, e.g. `action_rag`. */
  name: string;
  /** The plugin endpoint, e.g. `http://plugins:9002/rag/chat`. */
  url: string;
  /** Default `POST`. */
  method?: 'POST' | 'GET';
  /** Default `auto`. */
  framing?: AceFraming;
  /**
   * Builds the request from the action's context. Default: ACE's `InvokeStreamingChatAction`
   * shape — body `{ Query, UserId, Metadata: { SessionId, StreamId } }` from the tracker's latest
   * message and sender, and query `request_id`, `user_id`, `session_id`, `stream_id`.
   */
  request?: (context: ActionContext) => AcePluginRequest | Promise<AcePluginRequest>;
  headers?: Record<string, string>;
  /** Longest wait for the response and between chunks, in ms. Default 30,000. */
  timeoutMs?: number;
  /** Called with the `IsFinal` frame (or null when none came); its events are the action's result. */
  onFinal?: (frame: AceFrame | null, context: ActionContext) => RasaEvent[] | void;
  /** Status text sent before the request (none by default). */
  status?: string;
  fetch?: typeof fetch;
}

const KEYS = ['name', 'url', 'method', 'framing', 'request', 'headers', 'timeoutMs', 'onFinal', 'status', 'fetch'] as const;

function defaultRequest(context: ActionContext): AcePluginRequest {
  const tracker = context.tracker;
  const sender = tracker.senderId;
  const query = typeof tracker.latestMessage.text === 'string' ? tracker.latestMessage.text : '';
  return {
    query: { request_id: randomUUID(), user_id: sender, session_id: sender, stream_id: sender },
    body: { Query: query, UserId: sender, Metadata: { SessionId: sender, StreamId: sender } },
  };
}

/**
 * An action that calls an ACE plugin and streams its answer: each frame's text becomes a chunk of
 * one streamed message; a non-streaming plugin (one JSON answer) becomes a single chunk, like any
 * static response. A `Response.Json` in the final frame is attached to a last chunk as `json`.
 *
 * @throws {SluiceError} `invalid_argument` naming a bad option.
 */
export function acePluginAction(options: AcePluginActionOptions): ActionDefinition {
  const who = 'acePluginAction';
  const o = checkOptionsObject(who, options, KEYS);
  const name = stringOption(who, 'name', o.name ?? '', '');
  let url: URL;
  try {
    url = new URL(String(o.url));
  } catch {
    throw invalidOption(who, 'url', 'an absolute http(s) URL', o.url);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw invalidOption(who, 'url', 'an absolute http(s) URL', o.url);
  const method = enumOption(who, 'method', o.method, ['POST', 'GET'] as const, 'POST');
  const framing = enumOption(who, 'framing', o.framing, FRAMINGS, 'auto');
  const build = functionOption<AcePluginActionOptions['request']>(who, 'request', o.request) ?? defaultRequest;
  const onFinal = functionOption<AcePluginActionOptions['onFinal']>(who, 'onFinal', o.onFinal);
  const timeoutMs = numberOption(who, 'timeoutMs', o.timeoutMs, 30_000, { min: 1 });
  const status = o.status === undefined ? undefined : stringOption(who, 'status', o.status, '');
  const doFetch = functionOption<typeof fetch>(who, 'fetch', o.fetch) ?? globalThis.fetch;
  const baseHeaders: Record<string, string> = {};
  if (o.headers !== undefined) {
    if (typeof o.headers !== 'object' || o.headers === null || Object.values(o.headers).some((v) => typeof v !== 'string')) {
      throw invalidOption(who, 'headers', 'an object of strings', o.headers);
    }
    Object.assign(baseHeaders, o.headers);
  }

  return defineAction({
    name,
    async run(dispatcher, _tracker, _domain, context) {
      const { signal } = context;
      if (status !== undefined) await dispatcher.status(status);
      const request = await build(context);
      const target = new URL(url);
      for (const [key, value] of Object.entries(request.query ?? {})) target.searchParams.set(key, value);
      const headers: Record<string, string> = { accept: 'application/x-ndjson, text/event-stream, application/json, text/plain', ...baseHeaders, ...request.headers };
      const init: RequestInit = { method, headers };
      if (method === 'POST') {
        headers['content-type'] ??= 'application/json';
        init.body = JSON.stringify(request.body ?? {});
      }
      const idle = idleAbort(signal, timeoutMs, () => new SluiceError('timeout', 'The plugin stopped responding', { details: { reason: 'plugin_timeout' } }));
      init.signal = idle.signal;
      let final: AceFrame | null = null;
      try {
        idle.arm();
        let response: Response;
        try {
          response = await doFetch(target, init);
        } catch (error) {
          if (signal.aborted) return [];
          throw unreachable(error, idle.signal);
        }
        if (!response.ok) {
          await response.body?.cancel().catch(() => {});
          throw new SluiceError('unavailable', `The plugin answered ${response.status}`, { details: { reason: 'plugin_http_error', status: response.status } });
        }
        if (response.body !== null) {
          const bytes = timedBody(response.body, idle.arm);
          try {
            for await (const frame of readAceStream(bytes, { framing, contentType: response.headers.get('content-type') })) {
              if (signal.aborted) break;
              if (frame.text !== '') await dispatcher.streamChunk({ text: frame.text });
              if (frame.final) {
                final = frame;
                const json = frame.response?.Json;
                if (json !== null && typeof json === 'object' && !Array.isArray(json) && Object.keys(json).length > 0) {
                  await dispatcher.streamChunk({ json: json as Record<string, unknown> });
                }
              }
            }
          } catch (error) {
            if (signal.aborted) return [];
            throw SluiceError.isInstance(error) ? error : unreachable(error, idle.signal);
          }
        }
      } finally {
        idle.close();
      }
      await dispatcher.streamEnd();
      return onFinal?.(final, context) ?? [];
    },
  });
}

function unreachable(error: unknown, signal: AbortSignal): SluiceError {
  if (signal.aborted && SluiceError.isInstance(signal.reason)) return signal.reason;
  return new SluiceError('unavailable', 'The plugin could not be reached', { cause: error, details: { reason: 'plugin_unreachable' } });
}

/** The body's chunks, re-arming the idle timer at each one. */
async function* timedBody(body: ReadableStream<Uint8Array>, arm: () => void): AsyncGenerator<Uint8Array> {
  const reader = body.getReader();
  try {
    for (;;) {
      arm();
      const step = await reader.read();
      if (step.done) return;
      yield step.value;
    }
  } finally {
    reader.releaseLock();
    void body.cancel().catch(() => {});
  }
}
