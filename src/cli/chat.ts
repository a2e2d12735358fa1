/**
 * `sluice chat`: a terminal client that streams replies from a Sluice server, on `sluice/client`.
 * @module
 */

import { createInterface } from 'node:readline/promises';
import { SluiceClient } from '../client/client.ts';
import { connectError } from '../client/errors.ts';
import type { ClientRun } from '../client/run.ts';
import { SluiceError } from '../protocol/errors.ts';
import type { SluiceEvent } from '../protocol/events.ts';

/** Options of {@link chat}. */
export interface ChatOptions {
  /** Base URL of the server, e.g. `http://127.0.0.1:5055`. */
  url: string;
  /** Action to call for each message. */
  action: string;
  senderId?: string;
  input?: NodeJS.ReadableStream;
  output?: NodeJS.WritableStream & { isTTY?: boolean };
  /** Colours (default: only on a terminal, and not when `NO_COLOR` is set). */
  color?: boolean;
  /** Sent with every request, e.g. an `authorization` header. */
  headers?: Record<string, string>;
}

const SGR = { dim: '2', red: '31', yellow: '33', cyan: '36' } as const;
/** Length of a tool's arguments and result on its line. */
const TOOL_CHARS = 120;

function shorten(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

function json(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

/** True when the environment asks for no colour (https://no-color.org: set and not empty). */
export function noColorRequested(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.NO_COLOR !== undefined && env.NO_COLOR !== '';
}

/**
 * Writes a reply: text where it streams, and every other thing (status, tool call, rich content,
 * error) on a line of its own. On a terminal the status line is transient (erased by what
 * follows); elsewhere it is an ordinary line, so piped output reads cleanly.
 */
class ReplyWriter {
  readonly #out: NodeJS.WritableStream;
  readonly #tty: boolean;
  readonly #color: boolean;
  #atLineStart = true;
  #statusShown = false;
  /** A line of its own was written last: a model's blank lines after a tool call would only leave a gap. */
  #afterLine = false;

  constructor(out: NodeJS.WritableStream, tty: boolean, color: boolean) {
    this.#out = out;
    this.#tty = tty;
    this.#color = color;
  }

  paint(colour: keyof typeof SGR, text: string): string {
    return this.#color ? `\x1b[${SGR[colour]}m${text}\x1b[0m` : text;
  }

  #clearStatus(): void {
    if (!this.#statusShown) return;
    this.#out.write('\r\x1b[2K');
    this.#statusShown = false;
  }

  /** Streamed text, continuing the current line. */
  text(text: string): void {
    if (this.#afterLine) text = text.replace(/^\n+/, '');
    if (text === '') return;
    this.#afterLine = false;
    this.#clearStatus();
    this.#out.write(text);
    this.#atLineStart = text.endsWith('\n');
  }

  /** A line of its own. */
  line(text: string): void {
    this.#clearStatus();
    this.endLine();
    this.#out.write(`${text}\n`);
    this.#afterLine = true;
  }

  /** Something else (a prompt) wrote on the current line. */
  continuedLine(): void {
    this.#atLineStart = false;
    this.#afterLine = false;
  }

  /** Ends the current line, if something is on it. */
  endLine(): void {
    this.#clearStatus();
    if (!this.#atLineStart) this.#out.write('\n');
    this.#atLineStart = true;
  }

  status(text: string): void {
    if (!this.#tty) return this.line(`… ${text}`);
    this.endLine();
    this.#out.write(this.paint('dim', `… ${text}`));
    this.#statusShown = true;
  }

  render(event: SluiceEvent): void {
    switch (event.type) {
      case 'status':
        this.status(event.text);
        break;
      case 'chunk':
        if (event.text !== undefined) this.text(event.text);
        if (event.image !== undefined) this.line(`[image ${event.image}]`);
        if (event.buttons !== undefined && event.buttons.length > 0) this.line(`  ${event.buttons.map((b) => `[${String(b.title)}]`).join(' ')}`);
        if (event.custom !== undefined && Object.keys(event.custom).length > 0) this.line(`  ${json(event.custom)}`);
        break;
      case 'stream-end':
        if (event.reason === 'cancelled') this.text(this.paint('yellow', '  ⏹ (interrupted)'));
        this.endLine();
        break;
      case 'message':
        this.line(typeof event.message.text === 'string' ? event.message.text : json(event.message));
        break;
      case 'tool-call':
        this.line(this.paint('cyan', `⚙ ${event.name}(${shorten(json(event.args), TOOL_CHARS)})`));
        break;
      case 'tool-result':
        this.line(
          event.error === undefined
            ? this.paint('dim', `  → ${shorten(json(event.output), TOOL_CHARS)}`)
            : this.paint('red', `  → error: ${shorten(event.error, TOOL_CHARS)}`),
        );
        break;
      case 'error':
        this.line(this.paint('red', `error (${event.code}): ${event.message}`));
        break;
      case 'run-end':
        this.endLine();
        break;
      default:
    }
  }
}

/** Fails with "cannot connect to <url>" unless the server answers its health check. */
async function checkServer(client: SluiceClient, headers: Record<string, string>): Promise<void> {
  try {
    const response = await fetch(`${client.baseUrl}/health`, { headers, signal: AbortSignal.timeout(5_000) });
    await response.body?.cancel();
  } catch (error) {
    if ((error as Error).name === 'TimeoutError') throw new SluiceError('unavailable', `cannot connect to ${client.baseUrl} (no answer within 5 s)`, { cause: error });
    throw connectError(client.baseUrl, error);
  }
}

/**
 * Reads lines from the terminal; each becomes the latest user message of a call to `action`, whose
 * reply streams in as it is produced. Ctrl-C during a reply cancels it (the server stops the run,
 * its events still arrive); Ctrl-C at the prompt quits. Throws `unavailable` ("cannot connect to
 * <url>") when the server does not answer at the start.
 */
export async function chat(options: ChatOptions): Promise<void> {
  const out = options.output ?? process.stdout;
  // An output of the caller's decides for itself: one without isTTY is not a terminal.
  const tty = Boolean(options.output === undefined ? process.stdout.isTTY : options.output.isTTY);
  const color = options.color ?? (tty && !noColorRequested());
  const headers = options.headers ?? {};
  const client = new SluiceClient({ baseUrl: options.url, headers });
  await checkServer(client, headers);

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
  let current: { run: ClientRun; controller: AbortController } | null = null;

  rl.on('SIGINT', () => {
    if (current === null) {
      rl.close();
      return;
    }
    const { run, controller } = current;
    // Cancelling keeps the stream open for the run's last events; hanging up is the fallback.
    void run.cancel().catch(() => controller.abort());
  });

  const writer = new ReplyWriter(out, tty, color);
  out.write(`Connected to ${client.baseUrl}, action '${options.action}'. Ctrl-C interrupts a reply; Ctrl-C twice quits.\n`);
  for (;;) {
    // Once the input has ended, lines it already sent are still answered, without a prompt.
    if (!closed) rl.prompt();
    const next = await lines.next();
    if (next.done === true) break; // closed (Ctrl-C or end of input)
    const text = next.value;
    if (text.trim() === '') continue;
    // A terminal echoed the line and its newline; elsewhere the prompt is still on the line.
    if (!tty) writer.continuedLine();
    const controller = new AbortController();
    history.push({ event: 'user', timestamp: Date.now() / 1000, text });
    const run = client.start(
      {
        next_action: options.action,
        sender_id: senderId,
        tracker: { sender_id: senderId, latest_message: { text }, events: history, slots: {} },
        domain: {},
      },
      // Detached (the default): a dropped connection is resumed instead of ending the reply.
      { signal: controller.signal, onReconnect: (info) => writer.status(`connection lost, resuming (attempt ${info.attempt})…`) },
    );
    current = { run, controller };
    try {
      for await (const event of run) {
        writer.render(event);
        if (event.type === 'result') history.push(...event.events);
      }
    } catch (error) {
      if (controller.signal.aborted) writer.endLine();
      else writer.line(writer.paint('red', `error: ${(error as Error).message}`));
    } finally {
      current = null;
    }
  }
  rl.close();
}
