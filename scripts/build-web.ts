/**
 * Builds `web/client.js`, the browser copy of `sluice/client` the playground imports: one ES
 * module with `eventsource-parser` bundled in, so the page stays plain files with no build step for
 * its users. Runs in `npm run build` (so `npm ci` and `npm pack` produce it), before `npm start`,
 * and in the playground test. The file is written only when its content changes, and by rename, so
 * a server reading it never sees half a file.
 * @module
 */

import { readFile, rename, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const ROOT = new URL('../', import.meta.url);
/** Where the bundle goes. */
export const WEB_CLIENT = fileURLToPath(new URL('web/client.js', ROOT));

const BANNER = '// Generated from src/client by `npm run build:web` (esbuild): edit src/client, not this file.';

/** Bundles src/client for browsers into web/client.js; returns whether the file changed. */
export async function buildWebClient(): Promise<boolean> {
  const result = await build({
    entryPoints: [fileURLToPath(new URL('src/client/index.ts', ROOT))],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    write: false,
    sourcemap: false,
    legalComments: 'inline',
    banner: { js: BANNER },
    logLevel: 'silent',
  });
  const text = result.outputFiles[0]?.text;
  if (text === undefined) throw new Error('esbuild produced no output for src/client/index.ts');
  const current = await readFile(WEB_CLIENT, 'utf8').catch(() => null);
  if (current === text) return false;
  const temporary = `${WEB_CLIENT}.${process.pid}.tmp`;
  await writeFile(temporary, text);
  await rename(temporary, WEB_CLIENT);
  return true;
}

if (import.meta.main) {
  const changed = await buildWebClient();
  process.stdout.write(`web/client.js ${changed ? 'built' : 'up to date'}\n`);
}
