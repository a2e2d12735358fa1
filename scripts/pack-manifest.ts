/**
 * `npm pack` / `npm publish` hooks: the packed package.json leaves out the `prepare` script.
 * `prepare` builds dist/ in a git checkout (npm runs it when installing from git), but a package
 * that already holds dist/ has nothing to build, and npm would list the script as an install
 * script every user has to approve. `strip` (prepack) keeps the original aside; `restore`
 * (postpack) puts it back.
 * @module
 */

import { copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';

const MANIFEST = new URL('../package.json', import.meta.url);
const KEPT = new URL('../.scratch/package.json.prepack', import.meta.url);

const mode = process.argv[2];
if (mode === 'strip') {
  mkdirSync(new URL('../.scratch/', import.meta.url), { recursive: true });
  copyFileSync(MANIFEST, KEPT);
  const manifest = JSON.parse(readFileSync(MANIFEST, 'utf8')) as { scripts?: Record<string, string> };
  delete manifest.scripts?.prepare;
  writeFileSync(MANIFEST, `${JSON.stringify(manifest, null, 2)}\n`);
} else if (mode === 'restore') {
  if (existsSync(KEPT)) renameSync(KEPT, MANIFEST);
} else {
  process.stderr.write('usage: node scripts/pack-manifest.ts strip|restore\n');
  process.exitCode = 2;
}
