/**
 * `sluice chat`: a terminal client that streams replies from a Sluice server over SSE.
 * @module
 */

import { createInterface } from 'node:readline/promises';
import type { SluiceEvent } from '../protocol/events.ts';
import { readSseEvents } from './sse-client.ts';

/** Options of {@link chat}. */
export interface ChatOptions {
  /** Base URL of the server, e.g. `http://127.0.0.1:5055`. */
  url: string;
  /** Action to call for each message. */
  action: string;
  senderId?: string;
  input?: NodeJS.ReadableStream;
  output?: NodeJS.WritableStream & { isTTY?: boolean };
}

/** Renders the events of one reply; returns the events the action returned. */
function render(event: SluiceEvent, out: NodeJS.WritableStream, tty: boolean, state: { status: boolean }): void {
  const clearStatus = (): void => {
    if (state.status && tty) out.write('\r\x1b[2K');
    state.status = false;
  };
  switch (event.type) {
    case 'status':
      clearStatus();
      out.write(tty ? `\x1b[2m… ${event.text}\x1b[0m` : `… ${event.text}\n`);
      state.status = tty;
      break;
    case 'chunk':
      clearStatus();
      if (event.text !== undefined) out.write(event.text);
      if (event.image !== undefined) out.write(`\n[image ${event.image}]`);
      if (event.buttons !== undefined) out.write(`\n  ${event.buttons.map((b) => `[${String(b.title)}]`).join(' ')}`);
      if (event.custom !== undefined) out.write(`\n  ${JSON.stringify(event.custom)}`);
      break;
    case 'stream-end':
      out.write(event.reason === 'cancelled' ? '  ⏹ (interrupted)\n' : '\n');
      break;
    case 'message':
      clearStatus();
      out.write(`${String(event.message.text ?? JSON.stringify(event.message))}\n`);
      break;
    case 'error':
      clearStatus();
      out.write(`error (${event.code}): ${event.message}\n`);
      break;
    default:
  }
}

/**
 * Reads lines from the terminal; each becomes the latest user message of a call to `action`, whose
 * reply streams in as it is produced. Ctrl-C during a reply cancels it (the server stops the run,
 * its events still arrive); Ctrl-C at the prompt quits.
 */
export async function chat(options: ChatOptions): Promise<void> {
  const out = options.output ?? process.stdout;
  // An output of the caller's decides for itself: one without isTTY is not a terminal.
  const tty = Boolean(options.output === undefined ? process.stdout.isTTY : options.output.isTTY);
  const rl = createInterface({ input: options.input ?? process.stdin, output: out, terminal: tty });
  // Lines are read through the iterator, which buffers: `rl.question()` loses lines that arrive
  // while a reply streams (piped input) and never settles once the input has ended.
  const lines = rl[Symbol.asyncIterator]();
  let closed = false;
  rl.once('close', () => {
    closed = true;
  });
  rl.setPrompt('> ');
  const senderId = options.senderId ?? `chat-${process.pid}`;
  const history: unknown[] = [];
  let current: { runId: string | null; controller: AbortController } | null = null;

  rl.on('SIGINT', () => {
    if (current === null) {
      rl.close();
      return;
    }
    const runId = current.runId;
    if (runId !== null) {
      void fetch(`${options.url}/runs/${runId}/cancel`, { method: 'POST' }).catch(() => current?.controller.abort());
    } else current.controller.abort();
  });

  out.write(`Connected to ${options.url}, action '${options.action}'. Ctrl-C interrupts a reply; Ctrl-C twice quits.\n`);
  for (;;) {
    // Once the input has ended, lines it already sent are still answered, without a prompt.
    if (!closed) rl.prompt();
    const next = await lines.next();
    if (next.done === true) break; // closed (Ctrl-C or end of input)
    const text = next.value;
    if (text.trim() === '') continue;
    const controller = new AbortController();
    current = { runId: null, controller };
    history.push({ event: 'user', timestamp: Date.now() / 1000, text });
    try {
      const response = await fetch(`${options.url}/webhook/stream`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
        body: JSON.stringify({
          next_action: options.action,
          sender_id: senderId,
          tracker: { sender_id: senderId, latest_message: { text }, events: history, slots: {} },
          domain: {},
        }),
        signal: controller.signal,
      });
      if (!response.ok || response.body === null) {
        out.write(`error: ${response.status} ${await response.text()}\n`);
        continue;
      }
      current.runId = response.headers.get('x-sluice-run-id');
      const state = { status: false };
      for await (const event of readSseEvents(response.body, controller.signal)) {
        render(event, out, tty, state);
        if (event.type === 'result') history.push(...event.events);
      }
    } catch (error) {
      if (!controller.signal.aborted) out.write(`error: ${(error as Error).message}\n`);
      else out.write('\n');
    } finally {
      current = null;
    }
  }
  rl.close();
}
