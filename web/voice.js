// @ts-check
/**
 * The voice page: a prompt becomes a `start` on `/voice/ws`; sentences arrive as text, then their
 * PCM16 audio frames (20-byte header, see `src/channels/voice/session.ts`), which are scheduled on a
 * WebAudio clock one after the other, so the embedded TTS is heard sentence by sentence while the
 * action still streams. Interrupt sends `interrupt` with what was actually played (`{ ms }`) and
 * stops playback at once; the history then shows generated / spoken / interrupted text.
 * The latency strip (latency.js) adds first sentence and first audio.
 *
 * For tests, `window.voiceStats` counts frames and bytes received, and frames after the interrupt.
 */

import { RunFigures } from './latency.js';

const HEADER_BYTES = 20;

/** @param {string} id */
function byId(id) {
  const el = document.getElementById(id);
  if (el === null) throw new Error(`missing #${id}`);
  return el;
}

const els = {
  form: /** @type {HTMLFormElement} */ (byId('voice-form')),
  action: /** @type {HTMLSelectElement} */ (byId('voice-action')),
  prompt: /** @type {HTMLInputElement} */ (byId('prompt')),
  speak: /** @type {HTMLButtonElement} */ (byId('speak')),
  interrupt: /** @type {HTMLButtonElement} */ (byId('interrupt')),
  mute: /** @type {HTMLInputElement} */ (byId('mute')),
  status: byId('voice-status'),
  sentences: byId('sentences'),
  figures: byId('voice-figures'),
  history: byId('history'),
};

const stats = { frames: 0, bytes: 0, framesAfterInterrupt: 0, interruptedAt: -1, sentences: 0, turns: 0 };
/** @type {any} */ (window).voiceStats = stats;

/** @type {AudioContext | null} */
let audio = null;
/** @type {GainNode | null} */
let gain = null;
/** Playback clock: where the next frame starts, in AudioContext time. */
let playAt = 0;
/** @type {AudioBufferSourceNode[]} */
let sources = [];
let playedStart = -1;
/** @type {WebSocket | null} */
let socket = null;
/** @type {{ turn: number, turnId: string, figures: RunFigures, dropping: boolean } | null} */
let current = null;
let senderId = `voice-${Math.random().toString(16).slice(2, 10)}`;

function ensureAudio() {
  if (audio === null) {
    audio = new AudioContext();
    gain = audio.createGain();
    gain.connect(audio.destination);
  }
  if (audio.state === 'suspended') void audio.resume();
  if (gain !== null) gain.gain.value = els.mute.checked ? 0 : 1;
  return audio;
}

/** Plays one PCM16LE frame right after the previous one. @param {ArrayBuffer} data */
function play(data) {
  const view = new DataView(data);
  const channels = view.getUint16(2, true);
  const sampleRate = view.getUint32(12, true);
  const samples = (data.byteLength - HEADER_BYTES) / 2 / Math.max(1, channels);
  if (samples <= 0) return;
  const ctx = ensureAudio();
  const buffer = ctx.createBuffer(channels, samples, sampleRate);
  for (let c = 0; c < channels; c++) {
    const out = buffer.getChannelData(c);
    for (let i = 0; i < samples; i++) out[i] = view.getInt16(HEADER_BYTES + 2 * (i * channels + c), true) / 32768;
  }
  const source = ctx.createBufferSource();
  source.buffer = buffer;
  source.connect(/** @type {GainNode} */ (gain));
  const start = Math.max(playAt, ctx.currentTime + 0.02);
  if (playedStart < 0) playedStart = start;
  source.start(start);
  playAt = start + buffer.duration;
  sources.push(source);
  source.onended = () => {
    sources = sources.filter((s) => s !== source);
  };
}

function stopPlayback() {
  for (const s of sources) {
    try {
      s.stop();
    } catch {
      // already stopped
    }
  }
  sources = [];
  playAt = 0;
}

/** Milliseconds of audio actually played in this turn. */
function playedMs() {
  if (audio === null || playedStart < 0) return 0;
  return Math.max(0, (Math.min(audio.currentTime, playAt) - playedStart) * 1000);
}

function connect() {
  if (socket !== null && socket.readyState <= WebSocket.OPEN) return Promise.resolve(socket);
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/voice/ws`);
    ws.binaryType = 'arraybuffer';
    ws.onopen = () => resolve(ws);
    ws.onerror = () => reject(new Error('voice socket failed'));
    ws.onclose = () => {
      socket = null;
      els.status.textContent = 'Disconnected.';
    };
    ws.onmessage = (e) => onMessage(e.data);
    socket = ws;
  });
}

/** @param {string | ArrayBuffer} data */
function onMessage(data) {
  if (typeof data !== 'string') {
    if (stats.interruptedAt >= 0) stats.framesAfterInterrupt++;
    if (current === null || current.dropping) return;
    const turn = new DataView(data).getUint32(4, true);
    if (turn !== current.turn) return;
    stats.frames++;
    stats.bytes += data.byteLength;
    current.figures.audio();
    play(data);
    return;
  }
  const msg = JSON.parse(data);
  switch (msg.type) {
    case 'turn-start':
      if (current !== null) {
        current.turn = msg.turn;
        current.turnId = msg.turnId;
      }
      els.status.textContent = `Speaking (run ${msg.runId})…`;
      break;
    case 'status':
      current?.figures.event({ type: 'status' });
      els.status.textContent = msg.text;
      break;
    case 'sentence': {
      stats.sentences++;
      current?.figures.sentence();
      const li = document.createElement('li');
      li.textContent = msg.text;
      li.dataset.index = String(msg.index);
      els.sentences.append(li);
      break;
    }
    case 'audio-end':
      els.sentences.querySelector(`li[data-index="${msg.index}"]`)?.classList.add('spoken');
      break;
    case 'interrupted':
      current?.figures.silenced();
      showHistory(msg.history);
      break;
    case 'turn-end':
      els.status.textContent = `Turn ended: ${msg.reason}.`;
      if (current !== null) {
        current.figures.finish();
        current = null;
      }
      els.speak.disabled = false;
      els.interrupt.disabled = true;
      showHistory(msg.history);
      break;
    case 'run-error':
    case 'error':
      els.status.textContent = `${msg.code}: ${msg.message}`;
      break;
    default:
      break;
  }
}

/** @param {{ id?: string, generated?: string, spoken?: string, interrupted?: boolean } | undefined} entry */
function showHistory(entry) {
  if (entry === undefined || entry === null) return;
  const id = entry.id ?? String(stats.turns);
  let row = els.history.querySelector(`tr[data-turn="${CSS.escape(id)}"]`);
  if (row === null) {
    row = document.createElement('tr');
    row.setAttribute('data-turn', id);
    els.history.prepend(row);
  }
  const cells = [String(stats.turns), entry.generated ?? '', entry.spoken ?? '', entry.interrupted ? 'yes' : 'no'];
  row.replaceChildren(
    ...cells.map((text, i) => {
      const td = document.createElement('td');
      td.textContent = text;
      if (i === 3 && entry.interrupted) td.className = 'interrupted';
      td.className += ` col-${['turn', 'generated', 'spoken', 'interrupted'][i]}`;
      return td;
    }),
  );
}

async function speak() {
  if (current !== null) return;
  ensureAudio();
  stopPlayback();
  playedStart = -1;
  stats.interruptedAt = -1;
  stats.turns++;
  els.sentences.replaceChildren();
  els.figures.replaceChildren();
  const figures = new RunFigures(els.figures);
  current = { turn: -1, turnId: '', figures, dropping: false };
  els.speak.disabled = true;
  els.interrupt.disabled = false;
  const ws = await connect();
  ws.send(
    JSON.stringify({
      type: 'start',
      call: {
        next_action: els.action.value,
        sender_id: senderId,
        tracker: { sender_id: senderId, latest_message: { text: els.prompt.value }, events: [], slots: {} },
        domain: {},
      },
    }),
  );
}

function interrupt() {
  if (current === null || socket === null) return;
  current.figures.bargeIn();
  current.dropping = true;
  stats.interruptedAt = performance.now();
  stats.framesAfterInterrupt = 0;
  const ms = Math.round(playedMs());
  stopPlayback();
  socket.send(JSON.stringify({ type: 'interrupt', played: { ms } }));
  els.interrupt.disabled = true;
}

els.form.addEventListener('submit', (e) => {
  e.preventDefault();
  void speak();
});
els.interrupt.addEventListener('click', interrupt);
els.mute.addEventListener('change', () => {
  if (gain !== null) gain.gain.value = els.mute.checked ? 0 : 1;
});
