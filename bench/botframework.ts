/**
 * Bot Framework channel throughput (not a test; figures only): a fast producer (10,000 chunks over
 * a simulated 60 s) into a BotFrameworkStream paced at ~1 send/s, on a manual clock so a minute
 * of channel time takes milliseconds. Reports sends, the worst rate in any 1 s window, bytes on
 * the wire, whether every character arrived, and CPU per chunk; beside it, the driver alone (to
 * subtract) and what one send per chunk would have cost.
 *
 *   node_modules/.bin/node bench/botframework.ts [chunks=10000] [seconds=60]
 */

import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { BotConnectorSender, BotFrameworkStream, ManualClock } from '../src/channels/botframework/index.ts';
import type { Activity, ActivitySender, SendResult } from '../src/channels/botframework/index.ts';
import { silentLogger } from '../src/runtime/logger.ts';

const CHUNKS = Number(process.argv[2] ?? 10_000);
const SECONDS = Number(process.argv[3] ?? 60);
const BATCH = 10; // chunks queued between two clock steps
const STEP_MS = (SECONDS * 1000 * BATCH) / CHUNKS;

interface Row {
  scenario: string;
  sends: number;
  maxPerSecond: number;
  minGapMs: number;
  bytes: number;
  complete: boolean;
  cpuUsPerChunk: number;
  wallMs: number;
}

/** Counts what a real sender would put on the wire (JSON), answers like the service after `latencyMs`. */
class CountingSender implements ActivitySender {
  readonly conversationType = 'personal';
  readonly times: number[] = [];
  bytes = 0;
  lastText = '';
  #clock: ManualClock;
  #latencyMs: number;
  constructor(clock: ManualClock, latencyMs: number) {
    this.#clock = clock;
    this.#latencyMs = latencyMs;
  }
  async send(activity: Activity): Promise<SendResult> {
    this.times.push(this.#clock.now());
    this.bytes += Buffer.byteLength(JSON.stringify(activity));
    this.lastText = activity.text ?? '';
    if (this.#latencyMs > 0) await this.#clock.sleep(this.#latencyMs);
    return this.times.length === 1 ? { id: 'stream-1' } : {};
  }
}

/** Wraps a sender to record clock time and bytes. */
function recording(clock: ManualClock, inner: ActivitySender): ActivitySender & { times: number[]; bytes: number; lastText: string } {
  const out = {
    conversationType: 'personal',
    times: [] as number[],
    bytes: 0,
    lastText: '',
    async send(activity: Activity): Promise<SendResult> {
      out.times.push(clock.now());
      out.bytes += Buffer.byteLength(JSON.stringify(activity));
      out.lastText = activity.text ?? '';
      return inner.send(activity);
    },
  };
  return out;
}

function rateStats(times: number[]): { maxPerSecond: number; minGapMs: number } {
  let maxPerSecond = 0;
  let minGapMs = Number.POSITIVE_INFINITY;
  for (let i = 0, j = 0; i < times.length; i++) {
    while (times[i]! - times[j]! >= 1000) j++;
    maxPerSecond = Math.max(maxPerSecond, i - j + 1);
    if (i > 0) minGapMs = Math.min(minGapMs, times[i]! - times[i - 1]!);
  }
  return { maxPerSecond, minGapMs };
}

const piece = (i: number): string => `tok${i} `;
const EXPECTED = Array.from({ length: CHUNKS }, (_, i) => piece(i)).join('');

function cpuMicros(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

/** Drives `CHUNKS` chunks over `SECONDS` of clock time, then ends the stream. */
async function drive(clock: ManualClock, stream: BotFrameworkStream | undefined, between?: () => Promise<void>): Promise<void> {
  for (let i = 0; i < CHUNKS; i++) {
    stream?.queueTextChunk(piece(i));
    if (i % BATCH === BATCH - 1) {
      if (between) await between();
      await clock.advance(STEP_MS);
    }
  }
  if (stream) {
    const ending = stream.endStream();
    let done = false;
    void ending.then(() => (done = true));
    while (!done) {
      if (between) await between();
      await clock.advance(50);
    }
  }
}

async function memoryScenario(label: string, intervalMs: number, latencyMs: number): Promise<Row> {
  const clock = new ManualClock();
  const sender = new CountingSender(clock, latencyMs);
  const stream = new BotFrameworkStream(sender, { clock, intervalMs, logger: silentLogger, maxStreamDurationMs: Number.POSITIVE_INFINITY });
  const wall = performance.now();
  const cpu = cpuMicros();
  await drive(clock, stream);
  const cpuUs = cpuMicros() - cpu;
  return {
    scenario: label,
    sends: sender.times.length,
    ...rateStats(sender.times),
    bytes: sender.bytes,
    complete: sender.lastText === EXPECTED,
    cpuUsPerChunk: cpuUs / CHUNKS,
    wallMs: performance.now() - wall,
  };
}

async function driverOnly(): Promise<Row> {
  const clock = new ManualClock();
  const wall = performance.now();
  const cpu = cpuMicros();
  await drive(clock, undefined);
  const cpuUs = cpuMicros() - cpu;
  return { scenario: 'driver only (subtract)', sends: 0, maxPerSecond: 0, minGapMs: Number.NaN, bytes: 0, complete: true, cpuUsPerChunk: cpuUs / CHUNKS, wallMs: performance.now() - wall };
}

/** What one send per chunk would cost: every update carries all the text so far. */
function uncoalesced(): Row {
  const wall = performance.now();
  const cpu = cpuMicros();
  let text = '';
  let bytes = 0;
  for (let i = 0; i < CHUNKS; i++) {
    text += piece(i);
    const activity = { type: 'typing', text, channelData: { streamType: 'streaming', streamSequence: i + 1, streamId: 'stream-1' }, entities: [{ type: 'streaminfo', streamType: 'streaming', streamSequence: i + 1, streamId: 'stream-1' }] };
    bytes += Buffer.byteLength(JSON.stringify(activity));
  }
  const cpuUs = cpuMicros() - cpu;
  return {
    scenario: '1 send per chunk (no pacer)',
    sends: CHUNKS,
    maxPerSecond: Math.ceil(CHUNKS / SECONDS),
    minGapMs: (SECONDS * 1000) / CHUNKS,
    bytes,
    complete: true,
    cpuUsPerChunk: cpuUs / CHUNKS,
    wallMs: performance.now() - wall,
  };
}

/** The REST sender to a local HTTP server that answers like the Bot Connector (201 {id}, then 202). */
async function restScenario(): Promise<Row> {
  let requests = 0;
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      requests++;
      res.writeHead(requests === 1 ? 201 : 202, { 'content-type': 'application/json' });
      res.end(requests === 1 ? '{"id":"stream-1"}' : '{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const clock = new ManualClock();
    const rest = new BotConnectorSender({ serviceUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, conversationId: 'bench', token: 't' });
    let inFlight = 0;
    const counted: ActivitySender = {
      async send(activity) {
        inFlight++;
        try {
          return await rest.send(activity);
        } finally {
          inFlight--;
        }
      },
    };
    const sender = recording(clock, counted);
    const stream = new BotFrameworkStream(sender, { clock, logger: silentLogger, maxStreamDurationMs: Number.POSITIVE_INFINITY });
    // Clock time only moves between requests, so each request is instantaneous in clock time.
    const settle = async (): Promise<void> => {
      while (inFlight > 0) await new Promise((r) => setImmediate(r));
    };
    const wall = performance.now();
    const cpu = cpuMicros();
    await drive(clock, stream, settle);
    const cpuUs = cpuMicros() - cpu;
    return {
      scenario: 'REST sender → local HTTP, 1000 ms',
      sends: sender.times.length,
      ...rateStats(sender.times),
      bytes: sender.bytes,
      complete: sender.lastText === EXPECTED,
      cpuUsPerChunk: cpuUs / CHUNKS,
      wallMs: performance.now() - wall,
    };
  } finally {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  }
}

function fmtBytes(n: number): string {
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(1)} MiB`;
  if (n >= 1 << 10) return `${(n / (1 << 10)).toFixed(1)} KiB`;
  return `${n} B`;
}

const rows: Row[] = [];
await memoryScenario('warm-up', 1000, 80);
rows.push(await driverOnly());
rows.push(await memoryScenario('in-memory, 1000 ms, 80 ms RTT', 1000, 80));
rows.push(await memoryScenario('in-memory, 1500 ms, 80 ms RTT', 1500, 80));
rows.push(await memoryScenario('in-memory, 500 ms, 80 ms RTT', 500, 80));
rows.push(await memoryScenario('in-memory, 1000 ms, 1.6 s RTT', 1000, 1600));
rows.push(await restScenario());
rows.push(uncoalesced());

console.log(`Bot Framework stream: ${CHUNKS.toLocaleString('en-US')} chunks (${fmtBytes(EXPECTED.length)} of text) over a simulated ${SECONDS} s, manual clock\n`);
const header = ['scenario', 'sends', 'max/1s', 'min gap', 'bytes sent', 'all text', 'CPU µs/chunk', 'wall ms'];
const table = rows.map((r) => [
  r.scenario,
  String(r.sends),
  String(r.maxPerSecond),
  Number.isFinite(r.minGapMs) ? `${Math.round(r.minGapMs)} ms` : '–',
  fmtBytes(r.bytes),
  r.complete ? 'yes' : 'NO',
  r.cpuUsPerChunk.toFixed(2),
  r.wallMs.toFixed(0),
]);
const widths = header.map((h, i) => Math.max(h.length, ...table.map((row) => row[i]!.length)));
const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
console.log(line(header));
console.log(widths.map((w) => '─'.repeat(w)).join('  '));
for (const row of table) console.log(line(row));
