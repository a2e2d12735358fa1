/**
 * `sluice chat` against a started server: lines typed on a fake stdin become action calls whose
 * replies stream into a captured output; the end of input ends the chat.
 */

import assert from 'node:assert/strict';
import { PassThrough, Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { chat, type ChatOptions } from '../../src/cli/chat.ts';
import { SluiceError } from '../../src/protocol/errors.ts';
import { startTcpProxy } from '../client/tcp-proxy.ts';
import { startServer, type RunningServer } from '../../src/cli/serve.ts';
import { silentLogger } from '../../src/runtime/logger.ts';

const PARIS = 'In Paris: Light rain in the morning, clearing by noon. Highs of 14°C.';

/** An output stream that keeps what is written (not a terminal). */
class Capture extends Writable {
  text = '';
  isTTY = false;
  #listeners = new Set<() => void>();

  override _write(chunk: Buffer | string, _encoding: BufferEncoding, callback: () => void): void {
    this.text += String(chunk);
    for (const listener of this.#listeners) listener();
    callback();
  }

  /** Resolves once the output contains `needle`. */
  until(needle: string, timeoutMs = 5_000): Promise<void> {
    if (this.text.includes(needle)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#listeners.delete(check);
        reject(new Error(`output never contained ${JSON.stringify(needle)}; it is:\n${this.text}`));
      }, timeoutMs);
      const check = (): void => {
        if (!this.text.includes(needle)) return;
        clearTimeout(timer);
        this.#listeners.delete(check);
        resolve();
      };
      this.#listeners.add(check);
    });
  }
}

/** Fails instead of hanging when a chat does not end. */
async function ends(promise: Promise<void>, what: string, ms = 3_000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: chat() did not end within ${ms} ms`)), ms);
  });
  try {
    await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

describe('chat', () => {
  let server: RunningServer;

  before(async () => {
    server = await startServer({ actions: 'examples/actions.ts', host: '127.0.0.1', port: 0, grpcPort: 0, logger: silentLogger });
  });

  after(async () => {
    await server.close();
  });

  function start(options: Partial<ChatOptions> = {}) {
    const input = new PassThrough();
    const output = new Capture();
    const done = chat({ url: server.httpUrl, action: 'action_chat', senderId: 'chat-test', input, output, ...options });
    return { input, output, done };
  }

  test('a typed line streams its reply (status line, then the text); the end of input ends the chat', async () => {
    const { input, output, done } = start();
    await output.until('> ');
    assert.ok(
      output.text.startsWith(`Connected to ${server.httpUrl}, action 'action_chat'.`),
      `the chat says where it is connected:\n${output.text}`,
    );

    input.write('weather in Paris\n');
    await output.until(`${PARIS}\n`);
    assert.match(output.text, /… Looking up the forecast for Paris…\n/);
    assert.ok(output.text.indexOf('Looking up') < output.text.indexOf(PARIS), 'the status comes before the reply');
    await output.until(`${PARIS}\n> `);

    input.end();
    await ends(done, 'end of input at the prompt');
    assert.doesNotMatch(output.text, /\x1b\[/, 'no terminal escape codes in a non-terminal output');
    assert.doesNotMatch(output.text, /error/);
    await waitIdle(server);
  });

  test('piped input: every line is answered in turn, then the chat ends', async () => {
    const { input, output, done } = start();
    // Both lines and the end arrive at once, as from `printf '…' | sluice chat`.
    input.end('tell me a story\nweather in Paris\n');
    await ends(done, 'piped input', 5_000);
    const story = output.text.indexOf('Once upon a time, a small stream met a sluice.');
    const paris = output.text.indexOf(PARIS);
    assert.ok(story !== -1, `the first line was answered:\n${output.text}`);
    assert.ok(paris > story, `the second line was answered after the first:\n${output.text}`);
    await waitIdle(server);
  });

  test('a call the server refuses is shown as an error, and the chat goes on', async () => {
    const { input, output, done } = start({ action: 'action_nope' });
    input.write('hello\n');
    await output.until("error: The server refused the call: No registered action found for name 'action_nope'. (HTTP 404)\n");
    await output.until('\n> ');
    input.end();
    await ends(done, 'end of input after an error');
  });

  test('Ctrl-C during a reply cancels its run: the reply ends "(interrupted)" and the chat goes on', async () => {
    const input = new PassThrough();
    const output = Object.assign(new Capture(), { isTTY: true });
    const done = chat({ url: server.httpUrl, action: 'action_chat', senderId: 'chat-ctrl-c', input, output, color: false });
    input.write('tell me a story\r');
    await output.until('Once upon');
    input.write('\x03'); // what a terminal in raw mode sends for Ctrl-C
    await output.until('⏹ (interrupted)');
    assert.doesNotMatch(output.text, /never flooded anyone/);
    await waitIdle(server);
    input.end();
    await ends(done, 'end of input after an interrupted reply');
  });

  test('a connection dropped mid-reply is resumed: the whole reply, once, after a note', async () => {
    const proxy = await startTcpProxy(server.httpUrl);
    try {
      const { input, output, done } = start({ url: proxy.url });
      input.write('tell me a story\n');
      await output.until('Once upon');
      proxy.cut();
      await output.until('never flooded anyone.\n');
      assert.match(output.text, /\n… connection lost, resuming \(attempt 1\)…\n/);
      const story = output.text.slice(output.text.indexOf('Once upon')).replace(/\n… connection lost[^\n]*\n/g, '');
      assert.equal(story.split('\n')[0], 'Once upon a time, a small stream met a sluice. It learned to wait its turn, and so it never flooded anyone.');
      input.end();
      await ends(done, 'end of input after a resumed reply');
      await waitIdle(server);
    } finally {
      await proxy.close();
    }
  });

  test('an output without isTTY is not a terminal, even when the process stdout is one', async () => {
    const original = Object.getOwnPropertyDescriptor(process.stdout, 'isTTY');
    Object.defineProperty(process.stdout, 'isTTY', { value: true, configurable: true });
    try {
      const input = new PassThrough();
      const output = new Capture();
      const plain = Object.assign(output, { isTTY: undefined });
      const done = chat({ url: server.httpUrl, action: 'action_chat', senderId: 'chat-test', input, output: plain });
      input.write('weather in Paris\n');
      await output.until(`${PARIS}\n`);
      input.end();
      await ends(done, 'end of input');
      assert.doesNotMatch(output.text, /\x1b\[/, 'no escape codes written to a captured output');
    } finally {
      if (original === undefined) delete (process.stdout as { isTTY?: boolean }).isTTY;
      else Object.defineProperty(process.stdout, 'isTTY', original);
    }
  });
});

// Read when examples/index.ts is imported (by startServer): never reach for a real model here.
process.env.SLUICE_MODEL = 'scripted';

/** SGR escape codes (colours, dim); readline's cursor moves are other sequences. */
const COLOUR = /\x1b\[[0-9;]*m/;

describe('chat with the assistant (status lines, tool calls, colours)', () => {
  let server: RunningServer;

  before(async () => {
    server = await startServer({ actions: 'examples/index.ts', host: '127.0.0.1', port: 0, grpcPort: 0, logger: silentLogger });
  });

  after(async () => {
    await server.close();
  });

  async function converse(output: Capture, text: string, options: Partial<ChatOptions> = {}): Promise<string> {
    const input = new PassThrough();
    const done = chat({ url: server.httpUrl, action: 'action_assistant', senderId: 'chat-tools', input, output, ...options });
    input.end(`${text}\n`);
    await ends(done, 'piped input', 8_000);
    return output.text;
  }

  test('piped: every status line and tool call is a line of its own, never glued to the reply', async () => {
    const text = await converse(new Capture(), 'weather in Paris');
    const lines = text.split('\n');
    const statuses = lines.filter((l) => l.includes('… '));
    assert.ok(statuses.includes('… Thinking…'), text);
    assert.ok(statuses.includes('… Checking the weather in Paris…'), text);
    assert.ok(statuses.every((l) => l.startsWith('… ')), `a status glued to other text:\n${text}`);
    const tool = lines.findIndex((l) => l === '⚙ get_weather({"city":"Paris"})');
    assert.ok(tool !== -1, `the tool call has its line:\n${text}`);
    assert.match(lines.slice(tool + 1).find((l) => l.startsWith('  → ')) ?? '', /^ {2}→ \{"city":"Paris","conditions":"light rain/);
    assert.ok(!text.includes('\n\n\n'), `no gap after the tool lines:\n${text}`);
    assert.ok(lines.some((l) => l.startsWith('Let me check the weather in Paris.')), text);
    assert.match(text, /In Paris it is light rain in the morning, clearing by noon, around 14 °C\.\n/);
    assert.doesNotMatch(text, /\x1b/, 'no escape codes at all when piped');
  });

  test('on a terminal the reply has colours, unless NO_COLOR is set', async () => {
    const terminal = (): Capture => Object.assign(new Capture(), { isTTY: true });
    const coloured = await converse(terminal(), 'weather in Paris');
    assert.match(coloured, COLOUR);
    assert.match(coloured, /\x1b\[36m⚙ get_weather/);
    const saved = process.env.NO_COLOR;
    process.env.NO_COLOR = '1';
    try {
      const plain = await converse(terminal(), 'weather in Paris');
      assert.doesNotMatch(plain, COLOUR, 'NO_COLOR: no colour codes');
      assert.match(plain, /⚙ get_weather/);
    } finally {
      if (saved === undefined) delete process.env.NO_COLOR;
      else process.env.NO_COLOR = saved;
    }
  });
});

test('--url to a dead server: "cannot connect to <URL>" before any prompt', async () => {
  const server = await startServer({ actions: 'examples/actions.ts', host: '127.0.0.1', port: 0, grpcPort: 0, logger: silentLogger });
  const url = server.httpUrl;
  await server.close();
  const output = new Capture();
  await assert.rejects(chat({ url, action: 'action_chat', input: new PassThrough(), output }), (error: SluiceError) => {
    assert.ok(SluiceError.isInstance(error));
    assert.equal(error.code, 'unavailable');
    assert.match(error.message, new RegExp(`^cannot connect to ${url.replace(/\./g, '\\.')} \\(ECONNREFUSED\\)$`));
    return true;
  });
  assert.equal(output.text, '', 'no banner, no prompt');
});

/** The replies' runs have ended (a reader may close before the server finished with the run). */
async function waitIdle(server: RunningServer): Promise<void> {
  const until = Date.now() + 2_000;
  while (server.executor.activeRuns !== 0 && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 5));
  assert.equal(server.executor.activeRuns, 0, 'no run left');
  assert.equal(server.executor.activeStreams, 0, 'no stream left');
}
