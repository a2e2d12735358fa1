/**
 * The voice gateway as `sluice serve` wires it: the example client (examples/voice-client.ts)
 * speaks a turn into a WAV file against a server on port 0, and barges in; gRPC
 * `VoiceService.PauseSpeech` / `ResumeSpeech` / `InterruptSpeech` act on a live voice socket.
 */

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Code, ConnectError, createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { startServer, type RunningServer } from '../../src/cli/serve.ts';
import { voiceChannelOptions } from '../../src/cli/flags/voice.ts';
import { silentLogger } from '../../src/runtime/logger.ts';
import { VoiceService } from '../../src/transports/grpc/gen/sluice_voice_pb.ts';
import { VoiceClient } from '../channels/voice/helpers.ts';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const NODE = join(repo, 'node_modules', '.bin', 'node');
const CLIENT = join(repo, 'examples', 'voice-client.ts');
const run = promisify(execFile);
const LONG = 'This is a long answer that keeps talking for a while. It has several sentences. Each one takes a second or two to say. And then it ends.';

describe('voice gateway in sluice serve', () => {
  let server: RunningServer;
  let dir: string;
  let wsUrl: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sluice-voice-'));
    const voice = await voiceChannelOptions({ 'audio-lead-ms': '500', 'false-interruption-timeout': '5' }, {});
    server = await startServer({ actions: join(repo, 'examples', 'index.ts'), host: '127.0.0.1', port: 0, grpcPort: 0, logger: silentLogger, voice });
    wsUrl = `${server.httpUrl.replace('http', 'ws')}/voice/ws`;
  });
  after(async () => {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('examples/voice-client.ts speaks a turn into a WAV file', async () => {
    const out = join(dir, 'reply.wav');
    const { stdout } = await run(NODE, [CLIENT, '--url', wsUrl, '--action', 'action_weather', '--out', out], { timeout: 30_000 });
    assert.match(stdout, /sentence 0: /);
    assert.match(stdout, /turn-end completed/);
    const wav = await readFile(out);
    assert.equal(wav.toString('ascii', 0, 4), 'RIFF');
    assert.equal(wav.toString('ascii', 8, 12), 'WAVE');
    assert.equal(wav.readUInt32LE(24), 16000, 'sample rate');
    assert.equal(wav.readUInt32LE(40), wav.length - 44, 'data size');
    assert.ok(wav.length - 44 > 32_000, 'more than a second of audio');
  });

  test('examples/voice-client.ts barges in: pause, then interrupt', async () => {
    const out = join(dir, 'story.wav');
    const { stdout } = await run(NODE, [CLIENT, '--url', wsUrl, '--say', LONG, '--barge-in-ms', '800', '--out', out], { timeout: 30_000 });
    assert.match(stdout, /paused; heard so far: /);
    assert.match(stdout, /turn-end interrupted/);
  });

  test('gRPC PauseSpeech / ResumeSpeech / InterruptSpeech act on a voice socket by session id', async () => {
    const grpc = createClient(VoiceService, createGrpcTransport({ baseUrl: `http://${server.grpcAddress}` }));
    const client = await VoiceClient.connect(wsUrl);
    client.send({ type: 'say', text: LONG });
    const start = await client.next((m) => m.type === 'turn-start');
    await client.until(() => client.frames.length > 0, 10_000);
    const paused = await grpc.pauseSpeech({ sessionId: start.sessionId });
    assert.equal(paused.turnId, start.turnId);
    assert.equal(paused.played?.position.case, 'ms');
    await client.next((m) => m.type === 'paused');
    await assert.rejects(grpc.pauseSpeech({ sessionId: start.sessionId }), (e: unknown) => ConnectError.from(e).code === Code.FailedPrecondition);
    const resumed = await grpc.resumeSpeech({ sessionId: start.sessionId });
    assert.equal(resumed.auto, false);
    await client.next((m) => m.type === 'resumed');
    const interrupted = await grpc.interruptSpeech({ sessionId: start.sessionId, played: { position: { case: 'chars', value: 12 } } });
    assert.equal(interrupted.spoken, LONG.slice(0, 12));
    const message = await client.next((m) => m.type === 'interrupted');
    assert.deepEqual(message.history.marks.map((m: { type: string }) => m.type), ['pause', 'resume']);
    await assert.rejects(grpc.pauseSpeech({ sessionId: 'nope' }), (e: unknown) => ConnectError.from(e).code === Code.NotFound);
    await assert.rejects(grpc.pauseSpeech({ sessionId: '' }), (e: unknown) => ConnectError.from(e).code === Code.InvalidArgument);
    await assert.rejects(
      grpc.pauseSpeech({ sessionId: start.sessionId, played: { position: { case: 'ms', value: -5 } } }),
      (e: unknown) => ConnectError.from(e).code === Code.InvalidArgument,
    );
    await client.close();
  });
});
