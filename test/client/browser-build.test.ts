/**
 * The browser build of `sluice/client` (web/client.js, which the playground imports): one
 * self-contained ES module — no Node built-ins, no bare imports left for a browser to fail on —
 * that works when loaded as it is.
 */

import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { pathToFileURL } from 'node:url';
import { test } from 'node:test';
import { WEB_CLIENT, buildWebClient } from '../../scripts/build-web.ts';
import { call, startServer } from '../transports/http/fixtures.ts';

test('web/client.js is self-contained and streams a run', async () => {
  await buildWebClient();
  const source = await readFile(WEB_CLIENT, 'utf8');
  assert.doesNotMatch(source, /\bfrom\s*["'](?!\.)/, 'no bare or node: imports');
  assert.doesNotMatch(source, /\brequire\(|\bimport\(["']node:/);
  assert.match(source, /createParser/, 'eventsource-parser is bundled in');

  const module = (await import(pathToFileURL(WEB_CLIENT).href)) as typeof import('../../src/client/index.ts');
  const server = await startServer();
  try {
    const client = new module.SluiceClient({ baseUrl: server.url });
    const types: string[] = [];
    for await (const event of client.start(call('action_stream'))) types.push(event.type);
    assert.deepEqual(types, ['run-start', 'stream-start', 'chunk', 'chunk', 'chunk', 'stream-end', 'result', 'run-end']);
  } finally {
    await server.close();
  }
});
