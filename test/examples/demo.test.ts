/**
 * `npm run demo` (examples/demo.ts): colours only on a terminal, none when piped or with NO_COLOR.
 * The terminal is a real pseudo-terminal from util-linux `script`.
 */

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, test } from 'node:test';
import { promisify } from 'node:util';

const run = promisify(execFile);
const SCRIPT = '/usr/bin/script';
const COLOUR = /\x1b\[[0-9;]*m/;
const env = { ...process.env, NO_COLOR: '' };

describe('examples/demo.ts', { timeout: 60_000 }, () => {
  test('piped: the whole demo, without escape codes', async () => {
    const { stdout } = await run(process.execPath, ['examples/demo.ts'], { env });
    for (const name of ['action_greet', 'action_weather', 'action_story', 'action_card']) assert.ok(stdout.includes(`> ${name}\n`), stdout);
    assert.match(stdout, /Once upon a time/);
    assert.doesNotMatch(stdout, /\x1b/);
  });

  test('on a terminal: colours, unless NO_COLOR is set', { skip: existsSync(SCRIPT) ? false : 'no util-linux script' }, async () => {
    const command = `${JSON.stringify(process.execPath)} examples/demo.ts`;
    const tty = await run(SCRIPT, ['-qec', command, '/dev/null'], { env });
    assert.match(tty.stdout, COLOUR);
    assert.match(tty.stdout, /\x1b\[1m> action_greet\x1b\[0m/);
    const plain = await run(SCRIPT, ['-qec', command, '/dev/null'], { env: { ...env, NO_COLOR: '1' } });
    assert.doesNotMatch(plain.stdout, COLOUR);
    assert.match(plain.stdout, /> action_greet/);
  });
});
