/**
 * The security flags (`src/cli/flags/security.ts`): API keys from flags and SLUICE_API_KEYS, the
 * refusal to serve a public host without a key, Rasa's TLS flag names, --cors; and `startServer`
 * with them (both listeners authenticated).
 */

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Code, ConnectError, createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { coreFlags } from '../../src/cli/flags/core.ts';
import { parseCommandLine } from '../../src/cli/flags/parse.ts';
import { isLoopback, securityFlags, securityOptions } from '../../src/cli/flags/security.ts';
import { startServer } from '../../src/cli/serve.ts';
import { SluiceError } from '../../src/protocol/errors.ts';
import { silentLogger } from '../../src/runtime/logger.ts';
import { ActionService } from '../../src/transports/grpc/gen/action_webhook_pb.ts';
import { makeTestPki, type TestPki } from '../transports/tls-fixtures.ts';

const FLAGS = [...coreFlags, ...securityFlags];
const KEY = `cli-key-${randomUUID()}`;

function options(argv: string[], env: Record<string, string> = {}) {
  const line = parseCommandLine(argv, FLAGS, env);
  const host = typeof line.values.host === 'string' ? line.values.host : '127.0.0.1';
  return securityOptions(line.values, line.command as 'serve' | 'dev', host);
}

describe('security flags', () => {
  let pki: TestPki;
  before(async () => {
    pki = await makeTestPki();
  });
  after(() => pki.remove());

  it('API keys from repeated --api-key or comma-separated SLUICE_API_KEYS; --token-name', () => {
    assert.deepEqual(options(['serve', '--api-key', KEY, '--api-key', `${KEY}2`, '--token-name', 'auth']).auth, { apiKeys: [KEY, `${KEY}2`], tokenName: 'auth' });
    assert.deepEqual(options(['serve'], { SLUICE_API_KEYS: `${KEY}, ${KEY}3` }).auth, { apiKeys: [KEY, `${KEY}3`] });
    assert.equal(options(['dev']).auth, undefined, 'dev on loopback needs no key');
    assert.throws(() => options(['serve', '--api-key', 'short']), /at least 16/);
    assert.throws(() => options(['serve', '--api-key', 'web:short']), /at least 16/);
    assert.deepEqual(options(['serve', '--api-key', `web:${KEY}`, '--api-key', `web:${KEY}9`]).auth?.apiKeys, [
      { key: KEY, principal: 'web' },
      { key: `${KEY}9`, principal: 'web' },
    ]);
  });

  it('refuses to serve a non-loopback host without a key unless --allow-unauthenticated', () => {
    assert.throws(
      () => options(['serve', '--host', '0.0.0.0']),
      (e: unknown) => SluiceError.isInstance(e) && /--api-key/.test(e.message) && /--allow-unauthenticated/.test(e.message),
    );
    assert.deepEqual(options(['serve', '--host', '0.0.0.0', '--allow-unauthenticated']), {});
    assert.deepEqual(options(['serve', '--host', '0.0.0.0'], { SLUICE_ALLOW_UNAUTHENTICATED: 'true' }), {});
    assert.ok(options(['serve', '--host', '0.0.0.0', '--api-key', KEY]).auth);
    for (const host of ['127.0.0.1', 'localhost', '::1', '[::1]', '127.0.0.2']) assert.equal(isLoopback(host), true, host);
    for (const host of ['0.0.0.0', '::', '10.0.0.1', 'example.com']) assert.equal(isLoopback(host), false, host);
  });

  it("reads TLS files with Rasa SDK's flag names, naming the flag of a problem", () => {
    const tls = options(['serve', '--ssl-certificate', pki.serverCert, '--ssl-keyfile', pki.serverKeyEncrypted, '--ssl-password', pki.password, '--ssl-ca-file', pki.caCert]).tls;
    assert.ok(tls?.cert && tls.key && tls.ca);
    assert.equal(tls.passphrase, pki.password);
    assert.throws(() => options(['serve', '--ssl-keyfile', pki.serverKey]), /--ssl-certificate and --ssl-keyfile go together/);
    assert.throws(() => options(['serve', '--ssl-ca-file', pki.caCert]), /--ssl-ca-file needs/);
    assert.throws(() => options(['serve', '--ssl-certificate', '/nope.pem', '--ssl-keyfile', pki.serverKey]), /--ssl-certificate: cannot read/);
  });

  it('--cors origins (repeated, or SLUICE_CORS), checked; --enable-listing', () => {
    assert.deepEqual(options(['serve', '--cors', 'https://a.example', '--cors', '*']).cors, ['https://a.example', '*']);
    assert.deepEqual(options(['dev'], { SLUICE_CORS: 'http://localhost:3000/' }).cors, ['http://localhost:3000']);
    assert.throws(() => options(['serve', '--cors', 'a.example']), /--cors.*invalid CORS origin/);
    assert.equal(options(['dev', '--enable-listing']).listing, true);
  });

  it('startServer with a key: HTTP and gRPC both need it, /health stays open', async () => {
    const server = await startServer({ actions: 'examples/actions.ts', host: '127.0.0.1', port: 0, grpcPort: 0, logger: silentLogger, security: { auth: { apiKeys: [KEY] } } });
    try {
      assert.equal((await fetch(`${server.httpUrl}/health`)).status, 200);
      assert.equal((await fetch(`${server.httpUrl}/actions`)).status, 401);
      assert.equal((await fetch(`${server.httpUrl}/actions`, { headers: { authorization: `Bearer ${KEY}` } })).status, 200);
      const client = createClient(ActionService, createGrpcTransport({ baseUrl: `http://${server.grpcAddress}` }));
      await assert.rejects(client.actions({}), (e: unknown) => ConnectError.from(e).code === Code.Unauthenticated);
      assert.ok((await client.actions({}, { headers: { authorization: `Bearer ${KEY}` } })).actions.length > 0);
      assert.equal((await fetch(`${server.metricsUrl}`)).status, 401, '/metrics on the HTTP port needs the key');
      assert.equal((await fetch(`${server.metricsUrl}`, { headers: { authorization: `Bearer ${KEY}` } })).status, 200);
    } finally {
      await server.close();
    }
  });

  it('/metrics on a port of its own takes the same keys', async () => {
    const server = await startServer({
      actions: 'examples/actions.ts', host: '127.0.0.1', port: 0, grpcPort: 0, logger: silentLogger,
      security: { auth: { apiKeys: [KEY] } }, metrics: { path: '/metrics', port: 0 },
    });
    try {
      assert.ok(server.metricsUrl !== undefined && !server.metricsUrl.startsWith(server.httpUrl), server.metricsUrl);
      assert.equal((await fetch(server.metricsUrl)).status, 401);
      const scraped = await fetch(server.metricsUrl, { headers: { authorization: `Bearer ${KEY}` } });
      assert.equal(scraped.status, 200);
      assert.match(await scraped.text(), /sluice_runs_started_total/);
    } finally {
      await server.close();
    }
  });
});
