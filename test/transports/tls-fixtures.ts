/**
 * Test certificates made with the openssl CLI in a temp dir: a CA, a server certificate for
 * 127.0.0.1/localhost signed by it (its key also encrypted with a password), and a client
 * certificate signed by it (for mTLS).
 */

import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Paths and contents of the generated files. */
export interface TestPki {
  dir: string;
  caCert: string;
  serverCert: string;
  serverKey: string;
  /** The server key encrypted with {@link TestPki.password}. */
  serverKeyEncrypted: string;
  password: string;
  clientCert: string;
  clientKey: string;
  /** PEM contents by path. */
  read(path: string): Promise<Buffer>;
  remove(): Promise<void>;
}

async function openssl(dir: string, args: string[]): Promise<void> {
  await run('openssl', args, { cwd: dir, timeout: 30_000 });
}

/** Generates the certificates (a few hundred ms). */
export async function makeTestPki(): Promise<TestPki> {
  const dir = await mkdtemp(join(tmpdir(), 'sluice-pki-'));
  const password = 'test-password-123';
  await openssl(dir, ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=Sluice Test CA']);
  await writeFile(join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  await writeFile(join(dir, 'client.ext'), 'extendedKeyUsage=clientAuth\n');
  for (const [name, subject] of [['server', '/CN=localhost'], ['client', '/CN=test-client']] as const) {
    await openssl(dir, ['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject]);
    await openssl(dir, ['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.pem`, '-days', '2', '-extfile', `${name}.ext`]);
  }
  await openssl(dir, ['pkey', '-in', 'server.key', '-out', 'server-encrypted.key', '-aes256', '-passout', `pass:${password}`]);
  return {
    dir,
    caCert: join(dir, 'ca.pem'),
    serverCert: join(dir, 'server.pem'),
    serverKey: join(dir, 'server.key'),
    serverKeyEncrypted: join(dir, 'server-encrypted.key'),
    password,
    clientCert: join(dir, 'client.pem'),
    clientKey: join(dir, 'client.key'),
    read: (path) => readFile(path),
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}
