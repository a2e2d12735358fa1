#!/usr/bin/env node
/**
 * The `sluice` command.
 *
 *   sluice serve --actions <module> [--port 5055] [--grpc-port 5056] [--host 127.0.0.1]
 *   sluice dev                       the example assistant on embedded defaults (npm start)
 *   sluice chat [--url http://127.0.0.1:5055] [--action action_assistant]
 * @module
 */

import { parseArgs } from 'node:util';
import { SluiceError } from '../protocol/errors.ts';
import { chat } from './chat.ts';
import { serve } from './serve.ts';

const USAGE = `Usage:
  sluice serve --actions <module> [--port 5055] [--grpc-port 5056] [--host 127.0.0.1]
  sluice dev   [--port 5055] [--grpc-port 5056] [--host 127.0.0.1]
  sluice chat  [--url http://127.0.0.1:5055] [--action action_assistant]`;

function port(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  // Number() reads '' and ' ' as 0, which would silently mean "any free port".
  const n = /^\d+$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isInteger(n) || n < 0 || n > 65_535) {
    throw new SluiceError('invalid_argument', `--${name} must be a port number 0–65535 (got '${value}')`);
  }
  return n;
}

async function main(argv: string[]): Promise<void> {
  // The command is the first positional, so `sluice --help` and flags before it work too.
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      actions: { type: 'string' },
      port: { type: 'string', short: 'p' },
      'grpc-port': { type: 'string' },
      host: { type: 'string' },
      url: { type: 'string' },
      action: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  const [command, ...extra] = positionals;
  if (extra.length > 0) throw new SluiceError('invalid_argument', `Unexpected argument '${extra[0]}'\n${USAGE}`);
  if (values.help || command === undefined || command === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const listen = {
    host: values.host ?? process.env.SLUICE_HOST ?? '127.0.0.1',
    port: port('port', values.port ?? process.env.PORT, 5055),
    grpcPort: port('grpc-port', values['grpc-port'] ?? process.env.SLUICE_GRPC_PORT, 5056),
  };
  switch (command) {
    case 'serve':
      if (values.actions === undefined) throw new SluiceError('invalid_argument', '--actions <module> is required');
      await serve({ ...listen, actions: values.actions });
      return;
    case 'dev':
      await serve({ ...listen, actions: new URL('../../examples/index.ts', import.meta.url).pathname, dev: true });
      return;
    case 'chat':
      await chat({ url: values.url ?? `http://127.0.0.1:${listen.port}`, action: values.action ?? 'action_assistant' });
      return;
    default:
      throw new SluiceError('invalid_argument', `Unknown command '${command}'\n${USAGE}`);
  }
}

main(process.argv.slice(2)).catch((error: unknown) => {
  process.stderr.write(`sluice: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
