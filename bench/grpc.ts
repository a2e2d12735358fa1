/**
 * gRPC streaming throughput: Sluice's `WebhookStream` (one generator action yielding N text
 * chunks, through the executor, the run and the gRPC transport: Connect's server with the batched
 * WebhookStream handler) against a raw `@grpc/grpc-js` server streaming the same messages
 * (chunk_start, N chunks, chunk_end, final_result) with @grpc/proto-loader, measured in the same
 * run with the same `@grpc/grpc-js` client.
 *
 * By default both servers live in one child process and the client in this one, so the figures
 * are end to end across two processes, as in production; `--in-process` puts everything on one
 * event loop, where server and client costs add up. Besides wall time per chunk, the child's CPU
 * time per chunk is reported: with the client in another process, the wall figure is bounded by
 * the slower side, while the CPU figure shows the server's own cost.
 *
 *   node bench/grpc.ts [--chunks 200000] [--runs 7] [--in-process] [--json]
 */

import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { ActionExecutor, defineAction, silentLogger, slotSet } from '../src/runtime/index.ts';
import { createGrpcServer } from '../src/transports/grpc/index.ts';

const PROTO = new URL('../proto/action_webhook.proto', import.meta.url).pathname;
const TEXT = 'tok ';
const RESPONSE_ID = '17eec39000e244eb95aedc6ee495b888';

const { values: args } = parseArgs({
  options: {
    chunks: { type: 'string', default: '200000' },
    runs: { type: 'string', default: '7' },
    'in-process': { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    serve: { type: 'boolean', default: false },
  },
});
const CHUNKS = Number(args.chunks);
const RUNS = Number(args.runs);

function loadService(): grpc.ServiceClientConstructor {
  const definition = protoLoader.loadSync(PROTO, { keepCase: true, defaults: false, oneofs: true });
  const pkg = grpc.loadPackageDefinition(definition) as unknown as {
    action_server_webhook: { ActionService: grpc.ServiceClientConstructor };
  };
  return pkg.action_server_webhook.ActionService;
}

function bind(server: grpc.Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, port) => (error ? reject(error) : resolve(port)));
  });
}

/** The baseline: a stock grpc-js server writing the messages itself, honouring backpressure. */
async function startRawServer(): Promise<{ port: number; close: () => void }> {
  const server = new grpc.Server();
  server.addService(loadService().service, {
    WebhookStream(call: grpc.ServerWritableStream<unknown, unknown>) {
      const n = CHUNKS;
      let i = -1;
      const pump = (): void => {
        if (i === -1) {
          i = 0;
          call.write({ chunk_start: { response_id: RESPONSE_ID } });
        }
        while (i < n) {
          i++;
          if (!call.write({ chunk: { response_id: RESPONSE_ID, text: TEXT } })) {
            call.once('drain', pump);
            return;
          }
        }
        call.write({ chunk_end: { response_id: RESPONSE_ID } });
        call.write({ final_result: { events: [{ event: 'slot', timestamp: null, name: 'done', value: true }], responses: [] } });
        call.end();
      };
      pump();
    },
  });
  const port = await bind(server);
  return { port, close: () => server.forceShutdown() };
}

/** Sluice: a generator action streamed through the executor and the gRPC transport. */
async function startSluiceServer(): Promise<{ port: number; close: () => Promise<void> }> {
  const executor = new ActionExecutor({
    logger: silentLogger,
    actions: [
      defineAction({
        name: 'action_generate',
        async *stream() {
          for (let i = 0; i < CHUNKS; i++) yield TEXT;
          return [slotSet('done', true)];
        },
      }),
    ],
  });
  const server = createGrpcServer({ executor, logger: silentLogger });
  const { port } = await server.listen(0, '127.0.0.1');
  return { port, close: () => server.close() };
}

interface Servers {
  raw: number;
  sluice: number;
  /** Server CPU microseconds used since the previous call. */
  cpu(): Promise<number>;
  close(): Promise<void>;
}

async function startServers(inProcess: boolean): Promise<Servers> {
  if (inProcess) {
    const raw = await startRawServer();
    const sluice = await startSluiceServer();
    let last = process.cpuUsage();
    return {
      raw: raw.port,
      sluice: sluice.port,
      cpu: async () => {
        const used = process.cpuUsage(last);
        last = process.cpuUsage();
        return used.user + used.system;
      },
      close: async () => {
        raw.close();
        await sluice.close();
      },
    };
  }
  const child: ChildProcess = fork(import.meta.filename, ['--serve', '--chunks', String(CHUNKS)], {
    execPath: process.execPath,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const [ports] = (await once(child, 'message')) as [{ raw: number; sluice: number }];
  return {
    ...ports,
    cpu: async () => {
      child.send('cpu');
      const [used] = (await once(child, 'message')) as [number];
      return used;
    },
    close: async () => {
      child.kill();
      await once(child, 'exit');
    },
  };
}

async function serve(): Promise<void> {
  const raw = await startRawServer();
  const sluice = await startSluiceServer();
  let last = process.cpuUsage();
  process.on('message', () => {
    const used = process.cpuUsage(last);
    last = process.cpuUsage();
    process.send?.(used.user + used.system);
  });
  process.send?.({ raw: raw.port, sluice: sluice.port });
}

/** Streams one call and returns the number of `chunk` messages received. */
function streamOnce(client: grpc.Client & { WebhookStream: (req: unknown) => grpc.ClientReadableStream<{ chunk?: unknown }> }): Promise<number> {
  return new Promise((resolve, reject) => {
    let chunks = 0;
    const call = client.WebhookStream({ next_action: 'action_generate', tracker: { sender_id: 'bench' } });
    call.on('data', (message: { chunk?: unknown }) => {
      if (message.chunk !== undefined && message.chunk !== null) chunks++;
    });
    call.on('error', reject);
    call.on('end', () => resolve(chunks));
  });
}

function median(values: number[]): number {
  const sorted = values.slice().sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

interface Sample {
  usPerChunk: number;
  serverCpuUsPerChunk: number;
}

async function main(): Promise<void> {
  const inProcess = args['in-process'] === true;
  const servers = await startServers(inProcess);
  const Service = loadService();
  type StreamClient = grpc.Client & { WebhookStream: (req: unknown) => grpc.ClientReadableStream<{ chunk?: unknown }> };
  const clients = {
    raw: new Service(`127.0.0.1:${servers.raw}`, grpc.credentials.createInsecure()) as unknown as StreamClient,
    sluice: new Service(`127.0.0.1:${servers.sluice}`, grpc.credentials.createInsecure()) as unknown as StreamClient,
  };
  const samples: Record<'raw' | 'sluice', Sample[]> = { raw: [], sluice: [] };

  const measure = async (which: 'raw' | 'sluice'): Promise<Sample> => {
    await servers.cpu();
    const start = process.hrtime.bigint();
    const got = await streamOnce(clients[which]);
    const elapsedUs = Number(process.hrtime.bigint() - start) / 1000;
    const cpuUs = await servers.cpu();
    if (got !== CHUNKS) throw new Error(`${which}: received ${got} chunks, expected ${CHUNKS}`);
    return { usPerChunk: elapsedUs / CHUNKS, serverCpuUsPerChunk: cpuUs / CHUNKS };
  };

  // Warm-up: JIT, connections, buffers.
  for (let i = 0; i < 2; i++) {
    await measure('raw');
    await measure('sluice');
  }
  // Alternate the order each round so drift on a shared machine hits both sides alike.
  for (let round = 0; round < RUNS; round++) {
    const order: ('raw' | 'sluice')[] = round % 2 === 0 ? ['raw', 'sluice'] : ['sluice', 'raw'];
    for (const which of order) samples[which].push(await measure(which));
  }
  clients.raw.close();
  clients.sluice.close();
  await servers.close();

  const summary = (list: Sample[]) => {
    const us = median(list.map((s) => s.usPerChunk));
    return { usPerChunk: us, chunksPerSecond: 1e6 / us, serverCpuUsPerChunk: median(list.map((s) => s.serverCpuUsPerChunk)) };
  };
  const raw = summary(samples.raw);
  const sluice = summary(samples.sluice);
  const roundRatios = samples.sluice.map((s, i) => s.usPerChunk / (samples.raw[i] as Sample).usPerChunk);
  const result = {
    chunks: CHUNKS,
    runs: RUNS,
    mode: inProcess ? 'in-process' : 'server in a child process',
    node: process.version,
    raw,
    sluice,
    ratio: sluice.usPerChunk / raw.usPerChunk,
    medianRoundRatio: median(roundRatios),
    serverCpuRatio: sluice.serverCpuUsPerChunk / raw.serverCpuUsPerChunk,
  };
  if (args.json === true) {
    console.log(JSON.stringify(result, null, 2));
    return;
  }
  const fmt = (s: typeof raw) =>
    `${s.usPerChunk.toFixed(2)} µs/chunk  ${Math.round(s.chunksPerSecond).toLocaleString('en-US')} chunks/s  server CPU ${s.serverCpuUsPerChunk.toFixed(2)} µs/chunk`;
  console.log(`gRPC WebhookStream, ${CHUNKS.toLocaleString('en-US')} chunks, median of ${RUNS} runs (${result.mode}, Node ${process.version})`);
  console.log(`  raw @grpc/grpc-js   ${fmt(raw)}`);
  console.log(`  sluice              ${fmt(sluice)}`);
  console.log(`  ratio sluice/raw    ${result.ratio.toFixed(3)} (median of per-round ratios ${result.medianRoundRatio.toFixed(3)}; server CPU ${result.serverCpuRatio.toFixed(3)})`);
}

if (args.serve === true) await serve();
else await main();
