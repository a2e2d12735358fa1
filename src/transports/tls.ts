/**
 * TLS for the HTTP and gRPC listeners, with Rasa SDK's settings: a certificate and its key (with an
 * optional password), and a CA file that turns on client certificates (mTLS: a client without a
 * certificate signed by that CA is refused during the handshake).
 * @module
 */

import { readFileSync } from 'node:fs';
import { createSecureContext, type SecureContextOptions } from 'node:tls';
import { SluiceError } from '../protocol/errors.ts';

/** TLS settings of `createHttpServer` / `createGrpcServer` (PEM contents, not paths). */
export interface TlsOptions {
  /** The server's certificate chain (PEM). */
  cert: string | Buffer;
  /** Its private key (PEM). */
  key: string | Buffer;
  /** The key's password, for an encrypted key. */
  passphrase?: string;
  /** CA certificates (PEM) that client certificates must be signed by: turns on mTLS. */
  ca?: string | Buffer;
}

/** Paths of the TLS files, as Rasa SDK's flags name them. */
export interface TlsFiles {
  /** `--ssl-certificate` */
  certificate: string;
  /** `--ssl-keyfile` */
  keyfile: string;
  /** `--ssl-password` */
  password?: string;
  /** `--ssl-ca-file` */
  caFile?: string;
}

function read(flag: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    throw new SluiceError('invalid_argument', `${flag}: cannot read '${path}': ${(error as Error).message}`, { cause: error });
  }
}

/** Reads the files of {@link TlsFiles}; throws `invalid_argument` naming the flag of one that cannot be read. */
export function loadTlsFiles(files: TlsFiles): TlsOptions {
  const tls: TlsOptions = { cert: read('--ssl-certificate', files.certificate), key: read('--ssl-keyfile', files.keyfile) };
  if (files.password !== undefined) tls.passphrase = files.password;
  if (files.caFile !== undefined) tls.ca = read('--ssl-ca-file', files.caFile);
  return tls;
}

/** Node's server options for {@link TlsOptions}; checks them now so a bad key fails at start-up. */
export function serverTlsOptions(who: string, tls: TlsOptions): SecureContextOptions & { requestCert: boolean; rejectUnauthorized: boolean } {
  if (typeof tls !== 'object' || tls === null || tls.cert === undefined || tls.key === undefined) {
    throw new SluiceError('invalid_argument', `${who}: 'tls' needs 'cert' and 'key' (PEM)`);
  }
  const mtls = tls.ca !== undefined;
  const context = { cert: tls.cert, key: tls.key, passphrase: tls.passphrase, ca: tls.ca };
  try {
    createSecureContext(context);
  } catch (error) {
    throw new SluiceError('invalid_argument', `${who}: invalid TLS certificate, key or password: ${(error as Error).message}`, { cause: error });
  }
  return { ...context, requestCert: mtls, rejectUnauthorized: mtls };
}
