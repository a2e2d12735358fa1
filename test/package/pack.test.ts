/**
 * The published package as a user gets it: `npm pack` of this repository, installed from the
 * tarball into a scratch project outside the repository, then used the way the README says —
 * every subpath export imported, a user file type-checked against the shipped `.d.ts`,
 * `npx sluice serve --actions ./actions.ts` with a TypeScript action called over HTTP,
 * `npx sluice dev`, and the one-line message on a Node that cannot strip types.
 */

import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** The repository's Node 24 (the `node` dev dependency): first on PATH, so `npx` and the bin's shebang use it. */
const BIN = join(repo, 'node_modules', '.bin');
const NODE = join(BIN, 'node');
const TSC = join(BIN, 'tsc');
const STEP_MS = 180_000;

/**
 * The environment of every child: npm's own variables (set when this runs under `npm test`) would
 * make the child npm treat the repository as its project, and a model key would leave the machine.
 */
function childEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (/^npm_/i.test(key) || key === 'OPENAI_API_KEY' || key === 'OPENAI_BASE_URL' || key === 'NODE_OPTIONS') continue;
    env[key] = value;
  }
  env.PATH = `${BIN}${delimiter}${process.env.PATH ?? ''}`;
  env.SLUICE_MODEL = 'scripted';
  env.NO_COLOR = '1';
  return env;
}

interface Finished {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Resolves once `child` has exited and its output is read: after the exit, its pipes get 2 s to
 * close (a stray grandchild holding them must not hang the test), then they are dropped.
 */
async function ended(child: ChildProcess): Promise<number | null> {
  const closed = once(child, 'close');
  if (child.exitCode === null && child.signalCode === null) await once(child, 'exit');
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([closed, new Promise((resolve) => (timer = setTimeout(resolve, 2_000)))]);
  clearTimeout(timer);
  child.stdout?.destroy();
  child.stderr?.destroy();
  return child.exitCode;
}

/** Runs a command to its end (killed after `timeoutMs`). */
async function run(command: string, args: string[], cwd: string, timeoutMs = STEP_MS): Promise<Finished> {
  const child = spawn(command, args, { cwd, env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const code = await ended(child);
  clearTimeout(timer);
  return { code, stdout, stderr };
}

function ok(result: Finished, what: string): Finished {
  assert.equal(result.code, 0, `${what} failed (exit ${result.code}):\n${result.stdout}\n${result.stderr}`);
  return result;
}

/** A running server started through `npx sluice …`: its HTTP URL once it printed it. */
async function startCli(args: string[], cwd: string): Promise<{ child: ChildProcess; url: string; output: () => string }> {
  // Its own process group: npx runs the bin under a shell, so a signal must reach the whole group
  // (as Ctrl-C in a terminal does), or the server outlives npx holding our pipes open.
  const child = spawn('npx', ['--no-install', 'sluice', ...args], { cwd, env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let text = '';
  child.stdout?.setEncoding('utf8').on('data', (s: string) => (text += s));
  child.stderr?.setEncoding('utf8').on('data', (s: string) => (text += s));
  const deadline = Date.now() + 30_000;
  // The plain banner (`HTTP   http://127.0.0.1:5055 …`) or a JSON log line with the URL in a field.
  const URL_IN_LINE = /(http:\/\/(?:\[[0-9a-f:]+\]|[\w.-]+):(\d+))/;
  for (;;) {
    const found = text.split('\n').map((line) => URL_IN_LINE.exec(line)).find((m) => m !== null && m[2] !== '0');
    if (found) return { child, url: found[1] as string, output: () => text };
    if (child.exitCode !== null || child.signalCode !== null) assert.fail(`sluice ${args[0]} exited before listening:\n${text}`);
    if (Date.now() > deadline) {
      await stopCli(child);
      assert.fail(`sluice ${args[0]} printed no URL within 30 s:\n${text}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** SIGTERM to the server's process group; SIGKILL if it is not gone within 10 s. */
async function stopCli(child: ChildProcess): Promise<void> {
  const group = -(child.pid as number);
  const signal = (name: NodeJS.Signals): void => {
    try {
      process.kill(group, name);
    } catch {
      // already gone
    }
  };
  const done = ended(child);
  signal('SIGTERM');
  const timer = setTimeout(() => signal('SIGKILL'), 10_000);
  await done;
  clearTimeout(timer);
  signal('SIGKILL'); // anything of the group still there (nothing, after a clean exit)
}

const ACTIONS_TS = `import { defineAction, slotSet, status } from 'sluice';

// Type-only syntax Node strips: an interface, annotations, a generic and a satisfies.
interface Greeting {
  name: string;
  polite: boolean;
}

function greet<T extends Greeting>(g: T): string {
  return (g.polite ? 'Good day, ' : 'Hi, ') + g.name;
}

export const hello = defineAction({
  name: 'action_hello',
  async *stream({ tracker }) {
    yield status('Thinking…');
    const name = String(tracker.getSlot('name') ?? 'you');
    yield greet({ name, polite: true } satisfies Greeting);
    return [slotSet('greeted', true)];
  },
});
`;

/** A user file checked against the shipped declarations; the expect-errors prove they are not \`any\`. */
const USER_TS = `import { ActionExecutor, defineAction, slotSet, type SluiceEvent } from 'sluice';
import { ApplicationBuilder, streamingAction } from 'sluice/app';
import type { VoiceSession } from 'sluice/channels/voice';
import { PostgresPersister } from 'sluice/stores';
import { segmentText } from 'sluice/text';
import { createHttpServer } from 'sluice/transports/http';

const action = defineAction({
  name: 'action_typed',
  async *stream({ tracker, signal }) {
    const city: unknown = tracker.getSlot('city');
    if (signal.aborted) return [];
    yield \`It is sunny in \${String(city)}\`;
    return [slotSet('city', city)];
  },
});

const executor = new ActionExecutor({ actions: [action] });
const run = executor.start({ next_action: 'action_typed', tracker: { sender_id: 'u' } });
export async function collect(): Promise<SluiceEvent['type'][]> {
  const types: SluiceEvent['type'][] = [];
  for await (const event of run.subscribe()) types.push(event.type);
  return types;
}
export const server = createHttpServer({ executor });
export const sentences: readonly unknown[] = segmentText('One. Two.');
export const builder = new ApplicationBuilder().withActions({
  echo: streamingAction({ reads: [], writes: ['n'] }, async function* (state) {
    yield [{ n: 1 }, state.update({ n: 1 })];
  }),
});

// Types from dependencies' declarations reach the user too (ws, pg), instead of silently any.
export function socketState(session: VoiceSession): number {
  // @ts-expect-error a ws socket's readyState is a number
  const state: string = session.socket.readyState;
  return Number(state);
}
// @ts-expect-error a pg pool, not a connection string
new PostgresPersister({ pool: 'postgres://localhost' });

// @ts-expect-error an action needs a name
defineAction({ async *stream() {} });
// @ts-expect-error a run id is a string
executor.cancel(42);
`;

// The checks after the install are independent: run them side by side.
describe('the npm package', { timeout: 300_000, concurrency: true }, () => {
  let tmp: string;
  let app: string;
  let exportsMap: Record<string, { types: string; default: string }>;
  let version: string;

  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'sluice-pack-'));
    app = join(tmp, 'app');
    const packed = ok(await run('npm', ['pack', '--json', '--pack-destination', tmp], repo), 'npm pack');
    // The build's own output (prepare) comes first on stdout; the JSON report is last.
    const [info] = JSON.parse(packed.stdout.slice(packed.stdout.search(/^\[\s*\{/m))) as { filename: string }[];
    assert.ok(info !== undefined);
    await run('mkdir', ['-p', app], tmp);
    await writeFile(join(app, 'package.json'), JSON.stringify({ name: 'scratch', private: true, type: 'module' }));
    const installed = ok(
      await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', join(tmp, info.filename)], app),
      'npm install of the tarball',
    );
    assert.doesNotMatch(installed.stderr, /EBADENGINE/, 'Node 24 satisfies engines');
    assert.doesNotMatch(installed.stderr, /install-scripts/, 'the package asks the user to approve no install script');
    const manifest = JSON.parse(await readFile(join(app, 'node_modules', 'sluice', 'package.json'), 'utf8')) as {
      version: string;
      exports: typeof exportsMap;
    };
    exportsMap = manifest.exports;
    version = manifest.version;
    await writeFile(join(app, 'actions.ts'), ACTIONS_TS);
  });

  after(async () => {
    if (tmp !== undefined) await rm(tmp, { recursive: true, force: true });
  });

  test('ships compiled dist/ with declarations and source maps, and an executable bin with a shebang', async () => {
    const pkg = join(app, 'node_modules', 'sluice');
    for (const [subpath, target] of Object.entries(exportsMap)) {
      for (const file of [target.default, target.types, `${target.default}.map`]) {
        assert.ok((await stat(join(pkg, file)).catch(() => null))?.isFile(), `${subpath}: ${file} is in the package`);
      }
    }
    const bin = join(pkg, 'dist', 'src', 'cli', 'main.js');
    assert.ok(((await stat(bin)).mode & 0o111) !== 0, 'the bin is executable');
    assert.match(await readFile(bin, 'utf8'), /^#!\/usr\/bin\/env node\n/);
    assert.ok((await stat(join(app, 'node_modules', '.bin', 'sluice')).catch(() => null)) !== null, 'npm linked the sluice command');
  });

  test('every subpath export imports from the installed package', async () => {
    assert.ok(Object.keys(exportsMap).length >= 12);
    const script = `
      const subpaths = ${JSON.stringify(Object.keys(exportsMap))};
      const out = {};
      for (const subpath of subpaths) {
        const m = await import(subpath === '.' ? 'sluice' : 'sluice/' + subpath.slice(2));
        out[subpath] = Object.keys(m).length;
      }
      console.log(JSON.stringify(out));`;
    await writeFile(join(app, 'imports.mjs'), script);
    const { stdout } = ok(await run(NODE, ['imports.mjs'], app), 'importing every export');
    const counts = JSON.parse(stdout) as Record<string, number>;
    for (const subpath of Object.keys(exportsMap)) assert.ok((counts[subpath] ?? 0) > 0, `${subpath} exports something`);
  });

  test('a user file type-checks against the shipped .d.ts (and their types bite)', async () => {
    await writeFile(join(app, 'user.ts'), USER_TS);
    await writeFile(
      join(app, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'es2024',
          module: 'nodenext',
          moduleResolution: 'nodenext',
          strict: true,
          noEmit: true,
          // The user's own @types/node; a user project has it, the scratch one borrows the repo's.
          typeRoots: [join(repo, 'node_modules', '@types')],
          types: ['node'],
          skipLibCheck: true,
        },
        files: ['user.ts', 'actions.ts'],
      }),
    );
    ok(await run(TSC, ['-p', 'tsconfig.json'], app), 'tsc on the user files');
  });

  test('npx sluice serve --actions ./actions.ts answers a TypeScript action over HTTP', async () => {
    const help = ok(await run('npx', ['--no-install', 'sluice', '--help'], app, 30_000), 'sluice --help');
    assert.match(help.stdout, /sluice serve --actions <module>/);
    if (/--version/.test(help.stdout)) {
      const printed = ok(await run('npx', ['--no-install', 'sluice', '--version'], app, 30_000), 'sluice --version');
      assert.match(printed.stdout, new RegExp(version.replaceAll('.', '\\.')));
    }
    const { child, url, output } = await startCli(['serve', '--actions', './actions.ts', '--port', '0', '--grpc-port', '0'], app);
    try {
      const response = await fetch(`${url}/webhook`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ next_action: 'action_hello', tracker: { sender_id: 'pack', slots: { name: 'Ada' } }, domain: {} }),
      });
      assert.equal(response.status, 200, output());
      const body = (await response.json()) as { events: { event: string; name?: string; value?: unknown }[]; responses: { text: string }[] };
      assert.deepEqual(
        body.responses.map((r) => r.text),
        ['Good day, Ada'],
      );
      assert.deepEqual(
        body.events.map((e) => [e.event, e.name, e.value]),
        [['slot', 'greeted', true]],
      );
    } finally {
      await stopCli(child);
    }
  });

  test('npx sluice dev serves the example assistant and the playground from the installed package', async () => {
    const { child, url, output } = await startCli(['dev', '--port', '0', '--grpc-port', '0'], app);
    try {
      const page = await fetch(`${url}/`);
      assert.equal(page.status, 200, output());
      assert.match(await page.text(), /<html/i);
      const info = (await (await fetch(`${url}/info`)).json()) as { actions: string[] };
      assert.ok(info.actions.includes('action_weather') && info.actions.includes('action_assistant'), JSON.stringify(info));
      const answer = await fetch(`${url}/webhook`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ next_action: 'action_greet', tracker: { sender_id: 'pack' }, domain: {} }),
      });
      assert.equal(answer.status, 200);
      assert.ok(((await answer.json()) as { responses: unknown[] }).responses.length > 0);
      const apps = await fetch(`${url}/apps/pack-test/state`);
      assert.notEqual(apps.status, 404, 'the example application is mounted');
    } finally {
      await stopCli(child);
    }
  });

  test('a Node without type stripping gets one line naming the Node it needs (or .js), not "Unknown file extension"', async () => {
    const main = join(app, 'node_modules', 'sluice', 'dist', 'src', 'cli', 'main.js');
    const result = await run(NODE, ['--no-experimental-strip-types', main, 'serve', '--actions', './actions.ts', '--port', '0', '--grpc-port', '0'], app, 30_000);
    assert.equal(result.code, 1, result.stdout + result.stderr);
    const lines = result.stderr.trim().split('\n');
    assert.equal(lines.length, 1, result.stderr);
    assert.match(lines[0] as string, /^sluice: Cannot load the actions module '\.\/actions\.ts': Node v\d+\.\d+\.\d+ does not run TypeScript; use Node 22\.18\+ or 24\+ .*, or a compiled \.js module$/);
    assert.doesNotMatch(result.stderr, /Unknown file extension/);
  });
});
