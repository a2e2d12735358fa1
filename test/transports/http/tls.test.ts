/**
 * HTTPS and mTLS of the HTTP transport, with certificates made by openssl (Rasa SDK's
 * --ssl-certificate / --ssl-keyfile / --ssl-password / --ssl-ca-file).
 */

import assert from 'node:assert/strict';
import https from 'node:https';
import { after, before, describe, it } from 'node:test';
import { WebSocket } from 'ws';
import { SluiceError } from '../../../src/protocol/errors.ts';
import { ActionExecutor } from '../../../src/runtime/executor.ts';
import { silentLogger } from '../../../src/runtime/logger.ts';
import { createHttpServer } from '../../../src/transports/http/index.ts';
import { loadTlsFiles } from '../../../src/transports/tls.ts';
import { makeTestPki, type TestPki } from '../tls-fixtures.ts';

function get(url: string, options: https.RequestOptions): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.get(url, { ...options, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
  });
}

describe('HTTPS', () => {
  let pki: TestPki;
  before(async () => {
    pki = await makeTestPki();
  });
  after(() => pki.remove());

  it('serves HTTPS and WSS with a certificate and an encrypted key; clients trusting the CA connect', async () => {
    const executor = new ActionExecutor({ logger: silentLogger });
    const tls = loadTlsFiles({ certificate: pki.serverCert, keyfile: pki.serverKeyEncrypted, password: pki.password });
    const app = createHttpServer({ executor, tls, logger: false });
    const url = await app.listen({ port: 0, host: '127.0.0.1' });
    try {
      assert.match(url, /^https:/);
      const ca = await pki.read(pki.caCert);
      assert.deepEqual(await get(`${url}/health`, { ca }), { status: 200, body: '{"status":"ok"}' });
      await assert.rejects(get(`${url}/health`, {}), /self.signed|unable to verify|certificate/i);
      const socket = new WebSocket(`${url.replace('https', 'wss')}/ws`, { ca });
      await new Promise<void>((resolve, reject) => {
        socket.once('open', () => resolve());
        socket.once('error', reject);
      });
      socket.close();
    } finally {
      await app.close();
      await executor.close();
    }
  });

  it('with a CA file (mTLS): a client without a certificate signed by it is refused', async () => {
    const executor = new ActionExecutor({ logger: silentLogger });
    const app = createHttpServer({ executor, logger: false, tls: loadTlsFiles({ certificate: pki.serverCert, keyfile: pki.serverKey, caFile: pki.caCert }) });
    const url = await app.listen({ port: 0, host: '127.0.0.1' });
    try {
      const ca = await pki.read(pki.caCert);
      const withCert = await get(`${url}/health`, { ca, cert: await pki.read(pki.clientCert), key: await pki.read(pki.clientKey) });
      assert.equal(withCert.status, 200);
      // With authentication on, the verified certificate authenticates (as cert:<CN>).
      const keyed = createHttpServer({ executor, logger: false, auth: { apiKeys: ['k'.repeat(20)] }, tls: loadTlsFiles({ certificate: pki.serverCert, keyfile: pki.serverKey, caFile: pki.caCert }) });
      const keyedUrl = await keyed.listen({ port: 0, host: '127.0.0.1' });
      try {
        assert.equal((await get(`${keyedUrl}/actions`, { ca, cert: await pki.read(pki.clientCert), key: await pki.read(pki.clientKey) })).status, 200);
      } finally {
        await keyed.close();
      }
      await assert.rejects(get(`${url}/health`, { ca }));
      // A certificate the CA did not sign: the server's own key pair presented as a client.
      await assert.rejects(get(`${url}/health`, { ca, cert: await pki.read(pki.caCert), key: await pki.read(pki.serverKey) }));
    } finally {
      await app.close();
      await executor.close();
    }
  });

  it('names the flag of a file that cannot be read, and refuses a wrong password at start-up', async () => {
    assert.throws(() => loadTlsFiles({ certificate: '/nonexistent.pem', keyfile: pki.serverKey }), (e: unknown) => SluiceError.isInstance(e) && /--ssl-certificate/.test(e.message));
    assert.throws(() => loadTlsFiles({ certificate: pki.serverCert, keyfile: pki.serverKey, caFile: '/nope' }), /--ssl-ca-file/);
    const executor = new ActionExecutor({ logger: silentLogger });
    const tls = loadTlsFiles({ certificate: pki.serverCert, keyfile: pki.serverKeyEncrypted, password: 'wrong' });
    assert.throws(() => createHttpServer({ executor, tls }), /invalid TLS certificate, key or password/);
    await executor.close();
  });
});
