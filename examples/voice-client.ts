/**
 * A tiny voice client: connects to a Sluice voice socket, speaks one turn and writes its audio to
 * a WAV file; optionally barges in (pause, then interrupt) after some time.
 *
 *   npm start                                   # in another terminal: the example server
 *   node examples/voice-client.ts --say "Hello there. How are you today?"
 *   node examples/voice-client.ts --action action_weather --text "weather in Paris" --out weather.wav
 *   node examples/voice-client.ts --action action_story --barge-in-ms 1500
 *
 * Options: --url (default ws://127.0.0.1:5055/voice/ws), --say <text> or --action <name> with
 * --text <user message>, --out <file.wav> (default reply.wav), --barge-in-ms <ms>: send `pause`
 * at that time and `interrupt` 300 ms later (a real gateway sends `resume` instead when the
 * user's sound was not speech). Prints the sentences as they arrive and the turn's history.
 * @module
 */

import { writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { WebSocket } from 'ws';

const { values } = parseArgs({
  options: {
    url: { type: 'string', default: 'ws://127.0.0.1:5055/voice/ws' },
    say: { type: 'string' },
    action: { type: 'string' },
    text: { type: 'string', default: 'hello' },
    out: { type: 'string', default: 'reply.wav' },
    'barge-in-ms': { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (values.help === true) {
  process.stdout.write('node examples/voice-client.ts [--url ws://…/voice/ws] [--say <text> | --action <name> --text <msg>] [--out reply.wav] [--barge-in-ms <ms>]\n');
  process.exit(0);
}
const bargeInMs = values['barge-in-ms'] === undefined ? undefined : Number(values['barge-in-ms']);
if (bargeInMs !== undefined && !(bargeInMs >= 0)) throw new Error(`--barge-in-ms must be a number ≥ 0 (got '${values['barge-in-ms']}')`);

/** The 20-byte header of an audio frame: see the voice socket's protocol (src/channels/voice/session.ts). */
const HEADER = 20;

/** A WAV file (PCM16LE) around `pcm`. */
function wav(pcm: Buffer, sampleRate: number, channels: number): Buffer {
  const header = Buffer.alloc(44);
  header.write('RIFF', 0);
  header.writeUInt32LE(36 + pcm.length, 4);
  header.write('WAVEfmt ', 8);
  header.writeUInt32LE(16, 16);
  header.writeUInt16LE(1, 20);
  header.writeUInt16LE(channels, 22);
  header.writeUInt32LE(sampleRate, 24);
  header.writeUInt32LE(sampleRate * channels * 2, 28);
  header.writeUInt16LE(channels * 2, 32);
  header.writeUInt16LE(16, 34);
  header.write('data', 36);
  header.writeUInt32LE(pcm.length, 40);
  return Buffer.concat([header, pcm]);
}

const socket = new WebSocket(values.url);
const pcm: Buffer[] = [];
let format = { sampleRate: 16000, channels: 1 };
let turn = -1;
let dropping = false;

socket.on('open', () => {
  if (values.say !== undefined) {
    socket.send(JSON.stringify({ type: 'say', text: values.say }));
  } else {
    const sender = `voice-client-${process.pid}`;
    const call = {
      next_action: values.action ?? 'action_chat',
      sender_id: sender,
      tracker: { sender_id: sender, slots: {}, latest_message: { text: values.text }, events: [], paused: false },
      domain: { version: '3.1', slots: {} },
      version: '3.17.0',
    };
    socket.send(JSON.stringify({ type: 'start', call }));
  }
});

socket.on('message', (data, isBinary) => {
  const bytes = data as Buffer;
  if (isBinary) {
    // After a pause or an interrupt, frames already in flight are not played.
    if (dropping || bytes.readUInt32LE(4) !== turn) return;
    format = { channels: bytes.readUInt16LE(2), sampleRate: bytes.readUInt32LE(12) };
    pcm.push(bytes.subarray(HEADER));
    return;
  }
  const message = JSON.parse(bytes.toString('utf8')) as Record<string, any>;
  switch (message.type) {
    case 'turn-start':
      turn = message.turn;
      process.stdout.write(`turn ${message.turnId} (session ${message.sessionId})\n`);
      if (bargeInMs !== undefined) {
        setTimeout(() => {
          socket.send(JSON.stringify({ type: 'pause' }));
          setTimeout(() => socket.send(JSON.stringify({ type: 'interrupt' })), 300);
        }, bargeInMs);
      }
      break;
    case 'sentence':
      process.stdout.write(`  sentence ${message.index}: ${JSON.stringify(message.text)}\n`);
      break;
    case 'status':
      process.stdout.write(`  status: ${message.text}\n`);
      break;
    case 'paused':
      dropping = true;
      process.stdout.write(`  paused; heard so far: ${JSON.stringify(message.spoken)}\n`);
      break;
    case 'resumed':
      dropping = false;
      break;
    case 'interrupted':
      dropping = true;
      process.stdout.write(`  interrupted; heard: ${JSON.stringify(message.history.spoken)}\n`);
      break;
    case 'error':
      process.stderr.write(`  error ${message.code}: ${message.message}\n`);
      break;
    case 'turn-end': {
      const audio = Buffer.concat(pcm);
      const seconds = audio.length / (format.sampleRate * format.channels * 2);
      void writeFile(values.out, wav(audio, format.sampleRate, format.channels)).then(() => {
        process.stdout.write(`turn-end ${message.reason}: spoken ${JSON.stringify(message.history.spoken)}\n`);
        process.stdout.write(`wrote ${values.out} (${seconds.toFixed(2)} s, ${format.sampleRate} Hz)\n`);
        socket.close();
      });
      break;
    }
  }
});

socket.on('error', (error) => {
  process.stderr.write(`voice-client: ${error.message}\n`);
  process.exitCode = 1;
});
