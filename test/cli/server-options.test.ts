/**
 * What `sluice serve` mounts and how its options resolve: the chat action, resumable chats over
 * the AI SDK's own transport, an --apps module, exposeActionErrors, auto-reload with an open stream,
 * and the precedence flag > env > config > default.
 */

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { DefaultChatTransport, type UIMessage, type UIMessageChunk } from 'ai';
import { loadApps } from '../../src/cli/apps.ts';
import { loadConfig } from '../../src/cli/config.ts';
import { coreFlags } from '../../src/cli/flags/core.ts';
import { parseCommandLine } from '../../src/cli/flags/parse.ts';
import { serverFlags } from '../../src/cli/flags/server.ts';
import { resolveServeOptions } from '../../src/cli/options.ts';
import { startServer } from '../../src/cli/serve.ts';
import { silentLogger } from '../../src/runtime/logger.ts';
import { call, openSse } from '../transports/http/fixtures.ts';

const SLOW = 'test/cli/fixtures/slow-actions.ts';
const FLAGS = [...coreFlags, ...serverFlags];

async function collect(stream: ReadableStream<UIMessageChunk>): Promise<UIMessageChunk[]> {
  const out: UIMessageChunk[] = [];
  for await (const chunk of stream as unknown as AsyncIterable<UIMessageChunk>) out.push(chunk);
  return out;
}

const text = (chunks: UIMessageChunk[]): string => chunks.map((c) => (c.type === 'text-delta' ? c.delta : '')).join('');

describe('sluice serve options', () => {
  test('--chat-action mounts /api/chat for the named action; a reload resumes the answer', { timeout: 60_000 }, async () => {
    const server = await startServer({ actions: SLOW, host: '127.0.0.1', port: 0, grpcPort: 0, logger: silentLogger, chatAction: 'action_short_ticker' });
    try {
      assert.equal(server.chatAction, 'action_short_ticker');
      const transport = new DefaultChatTransport<UIMessage>({ api: `${server.httpUrl}/api/chat` });
      const messages: UIMessage[] = [{ id: 'u1', role: 'user', parts: [{ type: 'text', text: 'count' }] }];
      // The browser sends, reads the first words, then reloads (the request is dropped).
      const controller = new AbortController();
      const first = await transport.sendMessages({ chatId: 'reload-1', messages, abortSignal: controller.signal, trigger: 'submit-message', messageId: undefined });
      const reader = first.getReader();
      for (;;) {
        const { value } = await reader.read();
        if (value?.type === 'text-delta') break;
      }
      controller.abort();
      await reader.cancel().catch(() => {});
      // After the reload: the run went on, and the resume replays it from the start to its end.
      const resumed = await transport.reconnectToStream({ chatId: 'reload-1' });
      assert.ok(resumed !== null, 'the answer is still there to resume');
      const chunks = await collect(resumed);
      assert.equal(text(chunks), Array.from({ length: 15 }, (_, i) => `tick ${i + 1} `).join(''));
      assert.equal(chunks.at(-1)?.type, 'finish');
    } finally {
      await server.close();
    }
  });

  test('a --chat-action that is not an action is an error naming it', async () => {
    await assert.rejects(
      startServer({ actions: SLOW, host: '127.0.0.1', port: 0, grpcPort: 0, logger: silentLogger, chatAction: 'action_nope' }),
      /--chat-action 'action_nope' is not an action of the module \(actions: .*action_ticker/,
    );
  });

  test('--apps serves the module\'s applications; a module without apps is a clear error', { timeout: 60_000 }, async () => {
    const apps = await loadApps('test/cli/fixtures/apps.ts');
    const server = await startServer({ actions: SLOW, host: '127.0.0.1', port: 0, grpcPort: 0, logger: silentLogger, apps });
    try {
      const stream = await openSse(`${server.httpUrl}/apps/demo/stream`, { body: { inputs: { message: 'hello apps' } } });
      assert.equal(stream.status, 200);
      await stream.ended;
      assert.match(stream.text, /You said: /);
      assert.match(stream.text, /hello /);
    } finally {
      await server.close();
    }
    await assert.rejects(loadApps(SLOW), /The --apps module 'test\/cli\/fixtures\/slow-actions\.ts' must export 'apps'/);
    await assert.rejects(loadApps('./test/cli/fixtures/none.ts'), /Cannot (find|load) the --apps module/);
  });

  test('exposeActionErrors reaches the executor: off, the public message names no detail', async () => {
    for (const expose of [true, false]) {
      const server = await startServer({ actions: SLOW, host: '127.0.0.1', port: 0, grpcPort: 0, logger: silentLogger, executor: { exposeActionErrors: expose } });
      try {
        const stream = await openSse(`${server.httpUrl}/webhook/stream`, { body: call('action_fail') });
        const error = (await stream.done()).find((f) => f.event === 'error');
        if (expose) assert.equal(error?.data.message, 'db password rejected for user admin');
        else assert.doesNotMatch(String(error?.data.message), /password/);
      } finally {
        await server.close();
      }
    }
  });

  test('precedence: flag > environment > config module > default', () => {
    const config = { port: 7000, grpcPort: 7001, host: '127.0.0.9', chatAction: 'from_config', drainTimeoutSeconds: 3, exposeActionErrors: true, http: { bodyLimit: 10 } };
    const parse = (argv: string[], env: Record<string, string>) => parseCommandLine(['serve', '--actions', SLOW, ...argv], FLAGS, env).values;
    const onlyConfig = resolveServeOptions(parse([], {}), config);
    assert.equal(onlyConfig.port, 7000);
    assert.equal(onlyConfig.chatAction, 'from_config');
    assert.equal(onlyConfig.drainTimeoutSeconds, 3);
    assert.equal(onlyConfig.executor?.exposeActionErrors, true);
    assert.equal(onlyConfig.http?.bodyLimit, 10);
    const env = { PORT: '8000', SLUICE_CHAT_ACTION: 'from_env', SLUICE_DRAIN_TIMEOUT: '4', SLUICE_EXPOSE_ACTION_ERRORS: 'false', SLUICE_BODY_LIMIT: '2kb' };
    const withEnv = resolveServeOptions(parse([], env), config);
    assert.deepEqual([withEnv.port, withEnv.chatAction, withEnv.drainTimeoutSeconds, withEnv.executor?.exposeActionErrors, withEnv.http?.bodyLimit], [8000, 'from_env', 4, false, 2048]);
    const withFlags = resolveServeOptions(parse(['-p', '9000', '--chat-action', 'from_flag', '--drain-timeout', '0.5', '--body-limit', '1mb'], env), config);
    assert.deepEqual([withFlags.port, withFlags.chatAction, withFlags.drainTimeoutSeconds, withFlags.http?.bodyLimit], [9000, 'from_flag', 0.5, 1024 * 1024]);
    // Rasa SDK's --grpc: -p is the gRPC port; HTTP on --http-port.
    const rasaGrpc = resolveServeOptions(parse(['--grpc', '-p', '6000'], {}), {});
    assert.deepEqual([rasaGrpc.grpcPort, rasaGrpc.port], [6000, 5056]);
    assert.deepEqual([resolveServeOptions(parse(['--grpc', '--http-port', '0'], {}), {}).port], [0]);
    assert.throws(() => resolveServeOptions(parse(['--grpc', '--grpc-port', '1'], {}), {}), /With --grpc, -p\/--port is the gRPC port/);
    assert.throws(() => resolveServeOptions(parse(['--http-port', '1'], {}), {}), /--http-port goes with --grpc/);
    const defaults = resolveServeOptions(parse([], {}), {});
    assert.deepEqual([defaults.port, defaults.grpcPort, defaults.host, defaults.chatAction, defaults.drainTimeoutSeconds], [5055, 5056, '127.0.0.1', undefined, 10]);
    assert.equal(defaults.executor?.exposeActionErrors, undefined, 'unset: the executor decides');
  });

  test('the config module: found in the directory or named; paths relative to it; unknown settings refused', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-config-'));
    try {
      assert.equal(await loadConfig(undefined, dir), undefined, 'no config module: none');
      await assert.rejects(loadConfig('missing.config.ts', dir), /Cannot find the config module 'missing\.config\.ts'/);
      const define = pathToFileURL(join(process.cwd(), 'src/cli/config.ts')).href;
      writeFileSync(join(dir, 'sluice.config.ts'), `import { defineConfig } from '${define}';\nexport default defineConfig({ actions: './actions.ts', apps: 'apps.ts', port: 1234 });\n`);
      const found = await loadConfig(undefined, dir);
      assert.equal(found?.path, join(dir, 'sluice.config.ts'));
      assert.deepEqual(found?.config, { actions: join(dir, 'actions.ts'), apps: join(dir, 'apps.ts'), port: 1234 });
      writeFileSync(join(dir, 'typo.config.ts'), 'export default { prot: 1 };\n');
      await assert.rejects(loadConfig('typo.config.ts', dir), /unknown setting\(s\) 'prot' \(known: actions, /);
      writeFileSync(join(dir, 'nothing.config.ts'), 'export const x = 1;\n');
      await assert.rejects(loadConfig('nothing.config.ts', dir), /must export an object: export default defineConfig/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('--auto-reload: a new call runs the new code while an open stream keeps the old one', { timeout: 60_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-reload-'));
    const sluice = pathToFileURL(join(process.cwd(), 'src/index.ts')).href;
    const words = (word: string): string => `export const WORD = '${word}';\n`;
    writeFileSync(join(dir, 'words.ts'), words('old'));
    writeFileSync(
      join(dir, 'actions.ts'),
      `import { setTimeout as sleep } from 'node:timers/promises';
import { defineAction } from '${sluice}';
import { WORD } from './words.ts';
export const say = defineAction({
  name: 'action_say',
  async *stream({ tracker, signal }) {
    const n = Number(tracker.getSlot('n') ?? 1);
    for (let i = 0; i < n; i++) {
      yield WORD + ' ';
      await sleep(20, undefined, { signal });
    }
    return [];
  },
});
`,
    );
    const server = await startServer({ actions: join(dir, 'actions.ts'), host: '127.0.0.1', port: 0, grpcPort: 0, logger: silentLogger, autoReload: true });
    try {
      const long = await openSse(`${server.httpUrl}/webhook/stream`, { body: call('action_say', { slots: { n: 150 } }) });
      await long.until((s) => s.types().includes('chunk'), 10_000);
      writeFileSync(join(dir, 'words.ts'), words('new'));
      // A new call picks up the new code once the reload landed.
      let reply = '';
      const until = Date.now() + 20_000;
      while (Date.now() < until) {
        const short = await openSse(`${server.httpUrl}/webhook/stream`, { body: call('action_say') });
        reply = (await short.done()).filter((f) => f.event === 'chunk').map((f) => f.data.text).join('');
        if (reply === 'new ') break;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      assert.equal(reply, 'new ', 'the imported file was reloaded too');
      assert.ok(!long.types().includes('run-end'), 'the long stream was still open during the reload');
      const frames = await long.done();
      const chunks = frames.filter((f) => f.event === 'chunk').map((f) => f.data.text);
      assert.equal(chunks.length, 150, 'the open stream ran to its end');
      assert.ok(chunks.every((t) => t === 'old '), 'with the code it started with');
      assert.equal(frames.at(-1)?.data.reason, 'completed');
    } finally {
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
