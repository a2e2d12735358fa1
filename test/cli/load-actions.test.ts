/**
 * `loadActions`: what `sluice serve --actions <module>` loads, and the errors that tell the user
 * what is wrong with the module they named.
 */

import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadActions } from '../../src/cli/load-actions.ts';
import { SluiceError } from '../../src/protocol/errors.ts';
import { ActionExecutor } from '../../src/runtime/executor.ts';
import { silentLogger } from '../../src/runtime/logger.ts';

const here = dirname(fileURLToPath(import.meta.url));
const fixtures = join(here, 'fixtures');
const repo = join(here, '..', '..');

/** The SluiceError `promise` rejects with. */
async function failure(promise: Promise<unknown>): Promise<SluiceError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(SluiceError.isInstance(error), `expected a SluiceError, got ${String(error)}`);
    return error;
  }
  assert.fail('expected loadActions to fail');
}

describe('loadActions', () => {
  test('takes every exported action, exported alone or in a list, each once, and nothing else', async () => {
    const actions = await loadActions(join(fixtures, 'actions.ts'));
    assert.deepEqual(actions.map((a) => a.name).sort(), ['action_count', 'action_hello', 'action_listed']);
    // What it returns is what an executor takes: names are unique, so registering cannot fail.
    const executor = new ActionExecutor({ actions, logger: silentLogger });
    assert.deepEqual(await executor.run({ next_action: 'action_count', tracker: { sender_id: 'u' } }), {
      events: [{ event: 'slot', timestamp: null, name: 'counted', value: 2 }],
      responses: [
        { text: 'one ', buttons: [], elements: [], custom: {}, template: null, response: null, image: null, attachment: null },
        { text: 'two', buttons: [], elements: [], custom: {}, template: null, response: null, image: null, attachment: null },
      ],
    });
  });

  test('resolves a relative path against the given cwd', async () => {
    const actions = await loadActions('fixtures/actions.ts', here);
    assert.equal(actions.length, 3);
    const fromRepo = await loadActions(relative(repo, join(fixtures, 'actions.ts')), repo);
    assert.deepEqual(fromRepo, actions, 'the same module, so the same action objects');
  });

  test('a module that exports no action: invalid_argument naming the module and what to export', async () => {
    const error = await failure(loadActions('fixtures/no-actions.ts', here));
    assert.equal(error.code, 'invalid_argument');
    assert.match(error.message, /'fixtures\/no-actions\.ts' exports no action/);
    assert.match(error.message, /defineAction\(\)/);
  });

  test('a module with a syntax error: invalid_argument naming the module and the parse error', async () => {
    const error = await failure(loadActions('fixtures/syntax-error.js', here));
    assert.equal(error.code, 'invalid_argument');
    assert.match(error.message, /Cannot load the actions module 'fixtures\/syntax-error\.js': .*Unexpected end of input/);
    assert.ok(error.cause instanceof SyntaxError, 'the parse error is kept as the cause');
  });

  describe('TypeScript a loader cannot run', () => {
    let dir: string;
    before(async () => {
      // Written at run time: a committed .ts with a syntax error would break the type-check.
      dir = await mkdtemp(join(tmpdir(), 'sluice-load-actions-'));
      await writeFile(join(dir, 'bad-syntax.ts'), 'export const broken: number = {;\n');
      await writeFile(join(dir, 'enum.ts'), 'export enum Mode { Fast }\n');
      await writeFile(join(dir, 'helper.ts'), 'export function connect(): never {\n  throw new Error(\'no database at localhost\');\n}\n');
      await writeFile(join(dir, 'throws.ts'), "import { connect } from './helper.ts';\n\nexport const db = connect();\n");
    });
    after(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    test('a TypeScript syntax error names the module and the token', async () => {
      const error = await failure(loadActions('bad-syntax.ts', dir));
      assert.equal(error.code, 'invalid_argument');
      assert.match(error.message, /Cannot load the actions module 'bad-syntax\.ts': .*Unexpected token `;`/);
    });

    test('a module that throws on import: the message and the file and line it was thrown at, in one line; the stack on cause', async () => {
      const error = await failure(loadActions('throws.ts', dir));
      assert.equal(error.code, 'invalid_argument');
      assert.equal(error.message, `Cannot load the actions module 'throws.ts': no database at localhost (${join(dir, 'helper.ts')}:2:9)`);
      assert.ok(error.cause instanceof Error && error.cause.stack?.includes('throws.ts:3'), 'the whole stack is kept on cause');
    });

    test('a TypeScript syntax error names the file and line', async () => {
      const error = await failure(loadActions('bad-syntax.ts', dir));
      assert.ok(error.message.endsWith(`(${join(dir, 'bad-syntax.ts')}:1)`), error.message);
      assert.doesNotMatch(error.message, /\n/);
    });

    test('syntax that type stripping cannot erase (an enum) says so', async () => {
      const error = await failure(loadActions('enum.ts', dir));
      assert.equal(error.code, 'invalid_argument');
      assert.match(error.message, /'enum\.ts': TypeScript enum is not supported in strip-only mode/);
    });
  });

  test('a missing path: not_found naming the specifier and the absolute path looked for', async () => {
    const error = await failure(loadActions('fixtures/missing.ts', here));
    assert.equal(error.code, 'not_found');
    assert.equal(error.message, `Cannot find the actions module 'fixtures/missing.ts' (looked for ${join(fixtures, 'missing.ts')})`);
  });

  test('a missing ./relative path is not found, never resolved against the CLI\'s own folder', async () => {
    // src/cli/serve.ts exists beside the loader: it must not be what './serve.ts' finds from elsewhere.
    const error = await failure(loadActions('./serve.ts', fixtures));
    assert.equal(error.code, 'not_found');
    assert.equal(error.message, `Cannot find the actions module './serve.ts' (looked for ${join(fixtures, 'serve.ts')})`);
  });

  test('a directory with no index module: not_found saying so', async () => {
    const error = await failure(loadActions('./fixtures', here));
    assert.equal(error.code, 'not_found');
    assert.match(error.message, /Cannot find the actions module '\.\/fixtures' \(looked for .*fixtures, which is a directory with no index\.ts, index\.js, index\.mjs\)/);
  });

  test("a folder is loaded from its index module, named bare as Rasa's --actions actions", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sluice-actions-dir-'));
    try {
      await mkdir(join(dir, 'actions'));
      await writeFile(
        join(dir, 'actions', 'index.ts'),
        `import { defineAction } from ${JSON.stringify(new URL('../../src/index.ts', import.meta.url).href)};\nexport const hello = defineAction({ name: 'action_folder_hello', async *stream() { yield 'hi'; return []; } });\n`,
      );
      for (const specifier of ['actions', './actions']) {
        const actions = await loadActions(specifier, dir);
        assert.deepEqual(actions.map((a) => a.name), ['action_folder_hello'], specifier);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('a package that is not installed: not_found', async () => {
    const error = await failure(loadActions('sluice-no-such-actions-package', here));
    assert.equal(error.code, 'not_found');
    assert.match(error.message, /Cannot find the actions module 'sluice-no-such-actions-package'/);
  });
});
