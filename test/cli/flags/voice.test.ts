/**
 * The voice flags of `sluice serve`: values (and their env variables) become the voice channel's
 * options; bad values fail naming the flag; `--help` lists them.
 */

import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { VoiceChannel } from '../../../src/channels/voice/channel.ts';
import { OpenAiSpeechTts } from '../../../src/channels/voice/openai-speech.ts';
import { commandHelp, parseCommandLine } from '../../../src/cli/flags/parse.ts';
import { voiceChannelOptions, voiceFlags } from '../../../src/cli/flags/voice.ts';
import { coreFlags } from '../../../src/cli/flags/core.ts';
import { ActionExecutor } from '../../../src/runtime/executor.ts';
import { silentLogger } from '../../../src/runtime/logger.ts';

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures');
const FLAGS = [...coreFlags, ...voiceFlags];

function parse(argv: string[], env: NodeJS.ProcessEnv = {}) {
  const saved = { ...process.env };
  try {
    for (const key of Object.keys(process.env)) if (key.startsWith('SLUICE_')) delete process.env[key];
    Object.assign(process.env, env);
    return parseCommandLine(['serve', ...argv], FLAGS).values;
  } finally {
    for (const key of Object.keys(process.env)) if (!(key in saved)) delete process.env[key];
    Object.assign(process.env, saved);
  }
}

describe('voice flags', () => {
  test('nothing given: the channel defaults hold', async () => {
    assert.deepEqual(await voiceChannelOptions(parse([]), {}), {});
  });

  test('flags and env map to the channel options, and the channel accepts them', async () => {
    const values = parse(['--audio-lead-ms', '400', '--segmenter', 'ace', '--stall-flush-ms', '250', '--false-interruption-timeout', '1.5', '--tts-voice', 'slt'], {});
    const options = await voiceChannelOptions(values, {});
    assert.deepEqual(options, { fliteVoice: 'slt', audioLeadMs: 400, segmenter: { mode: 'ace', stallFlushMs: 250 }, falseInterruptionTimeoutMs: 1500 });
    const fromEnv = await voiceChannelOptions(parse([], { SLUICE_AUDIO_LEAD_MS: 'Infinity', SLUICE_FALSE_INTERRUPTION_TIMEOUT: 'inf' }), {});
    assert.deepEqual(fromEnv, { audioLeadMs: Infinity, falseInterruptionTimeoutMs: Infinity });
    const executor = new ActionExecutor({ logger: silentLogger, actions: [] });
    const channel = new VoiceChannel({ ...options, executor, logger: silentLogger });
    assert.equal(channel.tts.name, 'flite:slt');
    assert.equal(channel.settings.falseInterruptionTimeoutMs, 1500);
    await channel.close();
    await executor.close();
  });

  test('--tts-url: an OpenAI-compatible engine with the key from SLUICE_TTS_API_KEY', async () => {
    const options = await voiceChannelOptions(parse(['--tts-url', 'http://127.0.0.1:8880/v1', '--tts-voice', 'nova', '--tts-model', 'tts-1']), { SLUICE_TTS_API_KEY: 'k' });
    assert.ok(options.tts instanceof OpenAiSpeechTts);
    assert.equal(options.tts.name, 'openai-speech:tts-1:nova');
  });

  test('--voice-rails loads a rail module', async () => {
    const options = await voiceChannelOptions(parse(['--voice-rails', join(FIXTURES, 'voice-rails.ts')]), {});
    assert.equal(typeof options.rails?.rail, 'function');
  });

  test('bad values fail naming the flag', async () => {
    const cases: [string[], RegExp][] = [
      [['--audio-lead-ms', 'soon'], /--audio-lead-ms must be a number ≥ 0 or 'Infinity' \(got 'soon'\)/],
      [['--stall-flush-ms', '0'], /--stall-flush-ms must be a number > 0/],
      [['--stall-flush-ms', 'Infinity'], /--stall-flush-ms must be a number > 0 \(got 'Infinity'\)/],
      [['--segmenter', 'regex'], /--segmenter must be 'default' or 'ace'/],
      [['--false-interruption-timeout', '0'], /--false-interruption-timeout must be a number > 0 or 'Infinity'/],
      [['--tts-voice', 'bob'], /--tts-voice must be one of kal16/],
      [['--tts-model', 'tts-1'], /--tts-model needs --tts-url/],
      [['--tts-url', 'ftp://x'], /--tts-url: .*baseUrl/],
      [['--voice-rails', join(FIXTURES, 'nope.ts')], /--voice-rails: cannot load/],
      [['--voice-rails', join(FIXTURES, 'bad-rails.ts')], /--voice-rails: .* must export/],
    ];
    for (const [argv, message] of cases) {
      await assert.rejects(voiceChannelOptions(parse(argv), {}), (error: Error) => {
        assert.match(error.message, message, argv.join(' '));
        return true;
      });
    }
  });

  test('--help lists every voice flag with its env variable', () => {
    const help = commandHelp('serve', 'sluice serve', FLAGS);
    for (const flag of voiceFlags) {
      assert.ok(help.includes(`--${flag.name}`), flag.name);
      assert.ok(help.includes(flag.env!), flag.env);
    }
  });
});
