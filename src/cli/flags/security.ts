/**
 * Security flags of `sluice serve` / `sluice dev`: API keys, TLS with Rasa SDK's flag names, CORS
 * (Rasa SDK's `--cors`), and the listing switch; and {@link securityOptions}, which turns them into
 * the options of the HTTP and gRPC servers.
 *
 * Decision: `sluice serve` on a host other than loopback with no API key refuses to start unless
 * `--allow-unauthenticated` says that is meant (a server anyone on the network can drive should
 * not be an accident); on loopback (the default host, and `sluice dev`) no key is needed.
 * @module
 */

import { isIP } from 'node:net';
import { SluiceError } from '../../protocol/errors.ts';
import type { ApiKey, AuthOptions } from '../../transports/auth.ts';
import { resolveOrigins } from '../../transports/http/cross-site.ts';
import { loadTlsFiles, type TlsOptions } from '../../transports/tls.ts';
import type { FlagSpec, FlagValues } from './spec.ts';

/** The security flags. */
export const securityFlags: readonly FlagSpec[] = [
  { name: 'api-key', type: 'string', multiple: true, value: '[<principal>:]<key>', env: 'SLUICE_API_KEYS', help: 'accept this API key (repeat; env: comma-separated); keys with the same principal share runs and chats (rotation); turns authentication on', commands: ['serve', 'dev'] },
  { name: 'token-name', type: 'string', value: '<name>', env: 'SLUICE_TOKEN_NAME', default: 'token', help: "query parameter carrying a key (Rasa's action_endpoint token_name)", commands: ['serve', 'dev'] },
  { name: 'allow-unauthenticated', type: 'boolean', env: 'SLUICE_ALLOW_UNAUTHENTICATED', help: 'serve without an API key on a non-loopback host', commands: ['serve'] },
  { name: 'ssl-certificate', type: 'string', value: '<file>', env: 'SLUICE_SSL_CERTIFICATE', help: 'TLS certificate (PEM): HTTPS and gRPC over TLS', commands: ['serve', 'dev'] },
  { name: 'ssl-keyfile', type: 'string', value: '<file>', env: 'SLUICE_SSL_KEYFILE', help: 'private key of the TLS certificate (PEM)', commands: ['serve', 'dev'] },
  { name: 'ssl-password', type: 'string', value: '<password>', env: 'SLUICE_SSL_PASSWORD', help: 'password of an encrypted key file', commands: ['serve', 'dev'] },
  { name: 'ssl-ca-file', type: 'string', value: '<file>', env: 'SLUICE_SSL_CA_FILE', help: 'CA certificates (PEM) client certificates must be signed by: mTLS', commands: ['serve', 'dev'] },
  { name: 'cors', type: 'string', multiple: true, value: '<origin>', env: 'SLUICE_CORS', help: "allow this browser origin (repeat; '*' for any): CORS and WebSocket Origin", commands: ['serve', 'dev'] },
  { name: 'enable-listing', type: 'boolean', env: 'SLUICE_ENABLE_LISTING', help: "without authentication, let GET /voice/history list every session's turns", commands: ['serve', 'dev'] },
];

/** What the security flags give the servers. */
export interface SecurityOptions {
  /** Authentication (undefined: off). */
  auth?: AuthOptions;
  tls?: TlsOptions;
  /** CORS origins (also the WebSocket origins). */
  cors?: string[];
  /** Anonymous listing of every voice session's history. */
  listing?: boolean;
}

function list(value: FlagValues[string]): string[] {
  if (value === undefined || typeof value === 'boolean') return [];
  return (Array.isArray(value) ? value : [value]).flatMap((v) => v.split(',')).map((v) => v.trim()).filter((v) => v !== '');
}

function str(value: FlagValues[string]): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}

/**
 * One `--api-key` value: `<key>`, or `<principal>:<key>` to name who it authenticates (keys of one
 * principal share its runs and chats: rotate by adding the new key beside the old one). Without a
 * principal each key is its own, named by its fingerprint.
 */
export function parseApiKey(value: string): string | ApiKey {
  const match = /^([A-Za-z0-9_.@-]{1,64}):(.+)$/.exec(value);
  const key = match === null ? value : match[2]!;
  if (key.length < 16) {
    throw new SluiceError('invalid_argument', '--api-key / SLUICE_API_KEYS: each key must be at least 16 characters (generate one with: openssl rand -hex 32)');
  }
  return match === null ? key : { key, principal: match[1]! };
}

/** True for a loopback address or `localhost`. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h === '::1') return true;
  return isIP(h) === 4 && h.startsWith('127.');
}

/**
 * Turns the flag values into server options; throws `invalid_argument` naming the flag for a bad
 * value, a key file without a certificate (or the reverse), or a public host without a key.
 */
export function securityOptions(values: FlagValues, command: 'serve' | 'dev', host: string): SecurityOptions {
  const out: SecurityOptions = {};
  const keys = list(values['api-key']).map(parseApiKey);
  if (keys.length > 0) {
    out.auth = { apiKeys: keys };
    const tokenName = str(values['token-name']);
    if (tokenName !== undefined) out.auth.tokenName = tokenName;
  } else if (command === 'serve' && !isLoopback(host) && values['allow-unauthenticated'] !== true) {
    throw new SluiceError(
      'invalid_argument',
      `Refusing to serve on ${host} without authentication: anyone who can reach the port could run actions and read every run. ` +
        'Give --api-key <key> (or SLUICE_API_KEYS), or --allow-unauthenticated if this is meant (e.g. behind an authenticating proxy).',
    );
  }
  const certificate = str(values['ssl-certificate']);
  const keyfile = str(values['ssl-keyfile']);
  if ((certificate === undefined) !== (keyfile === undefined)) {
    throw new SluiceError('invalid_argument', '--ssl-certificate and --ssl-keyfile go together: give both for TLS');
  }
  const password = str(values['ssl-password']);
  const caFile = str(values['ssl-ca-file']);
  if (certificate === undefined && (password !== undefined || caFile !== undefined)) {
    throw new SluiceError('invalid_argument', `${password !== undefined ? '--ssl-password' : '--ssl-ca-file'} needs --ssl-certificate and --ssl-keyfile`);
  }
  if (certificate !== undefined && keyfile !== undefined) {
    out.tls = loadTlsFiles({ certificate, keyfile, ...(password === undefined ? {} : { password }), ...(caFile === undefined ? {} : { caFile }) });
  }
  const cors = list(values.cors);
  if (cors.length > 0) {
    try {
      out.cors = resolveOrigins(cors);
    } catch (error) {
      throw new SluiceError('invalid_argument', `--cors / SLUICE_CORS: ${(error as Error).message.replace('createHttpServer: ', '')}`);
    }
  }
  if (values['enable-listing'] === true) out.listing = true;
  return out;
}
