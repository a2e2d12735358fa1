#!/usr/bin/env node
/**
 * The `sluice` command.
 *
 *   sluice serve --actions <module> [--port 5055] [--grpc-port 5056] [--host 127.0.0.1] [options]
 *   sluice dev                       the example assistant on embedded defaults (npm start)
 *   sluice chat [--url http://127.0.0.1:5055] [--action action_assistant]
 *   sluice --version
 *
 * Flags are declared in `flags/` (one table per layer); each has an environment variable. An
 * optional config module (`sluice.config.ts`, `--config`) fills what flags and env leave unset.
 * @module
 */

import { readFileSync } from 'node:fs';
import { SluiceError } from '../protocol/errors.ts';
import { loadConfig, type SluiceConfig } from './config.ts';
import { loadApps } from './apps.ts';
import { coreFlags } from './flags/core.ts';
import { metricsOptionsFrom, obsFlags } from './flags/obs.ts';
import { limitsFlags, limitsFromFlags } from './flags/limits.ts';
import { commandHelp, parseCommandLine } from './flags/parse.ts';
import { redisFlags, redisOptionsFrom } from './flags/redis.ts';
import { securityFlags, securityOptions } from './flags/security.ts';
import { voiceChannelOptions, voiceFlags } from './flags/voice.ts';
import { serverFlags } from './flags/server.ts';
import type { CommandName, FlagSpec, FlagValues } from './flags/spec.ts';
import { createServerLogger } from './logging.ts';
import { bool, logLevel, resolveServeOptions, str } from './options.ts';
import { examplePath, PACKAGE_ROOT } from './package-files.ts';

/** Every flag of every command. */
const FLAGS: readonly FlagSpec[] = [...coreFlags, ...serverFlags, ...limitsFlags, ...redisFlags, ...voiceFlags, ...obsFlags, ...securityFlags];

const SYNOPSIS: Record<CommandName, string> = {
  serve: 'sluice serve --actions <module> [options]',
  dev: 'sluice dev [options]   (the example assistant and the playground)',
  chat: 'sluice chat [options]  (a terminal client of a running server)',
};

const USAGE = `Usage:
  ${SYNOPSIS.serve}
  ${SYNOPSIS.dev}
  ${SYNOPSIS.chat}
  sluice --version
Run 'sluice <command> --help' for the options of a command.`;

/** Rasa SDK server flags Sluice does not take, and what to use instead. */
const RASA_ALTERNATIVES: Record<string, string> = {
  'logging-config-file': 'use --log-level, --log-file, --log-pretty, or `log`/`logger` in sluice.config.ts',
  'use-syslog': 'log to stdout (JSON lines) and let the platform ship them, or use --log-file',
  'syslog-address': 'log to stdout (JSON lines) and let the platform ship them, or use --log-file',
  'syslog-port': 'log to stdout (JSON lines) and let the platform ship them, or use --log-file',
  'syslog-protocol': 'log to stdout (JSON lines) and let the platform ship them, or use --log-file',
  endpoints: 'Sluice reads no endpoints.yml; configure with flags, env or sluice.config.ts',
};

/** The package version, read from package.json (beside `src/` and `dist/` alike). */
function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('package.json', PACKAGE_ROOT), 'utf8')) as { version?: string };
  return pkg.version ?? 'unknown';
}

function parse(argv: string[]): ReturnType<typeof parseCommandLine> {
  try {
    return parseCommandLine(argv, FLAGS);
  } catch (error) {
    const flag = /Unknown option '--([^'=]+)'/.exec((error as Error).message)?.[1];
    const instead = flag === undefined ? undefined : RASA_ALTERNATIVES[flag];
    if (instead !== undefined) throw new SluiceError('invalid_argument', `Unknown option '--${flag}' (a Rasa SDK flag Sluice does not take: ${instead})`);
    throw error;
  }
}

async function runServer(command: 'serve' | 'dev', values: FlagValues): Promise<void> {
  const loaded = await loadConfig(str(values.config));
  const config: SluiceConfig = loaded?.config ?? {};
  const dev = command === 'dev';
  const pretty = bool(values['log-pretty']) ?? config.log?.pretty ?? process.stdout.isTTY === true;
  const level = logLevel(values, config);
  // Checked before the server's modules load: a bad command line fails fast.
  const options = resolveServeOptions(values, config, dev ? examplePath('index') : undefined);
  const logger = config.logger ?? (await createServerLogger({ level, pretty, file: str(values['log-file']) ?? config.log?.file }));
  if (loaded !== undefined) logger.debug({ config: loaded.path }, 'Config module loaded');
  const appsFrom = str(values.apps) ?? (typeof config.apps === 'string' ? config.apps : undefined);
  const apps = appsFrom !== undefined ? await loadApps(appsFrom) : typeof config.apps === 'object' ? config.apps : undefined;
  const { serve } = await import('./serve.ts');
  await serve({
    ...options,
    ...(apps !== undefined ? { apps } : {}),
    redis: redisOptionsFrom(values),
    voice: await voiceChannelOptions(values),
    metrics: metricsOptionsFrom(values),
    limits: limitsFromFlags(values),
    security: securityOptions(values, command, options.host),
    logger,
    dev,
    banner: pretty && config.logger === undefined,
  });
}

async function main(argv: string[]): Promise<void> {
  const line = parse(argv);
  const { command, values } = line;
  if (line.version) {
    process.stdout.write(`${version()}\n`);
    return;
  }
  if (command !== undefined && command !== 'help' && !(command in SYNOPSIS)) {
    throw new SluiceError('invalid_argument', `Unknown command '${command}'\n${USAGE}`);
  }
  if (line.help || command === undefined || command === 'help') {
    const known = command !== undefined && command in SYNOPSIS ? (command as CommandName) : undefined;
    process.stdout.write(`${known ? commandHelp(known, SYNOPSIS[known], FLAGS) : USAGE}\n`);
    return;
  }
  switch (command as CommandName) {
    case 'serve':
    case 'dev':
      await runServer(command as 'serve' | 'dev', values);
      return;
    case 'chat': {
      const { chat } = await import('./chat.ts');
      await chat({ url: str(values.url) ?? 'http://127.0.0.1:5055', action: str(values.action) ?? 'action_assistant' });
      return;
    }
  }
}

main(process.argv.slice(2)).catch((error: unknown) => {
  process.stderr.write(`sluice: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
