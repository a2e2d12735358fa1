/**
 * Worker thread of the SSE throughput benchmarks (see `frameClient` in http-lib.ts): makes each
 * request it is sent, reads the whole response and counts its `\n\n`-terminated frames.
 */

import http from 'node:http';
import { parentPort } from 'node:worker_threads';
import type { FrameJob } from './http-lib.ts';

parentPort!.on('message', (job: FrameJob) => {
  const started = performance.now();
  let frames = 0;
  let lastWasLf = false;
  const req = http.request(job.url, {
    method: job.body === undefined ? 'GET' : 'POST',
    agent: false,
    headers: job.body === undefined ? {} : { 'content-type': 'application/json' },
  });
  req.on('response', (res) => {
    res.on('data', (chunk: Buffer) => {
      if (lastWasLf && chunk[0] === 10) frames++;
      for (let i = chunk.indexOf('\n\n'); i !== -1; i = chunk.indexOf('\n\n', i + 2)) frames++;
      lastWasLf = chunk[chunk.length - 1] === 10;
    });
    res.on('end', () => parentPort!.postMessage({ ms: performance.now() - started, frames }));
  });
  req.end(job.body);
});
