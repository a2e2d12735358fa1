/**
 * Flags of the voice socket (`/voice/ws`) for `sluice serve` / `sluice dev`: the TTS engine (the
 * embedded Flite voice, or an OpenAI-compatible `/audio/speech` service), how far audio runs ahead
 * of playback, the segmenter, output rails and the false-interruption timeout.
 * {@link voiceChannelOptions} turns the parsed values into the voice channel's options.
 * @module
 */

import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { VoiceChannelOptions } from '../../channels/voice/channel.ts';
import { FLITE_VOICES, type FliteVoice } from '../../channels/voice/flite-wasi.ts';
import { OpenAiSpeechTts } from '../../channels/voice/openai-speech.ts';
import type { OutputRailsOptions } from '../../channels/voice/rails.ts';
import { resolveRailOptions } from '../../channels/voice/rails.ts';
import { SluiceError } from '../../protocol/errors.ts';
import type { SentenceStreamOptions } from '../../text/options.ts';
import type { FlagSpec, FlagValues } from './spec.ts';

const SERVERS = ['serve', 'dev'] as const;

/** The voice socket's flags. */
export const voiceFlags: readonly FlagSpec[] = [
  {
    name: 'tts-url',
    type: 'string',
    value: '<url>',
    env: 'SLUICE_TTS_URL',
    help: 'speak with an OpenAI-compatible /audio/speech service at this base URL (…/v1) instead of the embedded Flite voice; its key from SLUICE_TTS_API_KEY',
    commands: SERVERS,
  },
  {
    name: 'tts-voice',
    type: 'string',
    value: '<voice>',
    env: 'SLUICE_TTS_VOICE',
    default: 'kal16 (Flite), alloy (--tts-url)',
    help: `the voice: ${FLITE_VOICES.join(', ')} for the embedded engine, or the service's voice name`,
    commands: SERVERS,
  },
  { name: 'tts-model', type: 'string', value: '<model>', env: 'SLUICE_TTS_MODEL', default: 'gpt-4o-mini-tts', help: 'the model of the --tts-url service', commands: SERVERS },
  {
    name: 'audio-lead-ms',
    type: 'string',
    value: '<ms>',
    env: 'SLUICE_AUDIO_LEAD_MS',
    default: '1500',
    help: "most audio sent ahead of playback (the rest waits, and an interrupt drops it); 'Infinity': as fast as synthesized",
    commands: SERVERS,
  },
  {
    name: 'stall-flush-ms',
    type: 'string',
    value: '<ms>',
    env: 'SLUICE_STALL_FLUSH_MS',
    default: 'off',
    help: 'speak pending text after the model paused this long without a tool call or status',
    commands: SERVERS,
  },
  { name: 'segmenter', type: 'string', value: '<mode>', env: 'SLUICE_SEGMENTER', default: 'default', help: "sentence segmenter: 'default' (ICU plus rules) or 'ace' (ACE Agent's regex)", commands: SERVERS },
  {
    name: 'voice-rails',
    type: 'string',
    value: '<module>',
    env: 'SLUICE_VOICE_RAILS',
    help: 'output rails for the voice socket: a module whose default export is a rail function or withOutputRails options',
    commands: SERVERS,
  },
  {
    name: 'false-interruption-timeout',
    type: 'string',
    value: '<seconds>',
    env: 'SLUICE_FALSE_INTERRUPTION_TIMEOUT',
    default: '2',
    help: "a paused turn with neither resume nor interrupt resumes after this long; 'Infinity': never",
    commands: SERVERS,
  },
];

/** The voice channel's options from flags (everything but the executor and logger). */
export type VoiceServeOptions = Omit<VoiceChannelOptions, 'executor' | 'logger'>;

function str(values: FlagValues, name: string): string | undefined {
  const v = values[name];
  return typeof v === 'string' && v.trim() !== '' ? v.trim() : undefined;
}

function positive(values: FlagValues, name: string, { zero, infinity, scale = 1 }: { zero: boolean; infinity: boolean; scale?: number }): number | undefined {
  const text = str(values, name);
  if (text === undefined) return undefined;
  if (infinity && /^inf(inity)?$/i.test(text)) return Infinity;
  const n = /^\d+(\.\d+)?$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isFinite(n) || (!zero && n === 0)) {
    const what = `${zero ? 'a number ≥ 0' : 'a number > 0'}${infinity ? " or 'Infinity'" : ''}`;
    throw new SluiceError('invalid_argument', `--${name} must be ${what} (got '${text}')`);
  }
  return n * scale;
}

/** Loads the `--voice-rails` module: its default export (or `rails`) is a rail or rail options. */
async function loadRails(specifier: string, cwd: string): Promise<Omit<OutputRailsOptions, 'cancel'>> {
  const path = resolve(cwd, specifier);
  let module: Record<string, unknown>;
  try {
    module = (await import(existsSync(path) ? pathToFileURL(path).href : specifier)) as Record<string, unknown>;
  } catch (error) {
    throw new SluiceError('invalid_argument', `--voice-rails: cannot load '${specifier}': ${(error as Error).message}`, { cause: error });
  }
  const exported = module.default ?? module.rails;
  const options = typeof exported === 'function' || Array.isArray(exported) ? { rail: exported } : exported;
  if (typeof options !== 'object' || options === null) {
    throw new SluiceError('invalid_argument', `--voice-rails: '${specifier}' must export (default or 'rails') a rail function or withOutputRails options`);
  }
  if ('cancel' in options) throw new SluiceError('invalid_argument', `--voice-rails: '${specifier}': option 'cancel' is not accepted (the voice socket cancels the turn itself)`);
  try {
    resolveRailOptions(`--voice-rails '${specifier}'`, options);
  } catch (error) {
    throw new SluiceError('invalid_argument', (error as Error).message);
  }
  return options as Omit<OutputRailsOptions, 'cancel'>;
}

/**
 * The voice channel's options from the parsed flags (their environment variables applied), with
 * `SLUICE_TTS_API_KEY` read from `env`. Only what was given is set: the channel's defaults hold
 * for the rest.
 *
 * @throws {SluiceError} `invalid_argument` naming the flag.
 */
export async function voiceChannelOptions(values: FlagValues, env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): Promise<VoiceServeOptions> {
  const out: VoiceServeOptions = {};
  const url = str(values, 'tts-url');
  const voice = str(values, 'tts-voice');
  const model = str(values, 'tts-model');
  if (url !== undefined) {
    const apiKey = env.SLUICE_TTS_API_KEY;
    try {
      out.tts = new OpenAiSpeechTts({
        baseUrl: url,
        ...(apiKey === undefined || apiKey === '' ? {} : { apiKey }),
        ...(voice === undefined ? {} : { voice }),
        ...(model === undefined ? {} : { model }),
      });
    } catch (error) {
      throw new SluiceError('invalid_argument', `--tts-url: ${(error as Error).message}`);
    }
  } else {
    if (model !== undefined) throw new SluiceError('invalid_argument', '--tts-model needs --tts-url (the embedded engine has no models)');
    if (voice !== undefined) {
      if (!(FLITE_VOICES as readonly string[]).includes(voice)) {
        throw new SluiceError('invalid_argument', `--tts-voice must be one of ${FLITE_VOICES.join(', ')} for the embedded engine (got '${voice}')`);
      }
      out.fliteVoice = voice as FliteVoice;
    }
  }
  const lead = positive(values, 'audio-lead-ms', { zero: true, infinity: true });
  if (lead !== undefined) out.audioLeadMs = lead;
  const segmenter: SentenceStreamOptions = {};
  const mode = str(values, 'segmenter');
  if (mode !== undefined) {
    if (mode !== 'default' && mode !== 'ace') throw new SluiceError('invalid_argument', `--segmenter must be 'default' or 'ace' (got '${mode}')`);
    segmenter.mode = mode;
  }
  const stall = positive(values, 'stall-flush-ms', { zero: false, infinity: false });
  if (stall !== undefined) segmenter.stallFlushMs = stall;
  if (Object.keys(segmenter).length > 0) out.segmenter = segmenter;
  const timeout = positive(values, 'false-interruption-timeout', { zero: false, infinity: true, scale: 1000 });
  if (timeout !== undefined) out.falseInterruptionTimeoutMs = timeout;
  const rails = str(values, 'voice-rails');
  if (rails !== undefined) out.rails = await loadRails(rails, cwd);
  return out;
}
