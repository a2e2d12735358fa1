/**
 * What the resource and fuzz suites assert about a server under stress: it stays healthy, and its
 * memory stays bounded.
 */
import assert from 'node:assert/strict';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';

/**
 * `/health` answers 200 within a generous but real bound: the fastest of three tries (each must
 * answer), so that one scheduling hiccup of a loaded CI machine is not read as an unhealthy server.
 */
export async function assertHealthy(url: string, boundMs = 100): Promise<void> {
  let best = Infinity;
  for (let i = 0; i < 3; i++) {
    const started = performance.now();
    const res = await fetch(`${url}/health`);
    assert.equal(res.status, 200);
    await res.text();
    best = Math.min(best, performance.now() - started);
  }
  assert.ok(best < boundMs, `/health took ${best.toFixed(1)} ms at best (bound ${boundMs} ms)`);
}

v8.setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** Heap in use after a full collection. */
export function heapAfterGc(): number {
  gc();
  return process.memoryUsage().heapUsed;
}
