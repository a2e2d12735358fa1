/**
 * Request bodies: every body is read as JSON (the cross-site hook has already refused any other
 * content type with 415, see `cross-site.ts`), after inflating `Content-Encoding: deflate` (Rasa's own client
 * sends zlib-compressed bodies) or `gzip`. The size limit applies to the bytes received and again
 * to the inflated bytes, so a small compressed body cannot expand without bound. A body nested
 * deeper than `maxDepth` objects/arrays is a 400 naming the limit (see `protocol/depth.ts`).
 * @module
 */

import { gunzipSync, inflateRawSync, inflateSync } from 'node:zlib';
import type { FastifyInstance } from 'fastify';
import { DEFAULT_MAX_DEPTH, nestingDepth } from '../../protocol/depth.ts';
import { INVALID_BODY, httpError } from './errors.ts';

/** Fastify's error code for a body over the limit (its message does not say the limit). */
export const BODY_TOO_LARGE = 'FST_ERR_CTP_BODY_TOO_LARGE';

/** Replaces Fastify's parsers with one that reads every body as JSON (see the module comment). */
export function registerBodyParser(app: FastifyInstance, bodyLimit: number, maxDepth: number = DEFAULT_MAX_DEPTH): void {
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit }, (request, raw, done) => {
    let bytes = raw as Buffer;
    try {
      bytes = decode(bytes, request.headers['content-encoding'], bodyLimit);
    } catch (error) {
      done(error as Error, undefined);
      return;
    }
    // An empty body is no body: routes that need one say so ("Invalid body request").
    if (bytes.length === 0) {
      done(null, undefined);
      return;
    }
    parseJson(request, bytes.toString('utf8'), (error, value) => {
      if (error) done(httpError(400, INVALID_BODY, 'INVALID_BODY'), undefined);
      else if (nestingDepth(value, maxDepth) > maxDepth) {
        done(httpError(400, `Request body is nested too deeply: the limit is ${maxDepth} levels of objects and arrays`, 'BODY_TOO_DEEP'), undefined);
      } else done(null, value);
    });
  });
}

function decode(bytes: Buffer, encoding: string | undefined, limit: number): Buffer {
  if (encoding === undefined || bytes.length === 0) return bytes;
  const name = encoding.trim().toLowerCase();
  if (name === '' || name === 'identity') return bytes;
  const options = { maxOutputLength: limit };
  try {
    if (name === 'deflate') {
      // HTTP's "deflate" is the zlib format (what Python's zlib.compress sends); some clients send raw deflate.
      try {
        return inflateSync(bytes, options);
      } catch (error) {
        if (isTooLarge(error)) throw error;
        return inflateRawSync(bytes, options);
      }
    }
    if (name === 'gzip' || name === 'x-gzip') return gunzipSync(bytes, options);
  } catch (error) {
    if (isTooLarge(error)) {
      throw httpError(413, `Request body is too large once inflated: the limit is ${limit} bytes`, 'INFLATED_BODY_TOO_LARGE');
    }
    throw httpError(400, `Invalid body request: the body is not valid ${name} data`, 'INVALID_BODY');
  }
  throw httpError(415, `Unsupported Content-Encoding '${encoding}': send identity, deflate or gzip`, 'UNSUPPORTED_ENCODING');
}

function isTooLarge(error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === 'ERR_BUFFER_TOO_LARGE';
}
