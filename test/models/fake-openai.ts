// A local OpenAI-compatible server for the model tests: it replays recorded SSE frames, one script
// per request, and records what it was sent and whether the client closed the connection.
import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One step of a scripted response. */
export type Step =
  | { frame: unknown } // `data: <json>`
  | { raw: string } // written as is (malformed frames, comments)
  | { wait: number } // pause, in ms
  | { stall: true } // never write again (until the client leaves)
  | { destroy: true } // drop the connection mid-stream
  | { done: true }; // `data: [DONE]` and end

/** A whole scripted response: an SSE stream, or a plain HTTP answer. */
export type Script = Step[] | { status: number; body: unknown } | { json: unknown };

/** A request the server received. */
export interface Exchange {
  body: Record<string, unknown>;
  headers: IncomingMessage['headers'];
  /** Resolves when the client's connection closed before the server finished the response. */
  clientClosed: Promise<void>;
  /** True once the response was fully written. */
  finished: boolean;
}

export interface FakeOpenAI {
  baseURL: string;
  exchanges: Exchange[];
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Starts the server on 127.0.0.1, port 0. Request n gets `scripts[n]` (the last one repeats). */
export async function startFakeOpenAI(scripts: Script[]): Promise<FakeOpenAI> {
  const exchanges: Exchange[] = [];
  const server = createServer((req, res) => {
    void handle(req, res);
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as Record<string, unknown>;
    let closedEarly!: () => void;
    const exchange: Exchange = { body, headers: req.headers, clientClosed: new Promise((r) => (closedEarly = r)), finished: false };
    res.on('close', () => {
      if (!exchange.finished) closedEarly();
    });
    const script = scripts[Math.min(exchanges.length, scripts.length - 1)] ?? [];
    exchanges.push(exchange);
    if (!Array.isArray(script)) {
      const status = 'status' in script ? script.status : 200;
      const payload = 'status' in script ? script.body : script.json;
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(payload));
      exchange.finished = true;
      return;
    }
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
    res.flushHeaders();
    for (const step of script) {
      if (res.destroyed) return;
      if ('frame' in step) res.write(`data: ${JSON.stringify(step.frame)}\n\n`);
      else if ('raw' in step) res.write(step.raw);
      else if ('wait' in step) await sleep(step.wait);
      else if ('stall' in step) return;
      else if ('destroy' in step) {
        res.socket?.destroy();
        return;
      } else if ('done' in step) break;
    }
    res.write('data: [DONE]\n\n');
    exchange.finished = true;
    res.end();
  }

  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  const close = async (): Promise<void> => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  };
  return { baseURL: `http://127.0.0.1:${port}/v1`, exchanges, close, [Symbol.asyncDispose]: close };
}

// Recorded frame shapes (OpenAI chat.completion.chunk), trimmed to what matters.

let created = 1_760_000_000;

/** A chunk frame with one choice. */
export function chunk(delta: Record<string, unknown>, finishReason: string | null = null, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    id: 'chatcmpl-test',
    object: 'chat.completion.chunk',
    created: created++,
    model: 'test-model',
    system_fingerprint: 'fp_test',
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }],
    ...extra,
  };
}

/** The last frame `include_usage` asks for: no choices, the usage. */
export function usageFrame(prompt: number, completion: number): Record<string, unknown> {
  return {
    id: 'chatcmpl-test',
    object: 'chat.completion.chunk',
    created: created++,
    model: 'test-model',
    choices: [],
    usage: { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion, prompt_tokens_details: { cached_tokens: 0 }, completion_tokens_details: { reasoning_tokens: 0 } },
  };
}

/** A text answer streamed as the given pieces, then `stop` and usage. */
export function textScript(pieces: string[], usage: [number, number] = [20, pieces.length]): Step[] {
  return [
    { frame: chunk({ role: 'assistant', content: '' }) },
    ...pieces.map((content) => ({ frame: chunk({ content }) })),
    { frame: chunk({}, 'stop') },
    { frame: usageFrame(usage[0], usage[1]) },
    { done: true },
  ];
}

/** A tool call whose arguments arrive in several frames. */
export function toolCallFrames(index: number, id: string, name: string, argPieces: string[]): Step[] {
  return [
    { frame: chunk({ tool_calls: [{ index, id, type: 'function', function: { name, arguments: '' } }] }) },
    ...argPieces.map((a) => ({ frame: chunk({ tool_calls: [{ index, function: { arguments: a } }] }) })),
  ];
}
