/**
 * Authentication, ownership and TLS of the gRPC transport (issue 14): the `authorization`
 * metadata (Bearer, Basic), health open, UNAUTHENTICATED otherwise; someone else's run is
 * NOT_FOUND and their stream's ack a no-op; TLS and mTLS with certificates made by openssl, checked
 * with a stock Python grpcio client and Connect's Node client.
 */

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { Code, ConnectError, createClient, type Interceptor } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { defineAction } from '../../../src/runtime/action.ts';
import { ActionExecutor } from '../../../src/runtime/executor.ts';
import { silentLogger } from '../../../src/runtime/logger.ts';
import { slotSet } from '../../../src/runtime/rasa-events.ts';
import { createGrpcServer, type GrpcServer } from '../../../src/transports/grpc/index.ts';
import { ActionService } from '../../../src/transports/grpc/gen/action_webhook_pb.ts';
import { Health } from '../../../src/transports/grpc/gen/health_pb.ts';
import { VoiceService } from '../../../src/transports/grpc/gen/sluice_voice_pb.ts';
import { loadTlsFiles } from '../../../src/transports/tls.ts';
import { makeTestPki, type TestPki } from '../tls-fixtures.ts';
import { request, sleep } from './helpers.ts';

const execFileAsync = promisify(execFile);
const SCRIPT = new URL('./fixtures/python_tls_client.py', import.meta.url).pathname;
const KEY_A = `grpc-key-a-${randomUUID()}`;
const KEY_B = `grpc-key-b-${randomUUID()}`;

const talk = defineAction({
  name: 'action_talk',
  async run(d) {
    await d.streamChunk({ text: 'Hello. ' });
    for (let i = 0; i < 1_000 && !d.signal.aborted; i++) await sleep(10);
    await d.streamEnd();
    return [slotSet('stopped', true)];
  },
});

function withKey(key: string | undefined): Interceptor[] {
  if (key === undefined) return [];
  return [(next) => (req) => {
    req.header.set('authorization', `Bearer ${key}`);
    return next(req);
  }];
}

async function findPython(): Promise<string | null> {
  for (const python of [process.env.SLUICE_PYTHON, '/usr/bin/python3', 'python3'].filter((c): c is string => !!c)) {
    try {
      await execFileAsync(python, ['-c', 'import grpc']);
      return python;
    } catch {
      // try the next one
    }
  }
  return null;
}

describe('gRPC authentication and ownership', () => {
  let executor: ActionExecutor;
  let server: GrpcServer;
  let port: number;
  const clients = (key?: string) => {
    const transport = createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}`, interceptors: withKey(key) });
    return { action: createClient(ActionService, transport), health: createClient(Health, transport), voice: createClient(VoiceService, transport) };
  };

  before(async () => {
    executor = new ActionExecutor({ logger: silentLogger, actions: [talk], bargeInTimeoutSeconds: 1 });
    server = createGrpcServer({ executor, logger: silentLogger, auth: { apiKeys: [KEY_A, KEY_B] } });
    port = (await server.listen(0, '127.0.0.1')).port;
  });
  after(async () => {
    await server.close();
    await executor.close();
  });

  it('health stays open; every other method needs the authorization metadata (UNAUTHENTICATED)', async () => {
    const anonymous = clients();
    assert.equal((await anonymous.health.check({ service: '' })).status, 1);
    for (const [name, attempt] of [
      ['Actions', () => anonymous.action.actions({})],
      ['Ack', () => anonymous.action.ackStreamChunks({ responseId: 'x' })],
      ['WebhookStream', async () => {
        for await (const _ of anonymous.action.webhookStream(request('action_talk'))) assert.fail('no message expected');
      }],
    ] as const) {
      await assert.rejects(attempt(), (error: unknown) => {
        const e = ConnectError.from(error);
        assert.equal(e.code, Code.Unauthenticated, name);
        assert.match(e.rawMessage, /authorization: Bearer/);
        return true;
      });
    }
    await assert.rejects(clients('wrong-key-wrong-key').action.actions({}), (e: unknown) => ConnectError.from(e).code === Code.Unauthenticated);
    assert.deepEqual((await clients(KEY_A).action.actions({})).actions.map((a) => a.name), ['action_talk']);
    assert.equal(executor.activeRuns, 0, 'no refused call started a run');
  });

  it('another principal can neither barge in on a stream nor follow its run (NOT_FOUND)', async () => {
    const a = clients(KEY_A);
    const b = clients(KEY_B);
    const controller = new AbortController();
    const stream = a.action.webhookStream(request('action_talk'), { signal: controller.signal })[Symbol.asyncIterator]();
    const first = (await stream.next()).value;
    assert.equal(first?.event.case, 'chunkStart');
    const responseId = (first!.event.value as { responseId: string }).responseId;
    const run = executor.runOfStream(responseId)!;

    await b.action.ackStreamChunks({ responseId });
    await sleep(50);
    assert.equal(run.isCancelled, false, "B's ack did not barge in");
    await assert.rejects(
      async () => {
        for await (const _ of b.voice.followSentences({ runId: run.id })) assert.fail('no sentence for B');
      },
      (e: unknown) => ConnectError.from(e).code === Code.NotFound,
    );
    await assert.rejects(
      async () => {
        for await (const _ of b.voice.followSentences({ runId: randomUUID() })) assert.fail('no run');
      },
      (e: unknown) => ConnectError.from(e).code === Code.NotFound,
      'the same status as for an unknown run',
    );

    await a.action.ackStreamChunks({ responseId });
    assert.equal(run.isCancelled, true, "the owner's ack barges in");
    const rest: string[] = [];
    for (let step = await stream.next(); step.done !== true; step = await stream.next()) rest.push(step.value.event.case ?? '');
    assert.equal(rest.at(-1), 'finalResult');
    assert.equal(rest.includes('chunkEnd'), false, 'a barged-in stream has no chunk_end');
    await run.done;
  });
});

describe('TLS and mTLS (HTTP/2 for gRPC)', () => {
  let pki: TestPki;
  let python: string | null;
  before(async () => {
    pki = await makeTestPki();
    python = await findPython();
  });
  after(() => pki.remove());

  it('serves gRPC over TLS (encrypted key + password) to a stock Python grpcio client and to Connect’s Node client', async (t) => {
    const executor = new ActionExecutor({ logger: silentLogger, actions: [talk] });
    const tls = loadTlsFiles({ certificate: pki.serverCert, keyfile: pki.serverKeyEncrypted, password: pki.password });
    const server = createGrpcServer({ executor, logger: silentLogger, tls, auth: { apiKeys: [KEY_A] } });
    const { port } = await server.listen(0, '127.0.0.1');
    try {
      const transport = createGrpcTransport({ baseUrl: `https://127.0.0.1:${port}`, nodeOptions: { ca: await pki.read(pki.caCert) }, interceptors: withKey(KEY_A) });
      assert.deepEqual((await createClient(ActionService, transport).actions({})).actions.map((x) => x.name), ['action_talk']);
      // A client that does not trust the CA is refused in the handshake.
      const untrusting = createGrpcTransport({ baseUrl: `https://127.0.0.1:${port}`, interceptors: withKey(KEY_A) });
      await assert.rejects(createClient(ActionService, untrusting).actions({}));

      if (python === null) {
        if (process.env.CI === 'true') assert.fail('python3 with grpcio is required in CI (apt-get install -y python3-grpcio)');
        t.skip('no python3 with grpcio');
        return;
      }
      const { stdout } = await execFileAsync(python, [SCRIPT, String(port), pki.caCert, KEY_A], { timeout: 60_000 });
      const out = JSON.parse(stdout);
      assert.equal(out.health.ok, true);
      assert.equal(out.anonymous.code, 'UNAUTHENTICATED');
      assert.equal(out.bearer.ok, true);
      assert.match(out.bearer.body, /action_talk/);
      assert.equal(out.basic.ok, true, "Rasa's basic_auth: the key as password");
      assert.equal(out.wrong.code, 'UNAUTHENTICATED');
    } finally {
      await server.close();
      await executor.close();
    }
  });

  it('with a CA file (mTLS) requires and verifies a client certificate', async (t) => {
    if (python === null) {
      if (process.env.CI === 'true') assert.fail('python3 with grpcio is required in CI');
      t.skip('no python3 with grpcio');
      return;
    }
    const executor = new ActionExecutor({ logger: silentLogger, actions: [talk] });
    const tls = loadTlsFiles({ certificate: pki.serverCert, keyfile: pki.serverKey, caFile: pki.caCert });
    const server = createGrpcServer({ executor, logger: silentLogger, tls, auth: { apiKeys: [KEY_A] } });
    const { port } = await server.listen(0, '127.0.0.1');
    try {
      const withCert = JSON.parse((await execFileAsync(python, [SCRIPT, String(port), pki.caCert, KEY_A, pki.clientCert, pki.clientKey], { timeout: 60_000 })).stdout);
      assert.equal(withCert.health.ok, true);
      assert.equal(withCert.bearer.ok, true);
      // Rasa's gRPC client sends no key: a verified client certificate authenticates it.
      assert.equal(withCert.anonymous.ok, true, 'a verified client certificate is an authentication');
      assert.match(withCert.anonymous.body, /action_talk/);
      assert.equal(withCert.wrong.ok, true, 'a wrong key with a verified certificate: the certificate decides');
      const without = JSON.parse((await execFileAsync(python, [SCRIPT, String(port), pki.caCert, KEY_A], { timeout: 60_000 })).stdout);
      assert.equal(without.health.ok, false);
      assert.equal(without.health.code, 'UNAVAILABLE', 'no client certificate: the handshake fails');
      assert.equal(without.bearer.ok, false);
    } finally {
      await server.close();
      await executor.close();
    }
  });
});
