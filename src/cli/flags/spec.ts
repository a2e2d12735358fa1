/**
 * The shape of a `sluice` command-line flag. Every layer that can be configured from the command
 * line declares its flags as a `FlagSpec[]` in a file of this folder; `main.ts` joins the tables,
 * parses, fills absent flags from their environment variables and prints `--help` from them.
 * @module
 */

/** A `sluice` command. */
export type CommandName = 'serve' | 'dev' | 'chat';

/** One command-line flag, with its environment variable and help text. */
export interface FlagSpec {
  /** Long name without dashes, e.g. `api-key`. */
  name: string;
  /** One-letter alias, e.g. `p`. */
  short?: string;
  type: 'string' | 'boolean';
  /** May be given several times; the value is then a `string[]` (an env value is split on commas). */
  multiple?: boolean;
  /** Environment variable read when the flag is absent (booleans: `1`/`true`/`yes` or `0`/`false`/`no`). */
  env?: string;
  /** Placeholder for the value in help, e.g. `<url>`. */
  value?: string;
  /** One line of help. */
  help: string;
  /** The default, as shown in help (the code that reads the value applies it). */
  default?: string;
  /** Commands that accept the flag; any other command rejects it, naming it. */
  commands: readonly CommandName[];
}

/** Parsed flag values by long name, environment fallbacks applied. */
export type FlagValues = Record<string, string | boolean | string[] | undefined>;
