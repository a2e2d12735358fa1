/**
 * The text-to-speech seam: a {@link TtsEngine} turns one text into a stream of audio chunks, and
 * stops when its signal aborts (barge-in). Engines here: the embedded Flite engine (`flite.ts`)
 * and an OpenAI-compatible `/audio/speech` adapter (`openai-speech.ts`).
 * @module
 */

/** The audio of a chunk. Only linear PCM is used, so durations are exact and frames can be cut anywhere. */
export interface AudioFormat {
  /** Signed 16-bit little-endian linear PCM. */
  encoding: 'pcm_s16le';
  /** Samples per second, e.g. 16000 or 24000. */
  sampleRate: number;
  /** Interleaved channels (1 for every engine here). */
  channels: number;
}

/** A piece of synthesized audio. */
export interface AudioChunk {
  format: AudioFormat;
  /** The samples (whole frames only: a sample is never split between chunks). */
  data: Uint8Array;
  /** Duration of `data` in milliseconds. */
  durationMs: number;
}

/** Options of one synthesis. */
export interface SynthesizeOptions {
  /** Aborts the synthesis: the iterable ends (or throws an abort) and no further audio is produced. */
  signal: AbortSignal;
}

/**
 * A text-to-speech engine. `synthesize` returns the audio of `text` as an async iterable of
 * chunks; it throws a `SluiceError` (`unavailable`, `invalid_argument`, `internal`, …) for a
 * failure, whose message is safe to show. An aborted synthesis just ends.
 */
export interface TtsEngine {
  /** Short id for logs, e.g. `flite:kal16`. */
  readonly name: string;
  synthesize(text: string, options: SynthesizeOptions): AsyncIterable<AudioChunk>;
  /** Releases what the engine holds (worker threads, connections). */
  close?(): Promise<void>;
}

/** Bytes per second of a format. */
export function bytesPerSecond(format: AudioFormat): number {
  return format.sampleRate * format.channels * 2;
}

/** Duration in milliseconds of `bytes` bytes of `format`. */
export function durationOf(format: AudioFormat, bytes: number): number {
  return (bytes / bytesPerSecond(format)) * 1000;
}

/** Cuts PCM into chunks of about `chunkMs` (whole frames), as views of `pcm` (no copy). */
export function* chunkPcm(format: AudioFormat, pcm: Uint8Array, chunkMs: number): Generator<AudioChunk> {
  const frame = format.channels * 2;
  const per = Math.max(frame, Math.floor((bytesPerSecond(format) * chunkMs) / 1000 / frame) * frame);
  const usable = pcm.length - (pcm.length % frame);
  for (let at = 0; at < usable; at += per) {
    const data = pcm.subarray(at, Math.min(usable, at + per));
    yield { format, data, durationMs: durationOf(format, data.length) };
  }
}

/**
 * Root mean square of PCM16LE samples (0 for silence): a cheap check that audio is not silent.
 */
export function pcmRms(pcm: Uint8Array): number {
  const view = new DataView(pcm.buffer, pcm.byteOffset, pcm.byteLength);
  const n = pcm.byteLength >> 1;
  if (n === 0) return 0;
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const v = view.getInt16(i * 2, true);
    sum += v * v;
  }
  return Math.sqrt(sum / n);
}

/**
 * Text as it should be spoken: drops markdown emphasis and code marks, citation markers such as
 * `[1]`, link targets and heading/list markers, which a synthesizer would otherwise read out.
 * History keeps the original text; only what goes to the engine is filtered.
 */
export function speakableText(text: string): string {
  return text
    .replace(/\[(\d+(?:\s*,\s*\d+)*)\]/g, '')
    .replace(/\[([^\]]+)\]\([^)]*\)/g, '$1')
    .replace(/(\*\*|__|\*|`+|~~)/g, '')
    .replace(/^\s{0,3}(#{1,6}\s+|[-*+]\s+|>\s+)/gm, '')
    .replace(/[ \t]{2,}/g, ' ')
    .replace(/\s+([.,;:!?])/g, '$1');
}
