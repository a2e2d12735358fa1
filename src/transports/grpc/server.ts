/**
 * The gRPC transport: Rasa's `ActionService`, Sluice's `sluice.v1.VoiceService` (sentences for
 * voice gateways) and `grpc.health.v1.Health`, served with Connect
 * over cleartext HTTP/2 (h2c) on its own port — or HTTP/2 over TLS, with mTLS, given `tls` — so
 * stock grpc clients (Rasa's, grpcio, grpc-js) talk to it unchanged. With `auth`, every call but
 * health is authenticated before it is routed (see `auth.ts`).
 * @module
 */

import * as http2 from 'node:http2';
import type { AddressInfo, Socket } from 'node:net';
import { Code, ConnectError, createConnectRouter, createContextValues } from '@connectrpc/connect';
import { createMethodUrl, type UniversalServerRequest, type UniversalServerResponse } from '@connectrpc/connect/protocol';
import { compressionGzip, universalRequestFromNodeRequest } from '@connectrpc/connect-node';
import { SluiceError } from '../../protocol/errors.ts';
import type { ActionExecutor } from '../../runtime/executor.ts';
import type { Logger } from '../../runtime/logger.ts';
import type { Principal } from '../../channels/principal.ts';
import { Authenticator, unauthenticatedMessage, type AuthOptions } from '../auth.ts';
import { serverTlsOptions, type TlsOptions } from '../tls.ts';
import { actionServiceImpl, healthServiceImpl, type HealthState } from './action-service.ts';
import { grpcAuthRequest, isOpenMethod, principalKey } from './auth.ts';
import { ActionService } from './gen/action_webhook_pb.ts';
import { Health } from './gen/health_pb.ts';
import { VoiceService } from './gen/sluice_voice_pb.ts';
import { DEFAULT_STALL_TIMEOUT_MS, encodeGrpcMessage, writeUniversalResponse } from './response-writer.ts';
import { voiceServiceImpl } from './voice-service.ts';
import type { VoiceSessionLookup } from '../../channels/voice/control.ts';
import { createWebhookStreamHandler } from './webhook-stream-handler.ts';

/** Rasa SDK's default action-server port. */
export const DEFAULT_GRPC_PORT = 5055;

/**
 * Ends a call with a status and no messages in one HEADERS frame ("trailers-only"), as grpc
 * servers do; clients read no status from headers followed by an empty body.
 */
function trailersOnly(res: http2.Http2ServerResponse, code: Code, message: string): void {
  if (res.stream.closed || res.stream.destroyed || res.headersSent) return;
  res.stream.respond(
    { ':status': 200, 'content-type': 'application/grpc', 'grpc-status': String(code), 'grpc-message': encodeGrpcMessage(message) },
    { endStream: true },
  );
}

/**
 * The call was answered before its request was read to the end (e.g. the request was too large).
 * Once the trailers are out, RST_STREAM(NO_ERROR) tells the client to stop sending (RFC 9113
 * §8.1), and the stream is destroyed: Node would otherwise keep it open until the unread input is
 * consumed, which its compatibility layer never does once Connect stopped reading the request.
 */
function closeUnread(stream: http2.ServerHttp2Stream): void {
  const close = (): void => {
    if (stream.destroyed) return;
    stream.close(http2.constants.NGHTTP2_NO_ERROR);
    setImmediate(() => stream.destroy());
  };
  // Node sends the trailers from its own 'wantTrailers' listener, registered before this one.
  if (stream.sentTrailers !== undefined || stream.closed) setImmediate(close);
  else stream.once('wantTrailers', () => setImmediate(close));
}

/** Options of {@link createGrpcServer}. */
export interface GrpcServerOptions {
  /** Runs the actions; shared with other transports (the server never closes it). */
  executor: ActionExecutor;
  /** Default: the executor's logger. */
  logger?: Logger;
  /** Largest request message accepted, in bytes. Default 4 MiB, gRPC's own default. */
  readMaxBytes?: number;
  /** How long `close()` lets open calls finish before cutting connections, in ms. Default 5,000. */
  closeTimeoutMs?: number;
  /** The voice sockets `VoiceService`'s speech controls act on (a `VoiceChannel`). Default: none (UNIMPLEMENTED). */
  voice?: VoiceSessionLookup;
  /**
   * Authentication of every method but `grpc.health.v1.Health`: the `authorization` metadata
   * (`Bearer <key>`, or Basic), or your `authenticate` hook (see `src/transports/auth.ts`).
   * Runs belong to the caller's principal: someone else's run is NOT_FOUND, their stream's ack a
   * no-op. Off without keys or a hook.
   */
  auth?: AuthOptions;
  /** TLS (and mTLS with `ca`): the server speaks HTTP/2 over TLS instead of h2c. */
  tls?: TlsOptions;
  /**
   * Longest a streaming call may wait for its client to take data (HTTP/2 flow control) before it
   * is reset with ENHANCE_YOUR_CALM (RESOURCE_EXHAUSTED), so no reader holds a run for ever. Default 30,000 ms.
   */
  stallTimeoutMs?: number;
  /** Most connections (HTTP/2 sessions) open at once; more are refused as they arrive. Default 10,000. */
  maxConnections?: number;
}

/** A gRPC server for Rasa's action protocol (and Sluice's sentence service for voice gateways). */
export interface GrpcServer {
  /**
   * Starts listening (h2c, or TLS with `tls`). Port 0 picks a free port; no host means every interface (like
   * Rasa's `[::]`). Resolves with the bound address.
   */
  listen(port?: number, host?: string): Promise<{ port: number; host: string }>;
  /**
   * Stops taking calls: health turns NOT_SERVING, open calls are cancelled (their runs too) and
   * end with UNAVAILABLE, connections get a GOAWAY and are cut after `closeTimeoutMs`.
   */
  close(): Promise<void>;
  /** The request handler, to serve these services from an HTTP/2 server of your own. */
  readonly handler: (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void;
  /** The underlying HTTP/2 server (an `Http2SecureServer` with `tls`). */
  readonly server: http2.Http2Server | http2.Http2SecureServer;
}

/**
 * Creates the gRPC server for `executor`: `Webhook`, `WebhookStream`, `AckStreamChunks` and
 * `Actions` of `action_server_webhook.ActionService`, `StreamSentences` and `FollowSentences` of
 * `sluice.v1.VoiceService` (a run's sentences for voice gateways, see voice-service.ts), and
 * `grpc.health.v1.Health` with `""` and `"ActionServer"` SERVING.
 *
 * @example
 * const grpc = createGrpcServer({ executor });
 * const { port } = await grpc.listen(5055);
 */
export function createGrpcServer(options: GrpcServerOptions): GrpcServer {
  const { executor } = options;
  const logger = options.logger ?? executor.logger;
  const closeTimeoutMs = options.closeTimeoutMs ?? 5_000;
  const authenticator = new Authenticator(options.auth);
  const tls = options.tls === undefined ? undefined : serverTlsOptions('createGrpcServer', options.tls);
  const shutdown = new AbortController();
  const lifecycle = executor.lifecycle;
  let open = true;
  // NOT_SERVING as soon as a drain begins (a load balancer stops sending), not only at close.
  const health: HealthState = {
    get serving() {
      return open && lifecycle.accepting;
    },
    set serving(value: boolean) {
      open = value;
    },
    closing: AbortSignal.any([shutdown.signal, lifecycle.signal]),
  };
  // The RPCs that start runs; while draining they are refused before any work.
  const startsRuns = new Set([
    createMethodUrl('/', ActionService.method.webhook),
    createMethodUrl('/', ActionService.method.webhookStream),
    createMethodUrl('/', VoiceService.method.streamSentences),
  ]);

  // Rasa's server answers with gzip; we accept gzip requests, and Connect's handlers compress
  // responses over 1 KiB for clients that ask for it.
  const acceptCompression = [compressionGzip];
  const readMaxBytes = options.readMaxBytes ?? 4 * 1024 * 1024;
  const maxConnections = options.maxConnections ?? 10_000;
  if (!Number.isInteger(maxConnections) || maxConnections < 1) {
    throw new SluiceError('invalid_argument', `createGrpcServer: 'maxConnections' must be a positive integer (got ${String(options.maxConnections)})`);
  }
  const stallTimeoutMs = options.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS;
  if (typeof stallTimeoutMs !== 'number' || !Number.isFinite(stallTimeoutMs) || stallTimeoutMs <= 0) {
    throw new SluiceError('invalid_argument', `createGrpcServer: 'stallTimeoutMs' must be a finite number > 0 (got ${String(options.stallTimeoutMs)})`);
  }
  const router = createConnectRouter({
    grpc: true,
    grpcWeb: false,
    connect: false,
    acceptCompression,
    readMaxBytes,
    shutdownSignal: shutdown.signal,
  });
  router.service(ActionService, actionServiceImpl(executor, logger));
  router.service(Health, healthServiceImpl(health));
  router.service(VoiceService, voiceServiceImpl(executor, options.voice));
  const routes = new Map<string, (request: UniversalServerRequest) => Promise<UniversalServerResponse>>();
  for (const handler of router.handlers) routes.set(handler.requestPath, handler);
  // The streaming hot path: batched, with Connect's handler behind it for unusual requests.
  const streamPath = createMethodUrl('/', ActionService.method.webhookStream);
  const connectStream = router.handlers.find((handler) => handler.requestPath === streamPath);
  if (connectStream === undefined) throw new Error(`no Connect handler for ${streamPath}`);
  routes.set(
    streamPath,
    createWebhookStreamHandler({ executor, fallback: connectStream, readMaxBytes, shutdownSignal: shutdown.signal, logger }),
  );

  const handler = (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse): void => {
    const url = req.url;
    const query = url.indexOf('?');
    const path = query === -1 ? url : url.slice(0, query);
    if (!authenticator.enabled || isOpenMethod(path)) {
      serve(req, res, path, undefined);
      return;
    }
    // Before routing: an unauthenticated caller learns nothing, not even which methods exist.
    void authenticator
      .authenticate(grpcAuthRequest(req), (error) => logger.warn({ err: error, path }, 'authenticate hook failed'))
      .then((result) => {
        if (result.ok) serve(req, res, path, result.principal);
        else {
          logger.debug({ path, failure: result.failure }, 'gRPC call refused: not authenticated');
          trailersOnly(res, Code.Unauthenticated, unauthenticatedMessage(result.failure, authenticator.tokenName, 'grpc'));
          // The request was not read: tell the client to stop sending it (see closeUnread).
          if (!req.complete) setImmediate(() => res.stream.destroyed || res.stream.close(http2.constants.NGHTTP2_NO_ERROR));
        }
      })
      .catch((error: unknown) => {
        logger.error({ err: error, path }, 'gRPC call failed');
        trailersOnly(res, Code.Internal, 'internal error');
      });
  };

  const serve = (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse, path: string, principal: Principal | undefined): void => {
    const url = req.url;
    const route = routes.get(path);
    if (route === undefined) {
      trailersOnly(res, Code.Unimplemented, `unknown method ${url}`);
      return;
    }
    if (!lifecycle.accepting && startsRuns.has(path)) {
      trailersOnly(res, Code.Unavailable, 'the server is shutting down');
      return;
    }
    let universal: ReturnType<typeof universalRequestFromNodeRequest>;
    try {
      const values = principal === undefined ? undefined : createContextValues().set(principalKey, principal);
      universal = universalRequestFromNodeRequest(req, res, undefined, values);
    } catch (error) {
      // E.g. a request without :authority; answer it rather than throw out of the server.
      logger.debug({ err: error, path: url }, 'gRPC request rejected');
      trailersOnly(res, Code.InvalidArgument, ConnectError.from(error).rawMessage);
      return;
    }
    route(universal)
      .then((response) => writeUniversalResponse(safeStatus(response), res, stallTimeoutMs))
      .then(() => {
        if (!req.complete) closeUnread(res.stream);
      })
      .catch((error: unknown) => {
        const code = ConnectError.from(error).code;
        // A client that went away mid-call is routine.
        if (code === Code.Aborted || code === Code.Canceled) logger.debug({ err: error, path: url }, 'gRPC call ended early');
        else logger.error({ err: error, path: url }, 'gRPC call failed');
      });
  };

  const server = tls === undefined ? http2.createServer(handler) : http2.createSecureServer({ ...tls, allowHTTP1: false }, handler);
  server.maxConnections = maxConnections;
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (session) => {
    sessions.add(session);
    session.once('close', () => sessions.delete(session));
  });
  // A closed or destroyed session only ends its socket and waits for the client to close its side:
  // the sockets are cut at the close timeout, so a client that never does cannot hold close().
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  server.on('sessionError', (error) => logger.debug({ err: error }, 'gRPC connection error'));

  let closing: Promise<void> | null = null;

  return {
    handler,
    server,

    listen(port = DEFAULT_GRPC_PORT, host?: string) {
      return new Promise((resolve, reject) => {
        const onError = (error: Error): void => reject(error);
        server.once('error', onError);
        server.listen(port, host, () => {
          server.off('error', onError);
          const address = server.address() as AddressInfo;
          logger.info({ port: address.port, host: address.address }, `gRPC action server listening on ${address.address}:${address.port}`);
          resolve({ port: address.port, host: address.address });
        });
      });
    },

    close() {
      closing ??= new Promise<void>((resolve) => {
        health.serving = false;
        shutdown.abort(new ConnectError('the server is shutting down', Code.Unavailable));
        if (!server.listening) {
          for (const session of sessions) session.destroy();
          for (const socket of sockets) socket.destroy();
          resolve();
          return;
        }
        // Not unref'd: `await close()` must settle even when nothing else keeps the process up.
        const timer = setTimeout(() => {
          for (const session of sessions) session.destroy();
          for (const socket of sockets) socket.destroy();
        }, closeTimeoutMs);
        server.close(() => {
          clearTimeout(timer);
          resolve();
        });
        // GOAWAY: each connection closes once its open calls (now cancelled) have ended.
        for (const session of sessions) session.close();
      });
      return closing;
    },
  };
}

/**
 * A request the server could not decode is the client's error: Connect reports it as INTERNAL
 * with the parser's own text (`parse binary: premature EOF`). Such a status becomes
 * INVALID_ARGUMENT with a message that says what was wrong without the decoder's detail.
 */
const DECODE_FAILURE = /^(parse binary|parse json|decompress)/;
const SAFE_DECODE_MESSAGE = 'invalid request: the message could not be decoded as the method\'s protobuf request type';

function fixDecodeStatus(headers: Headers | undefined): void {
  if (headers === undefined || headers.get('grpc-status') !== String(Code.Internal)) return;
  let message: string;
  try {
    message = decodeURIComponent(headers.get('grpc-message') ?? '');
  } catch {
    return;
  }
  if (!DECODE_FAILURE.test(message)) return;
  headers.set('grpc-status', String(Code.InvalidArgument));
  headers.set('grpc-message', encodeURIComponent(SAFE_DECODE_MESSAGE));
}

function safeStatus(response: UniversalServerResponse): UniversalServerResponse {
  fixDecodeStatus(response.header);
  const body = response.body;
  if (body === undefined || !(Symbol.asyncIterator in (body as object))) {
    fixDecodeStatus(response.trailer);
    return response;
  }
  // The trailer of a streamed answer is filled while its body is read.
  async function* checked(): AsyncGenerator<Uint8Array> {
    try {
      yield* body as AsyncIterable<Uint8Array>;
    } finally {
      fixDecodeStatus(response.trailer);
    }
  }
  return { ...response, body: checked() };
}
