/**
 * Authentication shared by the HTTP and gRPC transports: API keys, accepted the ways real clients
 * send them, and a hook for the user's own scheme (JWT, sessions).
 *
 * Credentials are looked for, in order, in:
 * - `Authorization: Bearer <key>` (HTTP, WebSocket upgrade, gRPC `authorization` metadata);
 * - `Authorization: Basic …` — Rasa's `action_endpoint.basic_auth`: the **password** is the key
 *   (the username is free, e.g. `rasa`); a key in the username with an empty password
 *   (`curl -u <key>:`) is accepted too;
 * - the query parameter `token` (or the name set with `tokenName`) — Rasa's `action_endpoint.token`
 *   / `token_name`, and the only way a browser can authenticate a WebSocket.
 *
 * - a client certificate verified by the `--ssl-ca-file` CA (mTLS): Rasa's gRPC client
 *   authenticates this way (it sends no key), as the principal `cert:<subject CN>`. It is tried
 *   after the keys and the hook.
 *
 * Keys are compared in constant time: each candidate's SHA-256 against every configured key's
 * SHA-256 with `crypto.timingSafeEqual`, with no early exit, so neither the length nor the prefix
 * of a key leaks through timing.
 * @module
 */

import { createHash, timingSafeEqual } from 'node:crypto';
import type { Principal } from '../channels/principal.ts';
import { SluiceError } from '../protocol/errors.ts';

export type { Principal } from '../channels/principal.ts';

/** What an {@link Authenticate} hook sees of a request, whatever its transport. */
export interface AuthRequest {
  /** Header (or gRPC metadata) values by lower-case name. */
  headers: Readonly<Record<string, string | string[] | undefined>>;
  /** Path and query string as received. */
  url: string;
  /** The query string, parsed. */
  query: URLSearchParams;
  method: string;
  remoteAddress: string | undefined;
  /** `http`, `websocket` (an upgrade request) or `grpc`. */
  transport: 'http' | 'websocket' | 'grpc';
  /** The client certificate, when the connection is TLS with a certificate the server's CA verified. */
  clientCertificate?: { subject: string; fingerprint256: string };
}

/**
 * The user's own authentication: a principal (or its id) for a request it accepts, null or
 * undefined for one it does not (answered 401 / UNAUTHENTICATED). A throw is answered the same
 * way and logged.
 */
export type Authenticate = (request: AuthRequest) => Principal | string | null | undefined | Promise<Principal | string | null | undefined>;

/** An API key with the principal id it authenticates as. */
export interface ApiKey {
  key: string;
  /** Default: `key-` and the first 12 hex characters of the key's SHA-256 (a fingerprint, not the key). */
  principal?: string;
}

/** Authentication settings of `createHttpServer` / `createGrpcServer`. */
export interface AuthOptions {
  /**
   * Accepted API keys (several for rotation). Each key is its own principal unless given as
   * `{ key, principal }`: give two keys the same principal to rotate without losing access to the
   * runs and chats started with the old one.
   */
  apiKeys?: readonly (string | ApiKey)[];
  /** Query parameter carrying a key (Rasa's `token_name`). Default `token`. */
  tokenName?: string;
  /** The user's own scheme, tried when no API key matched. */
  authenticate?: Authenticate;
  /** Realm of the `WWW-Authenticate` challenge. Default `sluice`. */
  realm?: string;
}

/** Shortest key accepted: a shorter one is guessable. */
export const MIN_KEY_LENGTH = 16;

interface KeyEntry {
  hash: Buffer;
  principal: Principal;
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

/** The default principal id of a key: a fingerprint of it. */
export function keyFingerprint(key: string): string {
  return `key-${sha256(key).toString('hex').slice(0, 12)}`;
}

function invalid(message: string): SluiceError {
  return new SluiceError('invalid_argument', `auth: ${message}`);
}

/** Why a request was not authenticated (for the 401 body and the log). */
export type AuthFailure = 'missing' | 'invalid';

/** The outcome of {@link Authenticator.authenticate}. */
export type AuthResult = { ok: true; principal: Principal | undefined } | { ok: false; failure: AuthFailure };

/**
 * Checks requests against {@link AuthOptions}. With neither keys nor a hook it is disabled: every
 * request is anonymous (principal undefined).
 */
export class Authenticator {
  readonly enabled: boolean;
  readonly tokenName: string;
  readonly realm: string;
  readonly #keys: KeyEntry[];
  readonly #hook: Authenticate | undefined;

  /** @throws {SluiceError} `invalid_argument` naming a bad option (a short or empty key…). */
  constructor(options: AuthOptions = {}) {
    if (typeof options !== 'object' || options === null) throw invalid('options must be an object');
    const keys = options.apiKeys ?? [];
    if (!Array.isArray(keys)) throw invalid("'apiKeys' must be an array of keys");
    this.#keys = keys.map((given, index) => {
      const entry = typeof given === 'string' ? { key: given } : given;
      if (typeof entry !== 'object' || entry === null || typeof entry.key !== 'string') throw invalid(`apiKeys[${index}] must be a string or { key, principal }`);
      if (entry.key.trim() !== entry.key || entry.key.length < MIN_KEY_LENGTH) {
        throw invalid(`apiKeys[${index}] must be at least ${MIN_KEY_LENGTH} characters with no surrounding spaces (generate one with: openssl rand -hex 32)`);
      }
      if (entry.principal !== undefined && (typeof entry.principal !== 'string' || entry.principal === '')) {
        throw invalid(`apiKeys[${index}].principal must be a non-empty string`);
      }
      return { hash: sha256(entry.key), principal: { id: entry.principal ?? keyFingerprint(entry.key) } };
    });
    if (options.authenticate !== undefined && typeof options.authenticate !== 'function') throw invalid("'authenticate' must be a function (request) => principal | null");
    this.#hook = options.authenticate;
    this.tokenName = options.tokenName ?? 'token';
    if (typeof this.tokenName !== 'string' || !/^[A-Za-z0-9_.-]{1,64}$/.test(this.tokenName)) throw invalid("'tokenName' must be a query parameter name (letters, digits, _ . -)");
    this.realm = options.realm ?? 'sluice';
    if (typeof this.realm !== 'string' || /["\\\r\n]/.test(this.realm)) throw invalid("'realm' must be a string without quotes or line breaks");
    this.enabled = this.#keys.length > 0 || this.#hook !== undefined;
  }

  /** The `WWW-Authenticate` challenge of a 401. */
  get challenge(): string {
    return `Bearer realm="${this.realm}"`;
  }

  /** The principal of a request, or why it has none. Never throws. */
  async authenticate(request: AuthRequest, onHookError?: (error: unknown) => void): Promise<AuthResult> {
    if (!this.enabled) return { ok: true, principal: undefined };
    const candidates = this.#candidates(request);
    if (this.#keys.length > 0) {
      for (const candidate of candidates) {
        const principal = this.#match(candidate);
        if (principal !== undefined) return { ok: true, principal };
      }
    }
    if (this.#hook !== undefined) {
      try {
        const found = await this.#hook(request);
        if (typeof found === 'string' && found !== '') return { ok: true, principal: { id: found } };
        if (typeof found === 'object' && found !== null && typeof found.id === 'string' && found.id !== '') return { ok: true, principal: found };
      } catch (error) {
        onHookError?.(error);
      }
    }
    const certificate = request.clientCertificate;
    if (certificate !== undefined) return { ok: true, principal: { id: `cert:${certificate.subject}`, fingerprint256: certificate.fingerprint256 } };
    return { ok: false, failure: candidates.length === 0 && !hasAuthorization(request) ? 'missing' : 'invalid' };
  }

  /** Constant time over the configured keys: every key is compared, whatever matches. */
  #match(candidate: string): Principal | undefined {
    const hash = sha256(candidate);
    let found: Principal | undefined;
    for (const entry of this.#keys) {
      if (timingSafeEqual(hash, entry.hash) && found === undefined) found = entry.principal;
    }
    return found;
  }

  /** The keys a request presents (Bearer, Basic password or username, query token). */
  #candidates(request: AuthRequest): string[] {
    const out: string[] = [];
    const header = first(request.headers.authorization);
    if (header !== undefined) {
      const space = header.indexOf(' ');
      const scheme = (space === -1 ? header : header.slice(0, space)).toLowerCase();
      const value = space === -1 ? '' : header.slice(space + 1).trim();
      if (scheme === 'bearer' && value !== '') out.push(value);
      else if (scheme === 'basic' && value !== '') {
        const decoded = Buffer.from(value, 'base64').toString('utf8');
        const colon = decoded.indexOf(':');
        const user = colon === -1 ? decoded : decoded.slice(0, colon);
        const password = colon === -1 ? '' : decoded.slice(colon + 1);
        if (password !== '') out.push(password);
        else if (user !== '') out.push(user);
      }
    }
    for (const token of request.query.getAll(this.tokenName)) if (token !== '') out.push(token);
    return out;
  }
}

/**
 * The verified client certificate of a TLS socket (mTLS), for {@link AuthRequest.clientCertificate};
 * undefined for plain connections and unverified or absent certificates.
 */
export function verifiedClientCertificate(socket: unknown): AuthRequest['clientCertificate'] {
  const tls = socket as { authorized?: boolean; getPeerCertificate?: () => { subject?: { CN?: unknown }; fingerprint256?: string } } | null;
  if (tls === null || typeof tls !== 'object' || tls.authorized !== true || typeof tls.getPeerCertificate !== 'function') return undefined;
  const cert = tls.getPeerCertificate();
  if (cert === undefined || cert === null || typeof cert.fingerprint256 !== 'string') return undefined;
  const cn = cert.subject?.CN;
  return { subject: typeof cn === 'string' ? cn : Array.isArray(cn) ? String(cn[0]) : cert.fingerprint256, fingerprint256: cert.fingerprint256 };
}

function first(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function hasAuthorization(request: AuthRequest): boolean {
  return first(request.headers.authorization) !== undefined;
}

/** The public message of a refused request. */
export function unauthenticatedMessage(failure: AuthFailure, tokenName: string, transport: 'http' | 'grpc' = 'http'): string {
  if (failure === 'invalid') return 'Authentication failed: the credentials sent are not valid';
  return transport === 'grpc'
    ? "Authentication required: send the metadata 'authorization: Bearer <api key>' (or Basic with the key as password)"
    : `Authentication required: send 'Authorization: Bearer <api key>' (or Basic auth with the key as password, or ?${tokenName}=<api key>)`;
}
