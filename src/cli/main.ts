#!/usr/bin/env node
/**
 * The `sluice` command.
 *
 *   sluice serve --actions <module> [--port 5055] [--grpc-port 5056] [--host 127.0.0.1]
 *   sluice dev                       the example assistant on embedded defaults (npm start)
 *   sluice chat [--url http://127.0.0.1:5055] [--action action_assistant]
 *
 * Flags are declared in `flags/` (one table per layer); each has an environment variable.
 * @module
 */

import { SluiceError } from '../protocol/errors.ts';
import { chat } from './chat.ts';
import { coreFlags } from './flags/core.ts';
import { limitsFlags, limitsFromFlags } from './flags/limits.ts';
import { commandHelp, parseCommandLine } from './flags/parse.ts';
import type { CommandName, FlagSpec, FlagValues } from './flags/spec.ts';
import { serve } from './serve.ts';

/** Every flag of every command. */
const FLAGS: readonly FlagSpec[] = [...coreFlags, ...limitsFlags];

const SYNOPSIS: Record<CommandName, string> = {
  serve: 'sluice serve --actions <module> [options]',
  dev: 'sluice dev [options]   (the example assistant and the playground)',
  chat: 'sluice chat [options]  (a terminal client of a running server)',
};

const USAGE = `Usage:
  ${SYNOPSIS.serve}
  ${SYNOPSIS.dev}
  ${SYNOPSIS.chat}
Run 'sluice <command> --help' for the options of a command.`;

function port(name: string, value: FlagValues[string], fallback: number): number {
  if (value === undefined) return fallback;
  const text = String(value);
  // Number() reads '' and ' ' as 0, which would silently mean "any free port".
  const n = /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isInteger(n) || n < 0 || n > 65_535) {
    throw new SluiceError('invalid_argument', `--${name} must be a port number 0–65535 (got '${text}')`);
  }
  return n;
}

function str(value: FlagValues[string]): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

async function main(argv: string[]): Promise<void> {
  const line = parseCommandLine(argv, FLAGS);
  const { command, values } = line;
  if (command !== undefined && command !== 'help' && !(command in SYNOPSIS)) {
    throw new SluiceError('invalid_argument', `Unknown command '${command}'\n${USAGE}`);
  }
  if (line.help || command === undefined || command === 'help') {
    const known = command !== undefined && command in SYNOPSIS ? (command as CommandName) : undefined;
    process.stdout.write(`${known ? commandHelp(known, SYNOPSIS[known], FLAGS) : USAGE}\n`);
    return;
  }
  const listen = {
    host: str(values.host) ?? '127.0.0.1',
    port: port('port', values.port, 5055),
    grpcPort: port('grpc-port', values['grpc-port'], 5056),
  };
  switch (command as CommandName) {
    case 'serve': {
      const actions = str(values.actions);
      if (actions === undefined) throw new SluiceError('invalid_argument', '--actions <module> is required');
      await serve({ ...listen, actions, limits: limitsFromFlags(values) });
      return;
    }
    case 'dev':
      await serve({ ...listen, actions: new URL('../../examples/index.ts', import.meta.url).pathname, dev: true, limits: limitsFromFlags(values) });
      return;
    case 'chat':
      await chat({ url: str(values.url) ?? 'http://127.0.0.1:5055', action: str(values.action) ?? 'action_assistant' });
      return;
  }
}

main(process.argv.slice(2)).catch((error: unknown) => {
  process.stderr.write(`sluice: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
