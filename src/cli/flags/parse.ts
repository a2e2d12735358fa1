/**
 * Parses a `sluice` command line against the flag tables: the command, the flags it accepts, and
 * environment variables for flags that were not given.
 * @module
 */

import { parseArgs } from 'node:util';
import { SluiceError } from '../../protocol/errors.ts';
import type { CommandName, FlagSpec, FlagValues } from './spec.ts';

/** A parsed command line. */
export interface CommandLine {
  /** The command, or undefined when none was given. */
  command: string | undefined;
  /** `--help` / `-h` was given. */
  help: boolean;
  /** `--version` was given. */
  version: boolean;
  /** Flag values by long name, with environment fallbacks. */
  values: FlagValues;
}

const TRUE = new Set(['1', 'true', 'yes', 'on']);
const FALSE = new Set(['0', 'false', 'no', 'off', '']);

function fromEnv(spec: FlagSpec, raw: string): string | boolean | string[] {
  if (spec.type === 'boolean') {
    const v = raw.trim().toLowerCase();
    if (TRUE.has(v)) return true;
    if (FALSE.has(v)) return false;
    throw new SluiceError('invalid_argument', `${spec.env} must be true or false (got '${raw}')`);
  }
  if (spec.multiple === true) return raw.split(',').map((s) => s.trim()).filter((s) => s !== '');
  return raw;
}

/**
 * Parses `argv` (without `node` and the script). The command is the first positional, so flags may
 * come before it. Throws `invalid_argument` naming an unknown flag, a flag the command does not
 * take, an extra argument, or an invalid environment value.
 */
export function parseCommandLine(
  argv: string[],
  specs: readonly FlagSpec[],
  env: Record<string, string | undefined> = process.env,
): CommandLine {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }> = {
    help: { type: 'boolean', short: 'h' },
    version: { type: 'boolean', short: 'V' },
  };
  for (const spec of specs) {
    options[spec.name] = { type: spec.type, ...(spec.short ? { short: spec.short } : {}), ...(spec.multiple ? { multiple: true } : {}) };
  }
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, strict: true, options });
  } catch (error) {
    throw new SluiceError('invalid_argument', (error as Error).message, { cause: error });
  }
  const [command, ...extra] = parsed.positionals;
  if (extra.length > 0) throw new SluiceError('invalid_argument', `Unexpected argument '${extra[0]}'`);
  const given = parsed.values as FlagValues;
  const values: FlagValues = {};
  for (const spec of specs) {
    const value = given[spec.name];
    if (value !== undefined) {
      if (command !== undefined && !spec.commands.includes(command as CommandName)) {
        throw new SluiceError('invalid_argument', `'sluice ${command}' does not take --${spec.name}`);
      }
      values[spec.name] = value;
      continue;
    }
    const raw = spec.env === undefined ? undefined : env[spec.env];
    if (raw !== undefined && (command === undefined || spec.commands.includes(command as CommandName))) {
      values[spec.name] = fromEnv(spec, raw);
    }
  }
  return { command, help: given.help === true, version: given.version === true, values };
}

/** Help text for one command: its flags, each with its environment variable and default. */
export function commandHelp(command: CommandName, synopsis: string, specs: readonly FlagSpec[]): string {
  const rows = specs
    .filter((spec) => spec.commands.includes(command))
    .map((spec) => {
      const names = `${spec.short ? `-${spec.short}, ` : '    '}--${spec.name}${spec.type === 'string' ? ` ${spec.value ?? '<value>'}` : ''}`;
      const extra = [spec.env ? `env ${spec.env}` : '', spec.default ? `default ${spec.default}` : ''].filter(Boolean).join('; ');
      return { names, text: extra ? `${spec.help} (${extra})` : spec.help };
    });
  const width = Math.max(0, ...rows.map((row) => row.names.length)) + 2;
  return [`Usage: ${synopsis}`, '', 'Options:', ...rows.map((row) => `  ${row.names.padEnd(width)}${row.text}`), `  ${'-h, --help'.padEnd(width)}this help`, `  ${'-V, --version'.padEnd(width)}the version of sluice`].join('\n');
}
