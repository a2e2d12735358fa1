// Interop with a stock Python grpcio client built from the same .proto files (what Rasa itself
// uses): stubs are generated into a temp dir, then fixtures/python_client.py calls Actions,
// Webhook (gzip-compressed request), WebhookStream (plain, with an ack barge-in, with errors) and
// Health against the running TypeScript server.
//
// Needs python3 with grpcio + protobuf, and a stub generator: `python3 -m grpc_tools.protoc`
// (grpcio-tools ≥ 1.32, for proto3 `optional`) or `protoc` + `grpc_python_plugin`. On Debian 12:
//   apt-get install -y python3-grpcio python3-protobuf protobuf-compiler protobuf-compiler-grpc
// (Debian's python3-grpc-tools is 1.14 and cannot compile proto3 `optional`.)
// In CI (CI=true) a missing toolchain fails the test; elsewhere the test is skipped.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { defineAction } from '../../../src/runtime/action.ts';
import { slotSet } from '../../../src/runtime/rasa-events.ts';
import { sleep, startHarness, type Harness } from './helpers.ts';

const run = promisify(execFile);
const PROTO_DIR = new URL('../../../proto/', import.meta.url).pathname;
const SCRIPT = new URL('./fixtures/python_client.py', import.meta.url).pathname;
const PROTOS = ['action_webhook.proto', 'health.proto'];

/** The first python that imports grpc and protobuf (Debian's lives in /usr/bin, not in a pyenv). */
async function findPython(): Promise<string | null> {
  const candidates = [process.env.SLUICE_PYTHON, '/usr/bin/python3', 'python3'].filter((c): c is string => !!c);
  for (const python of candidates) {
    try {
      await run(python, ['-c', 'import grpc, google.protobuf']);
      return python;
    } catch {
      // try the next one
    }
  }
  return null;
}

/** Generates the Python stubs; returns how, or null with the reasons when no generator works. */
async function generateStubs(python: string, out: string): Promise<{ how: string } | { failed: string[] }> {
  const failed: string[] = [];
  const attempts: [string, string, string[]][] = [
    [python, 'grpc_tools.protoc', ['-m', 'grpc_tools.protoc', `-I${PROTO_DIR}`, `--python_out=${out}`, `--grpc_python_out=${out}`, ...PROTOS]],
  ];
  try {
    const { stdout } = await run('sh', ['-c', 'command -v grpc_python_plugin']);
    attempts.push([
      'protoc',
      'protoc + grpc_python_plugin',
      [`-I${PROTO_DIR}`, `--python_out=${out}`, `--grpc_python_out=${out}`, `--plugin=protoc-gen-grpc_python=${stdout.trim()}`, ...PROTOS],
    ]);
  } catch {
    failed.push('grpc_python_plugin: not found');
  }
  for (const [command, how, args] of attempts) {
    try {
      await run(command, args, { cwd: PROTO_DIR });
      await run(python, ['-c', `import sys; sys.path.insert(0, ${JSON.stringify(out)}); import action_webhook_pb2_grpc, health_pb2_grpc`]);
      return { how };
    } catch (error) {
      failed.push(`${how}: ${String((error as { stderr?: string }).stderr || error).trim().split('\n').slice(-2).join(' ')}`);
    }
  }
  return { failed };
}

let harness: Harness | null = null;
let stubs = '';
let python: string | null = null;
let unavailable: string | null = null;
let generatedBy = '';

before(async () => {
  python = await findPython();
  if (python === null) {
    unavailable = 'no python3 with grpcio and protobuf (apt-get install -y python3-grpcio python3-protobuf)';
    return;
  }
  stubs = await mkdtemp(join(tmpdir(), 'sluice-py-stubs-'));
  const generated = await generateStubs(python, stubs);
  if ('failed' in generated) {
    unavailable = `cannot generate Python stubs (apt-get install -y protobuf-compiler protobuf-compiler-grpc): ${generated.failed.join('; ')}`;
  } else generatedBy = generated.how;
});

after(async () => {
  await harness?.close();
  if (stubs !== '') await rm(stubs, { recursive: true, force: true });
});

test('a stock Python grpcio client: Actions, Webhook, WebhookStream (+ barge-in, errors), Health', async (t) => {
  if (unavailable !== null) {
    if (process.env.CI === 'true') assert.fail(`Python gRPC interop is required in CI: ${unavailable}`);
    t.skip(unavailable);
    return;
  }
  const streaming = defineAction({
    name: 'action_streaming',
    async run(d, tracker) {
      d.utterMessage({ text: 'plain utter' });
      await d.streamStart();
      await d.streamChunk({ text: 'Hello ' });
      await d.streamChunk({ text: 'world', buttons: [{ title: 'A', payload: '/a' }], json: { k: 'v' } });
      await d.streamEnd();
      return [slotSet('n', tracker.getSlot('n'))];
    },
  });
  const talk = defineAction({
    name: 'action_talk',
    async run(d) {
      await d.streamChunk({ text: 'delivered' });
      // Speaks on until the client barges in (or 10 s pass).
      for (let i = 0; i < 1_000 && !d.signal.aborted; i++) await sleep(10);
      await d.streamChunk({ text: 'never delivered' });
      await d.streamEnd();
      return [slotSet('stopped', true)];
    },
  });
  const boom = defineAction({
    name: 'action_boom',
    async run(d) {
      await d.streamChunk({ text: 'before boom' });
      throw new Error('action exploded');
    },
  });
  t.diagnostic(`${python as string}, stubs by ${generatedBy}`);
  harness = await startHarness([streaming, talk, boom]);
  const { stdout } = await run(python as string, [SCRIPT, stubs, String(harness.port)], { timeout: 60_000 });
  const out = JSON.parse(stdout);

  assert.deepEqual(out.actions, { actions: [{ name: 'action_streaming' }, { name: 'action_talk' }, { name: 'action_boom' }] });

  // Struct numbers are doubles: the slot 3 the client sent comes back as 3.0, i.e. 3 in JSON.
  const utter = (text: string) => ({ text, buttons: [], elements: [], custom: {}, template: null, response: null, image: null, attachment: null });
  assert.deepEqual(out.webhook, {
    events: [{ event: 'slot', timestamp: null, name: 'n', value: 3 }],
    responses: [
      utter('plain utter'),
      utter('Hello '),
      { ...utter('world'), buttons: [{ title: 'A', payload: '/a' }], custom: { k: 'v' } },
    ],
  });

  const stream = out.stream as { events: { kind: string; body: Record<string, unknown> }[]; error: unknown };
  assert.equal(stream.error, null);
  assert.deepEqual(
    stream.events.map((e) => e.kind),
    ['chunk_start', 'chunk', 'chunk', 'chunk_end', 'final_result'],
  );
  const id = stream.events[0]?.body.response_id;
  assert.match(String(id), /^[0-9a-f]{32}$/);
  assert.deepEqual(stream.events[1]?.body, { response_id: id, text: 'Hello ' });
  assert.deepEqual(stream.events[2]?.body, { response_id: id, text: 'world', buttons: [{ title: 'A', payload: '/a' }], custom: { k: 'v' } });
  assert.deepEqual(stream.events[3]?.body, { response_id: id });
  assert.deepEqual(stream.events[4]?.body, { events: [{ event: 'slot', timestamp: null, name: 'n', value: 3 }], responses: [utter('plain utter')] });

  assert.equal(out.ack, 'Empty');
  assert.equal(out.ack_unknown, 'Empty');
  const bargeIn = out.barge_in as typeof stream;
  assert.equal(bargeIn.error, null);
  assert.deepEqual(
    bargeIn.events.map((e) => e.kind),
    ['chunk_start', 'chunk', 'final_result'],
    'the ack stops the stream at once: no chunk after it, no chunk_end',
  );
  assert.equal(bargeIn.events[1]?.body.text, 'delivered');
  assert.deepEqual(bargeIn.events[2]?.body, { events: [{ event: 'slot', timestamp: null, name: 'stopped', value: true }] });

  const notFound = out.not_found as typeof stream;
  assert.deepEqual(notFound.events, [
    { kind: 'error', body: { action_name: 'action_unknown', message: "No registered action found for name 'action_unknown'." } },
  ]);
  const details = `{"action_name":"action_unknown","message":"No registered action found for name 'action_unknown'.","resource_type":"ACTION"}`;
  assert.deepEqual(notFound.error, { code: 'NOT_FOUND', details });
  assert.deepEqual(out.webhook_not_found, { code: 'NOT_FOUND', details });

  const boomed = out.boom as typeof stream;
  assert.deepEqual(
    boomed.events.map((e) => e.kind),
    ['chunk_start', 'chunk', 'error'],
  );
  assert.deepEqual(boomed.error, { code: 'INTERNAL', details: 'action exploded' });

  assert.deepEqual(out.health, { '': 'SERVING', ActionServer: 'SERVING' });
});
