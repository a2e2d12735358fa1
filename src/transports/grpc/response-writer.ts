/**
 * Writes a Connect universal response to a Node HTTP/2 response, coalescing writes.
 *
 * Connect hands the body over as one small buffer per gRPC message; writing each to the HTTP/2
 * stream costs a native call and usually a DATA frame of its own, which was most of the per-chunk
 * cost of a streaming call here. Buffers produced in the same event-loop turn are joined and
 * written once (at the end of the turn, or as soon as a frame's worth is pending), and the body
 * is only pulled further while the stream is not asking for a drain, so backpressure still reaches
 * the run.
 * @module
 */

import http2, { type Http2ServerResponse, type ServerHttp2Stream } from 'node:http2';
import type { OutgoingHttpHeaders } from 'node:http';
import type { UniversalServerResponse } from '@connectrpc/connect/protocol';

/** Pending bytes that trigger a write without waiting for the end of the turn (one max-size HTTP/2 frame). */
const FLUSH_BYTES = 16 * 1024;

function nodeHeaders(headers: Headers | undefined): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  headers?.forEach((value, key) => {
    out[key] = key === 'grpc-message' ? respecGrpcMessage(value) : value;
  });
  return out;
}

const PLAIN_MESSAGE = /^[\x20-\x24\x26-\x7e]*$/;

/**
 * Percent-encodes a status message the way the gRPC spec says: only bytes outside space..~, and
 * `%` itself. Connect uses `encodeURIComponent`, which also encodes `:`, `,`, `/`… — valid, but
 * @grpc/grpc-js decodes with `decodeURI` and leaves those escaped, so Rasa's JSON details would
 * reach grpc-js clients as `{"action_name"%3A…`.
 */
export function encodeGrpcMessage(message: string): string {
  if (PLAIN_MESSAGE.test(message)) return message;
  let out = '';
  for (const byte of Buffer.from(message, 'utf8')) {
    out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

function respecGrpcMessage(encoded: string): string {
  let message: string;
  try {
    message = decodeURIComponent(encoded);
  } catch {
    return encoded;
  }
  return encodeGrpcMessage(message);
}

function isGone(stream: ServerHttp2Stream): boolean {
  return stream.closed || stream.destroyed;
}

/** Default longest wait for a client to take data (see {@link writeUniversalResponse}). */
export const DEFAULT_STALL_TIMEOUT_MS = 30_000;

/**
 * Resolves once the stream wants more data, or is gone. A client that takes nothing for
 * `stallTimeoutMs` is reset with ENHANCE_YOUR_CALM (gRPC clients read it as RESOURCE_EXHAUSTED):
 * it would otherwise hold the run it reads, and every other reader of it, for ever.
 */
function writable(stream: ServerHttp2Stream, stallTimeoutMs: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      if (!isGone(stream)) stream.close(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
      done();
    }, stallTimeoutMs);
    timer.unref();
    const done = (): void => {
      clearTimeout(timer);
      stream.off('drain', done);
      stream.off('close', done);
      resolve();
    };
    stream.on('drain', done);
    stream.on('close', done);
  });
}

class CoalescingWriter {
  readonly #res: Http2ServerResponse;
  readonly #stream: ServerHttp2Stream;
  #parts: Uint8Array[] = [];
  #size = 0;
  #timer: NodeJS.Immediate | null = null;
  readonly #onTimer = (): void => {
    this.#timer = null;
    this.flush();
  };

  constructor(res: Http2ServerResponse) {
    this.#res = res;
    this.#stream = res.stream;
  }

  push(data: Uint8Array): void {
    this.#parts.push(data);
    this.#size += data.byteLength;
    if (this.#size >= FLUSH_BYTES) this.flush();
    else this.#timer ??= setImmediate(this.#onTimer);
  }

  flush(): void {
    if (this.#timer !== null) {
      clearImmediate(this.#timer);
      this.#timer = null;
    }
    const parts = this.#parts;
    if (parts.length === 0) return;
    const data = parts.length === 1 ? (parts[0] as Uint8Array) : Buffer.concat(parts, this.#size);
    this.#parts = [];
    this.#size = 0;
    // A stream the client reset takes no more data; the call is being torn down anyway.
    if (!isGone(this.#stream)) this.#res.write(data);
  }

  /** True when the body must not be pulled further until the stream drains. */
  get mustWait(): boolean {
    return this.#stream.writableNeedDrain && !isGone(this.#stream);
  }

  get gone(): boolean {
    return isGone(this.#stream);
  }

  waitWritable(stallTimeoutMs: number): Promise<void> {
    return writable(this.#stream, stallTimeoutMs);
  }
}

/**
 * Sends `response` on `res`: headers once the first body bytes exist (so handlers may still set
 * headers), the body coalesced, then trailers. Stops pulling the body when the client is gone, or
 * has taken no data for `stallTimeoutMs` (then the stream is reset).
 */
export async function writeUniversalResponse(response: UniversalServerResponse, res: Http2ServerResponse, stallTimeoutMs = DEFAULT_STALL_TIMEOUT_MS): Promise<void> {
  const it = response.body?.[Symbol.asyncIterator]();
  const writer = new CoalescingWriter(res);
  let completed = false;
  try {
    if (it !== undefined) {
      let step = await it.next();
      if (writer.gone) return;
      res.writeHead(response.status, nodeHeaders(response.header));
      for (; step.done !== true; step = await it.next()) {
        writer.push(step.value);
        if (writer.mustWait) await writer.waitWritable(stallTimeoutMs);
        if (writer.gone) return;
      }
    }
    completed = true;
    if (writer.gone) return;
    if (!res.headersSent) res.writeHead(response.status, nodeHeaders(response.header));
    writer.flush();
    if (response.trailer !== undefined) res.addTrailers(nodeHeaders(response.trailer));
    res.end();
  } finally {
    writer.flush();
    // Ends the handler pipeline (its finally blocks run) when we stopped early.
    if (!completed) await it?.return?.().catch(() => {});
  }
}
