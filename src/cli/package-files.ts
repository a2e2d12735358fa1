/**
 * Files the CLI finds beside its own code. The layout is the same from the sources (`src/cli/`,
 * run as `.ts`) and from the built package (`dist/src/cli/`, with the example assistant compiled to
 * `dist/examples/`): only the depth of the package root and the extension differ.
 * @module
 */

import { fileURLToPath } from 'node:url';

const fromSource = import.meta.url.endsWith('.ts');

/** The package root (where `package.json` and `web/` are), as a directory URL. */
export const PACKAGE_ROOT = new URL(fromSource ? '../../' : '../../../', import.meta.url);

/** The playground page (`web/`, shipped as plain files), as a directory path ending in a separator. */
export const WEB_ROOT = fileURLToPath(new URL('web/', PACKAGE_ROOT));

/**
 * The path of an example module `sluice dev` serves: `examples/<name>.ts` in the repository, the
 * compiled `dist/examples/<name>.js` in an installed package (Node does not strip types of `.ts`
 * files under `node_modules`).
 */
export function examplePath(name: 'index' | 'app'): string {
  return fileURLToPath(new URL(`../../examples/${name}.${fromSource ? 'ts' : 'js'}`, import.meta.url));
}
