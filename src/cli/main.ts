#!/usr/bin/env node
/**
 * The `sluice` command.
 *
 *   sluice serve --actions <module> [--port 5055] [--grpc-port 5056] [--host 127.0.0.1]
 *   sluice dev                       the example assistant on embedded defaults (npm start)
 *   sluice chat [--url http://127.0.0.1:5055] [--action action_chat]
 * @module
 */

import { parseArgs } from 'node:util';
import { SluiceError } from '../protocol/errors.ts';
import { chat } from './chat.ts';
import { serve } from './serve.ts';

const USAGE = `Usage:
  sluice serve --actions <module> [--port 5055] [--grpc-port 5056] [--host 127.0.0.1]
  sluice dev   [--port 5055] [--grpc-port 5056] [--host 127.0.0.1]
  sluice chat  [--url http://127.0.0.1:5055] [--action action_chat]`;

function port(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65_535) {
    throw new SluiceError('invalid_argument', `--${name} must be a port number 0–65535 (got '${value}')`);
  }
  return n;
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  const { values } = parseArgs({
    args: rest,
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
      await serve({ ...listen, actions: new URL('../../examples/actions.ts', import.meta.url).pathname, dev: true });
      return;
    case 'chat':
      await chat({ url: values.url ?? `http://127.0.0.1:${listen.port}`, action: values.action ?? 'action_chat' });
      return;
    default:
      throw new SluiceError('invalid_argument', `Unknown command '${command}'\n${USAGE}`);
  }
}

main(process.argv.slice(2)).catch((error: unknown) => {
  process.stderr.write(`sluice: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
