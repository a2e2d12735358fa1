/** The server's log setup: JSON lines, --log-file, level validation, and where an import error points. */

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { createServerLogger, errorLocation, syntaxErrorLocation } from '../../src/cli/logging.ts';

function sink(): Writable & { lines: string[] } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      lines.push(...String(chunk).split('\n').filter(Boolean));
      done();
    },
  });
  return Object.assign(stream, { lines });
}

describe('server logging', () => {
  test('JSON lines at the level asked for, also appended to --log-file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-log-'));
    try {
      const out = sink();
      const file = join(dir, 'logs', 'sluice.log');
      const logger = await createServerLogger({ level: 'warn', pretty: false, file, stdout: out });
      logger.info({ n: 1 }, 'dropped');
      logger.warn({ n: 2 }, 'kept');
      const lines = readFileSync(file, 'utf8').trim().split('\n').map((line) => JSON.parse(line));
      assert.deepEqual(lines.map((l) => [l.msg, l.n, l.name]), [['kept', 2, 'sluice']]);
      assert.deepEqual(out.lines.map((line) => JSON.parse(line).msg), ['kept']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('an unknown level is an error naming the flag', async () => {
    await assert.rejects(createServerLogger({ level: 'loud', pretty: false, stdout: sink() }), /--log-level must be one of fatal, error, warn, info, debug, trace, silent \(got 'loud'\)/);
  });

  test('errorLocation: the file and line of a syntax error and of a throw', async () => {
    const fixture = join(process.cwd(), 'test/cli/fixtures/syntax-error.js');
    const syntax = await import(pathToFileURL(fixture).href).catch((error: unknown) => error);
    // An ESM syntax error's stack has no location of the file: node --check finds it.
    assert.equal(errorLocation(syntax), undefined);
    assert.deepEqual(syntaxErrorLocation(fixture), { file: fixture, line: 3 });
    const thrown = await import(pathToFileURL(join(process.cwd(), 'test/cli/fixtures/throws-on-import.ts')).href).catch((error: unknown) => error);
    assert.deepEqual(errorLocation(thrown), { file: join(process.cwd(), 'test/cli/fixtures/throws-on-import.ts'), line: 4, column: 7 });
    assert.equal(errorLocation('not an error'), undefined);
  });
});
