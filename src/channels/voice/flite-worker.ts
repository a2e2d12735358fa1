/**
 * The worker thread of `FliteTts`: Flite synthesizes synchronously, so it runs here and the
 * server's event loop stays free. It gets the compiled module from its parent (compiled once) and
 * answers one job at a time.
 * @module
 */

import { parentPort, workerData } from 'node:worker_threads';
import { runFlite } from './flite-wasi.ts';
import type { FliteVoice, WasmModule } from './flite-wasi.ts';

interface Job {
  id: number;
  text: string;
  voice: FliteVoice;
  durationStretch: number;
}

const module = (workerData as { module: WasmModule }).module;

parentPort?.on('message', (job: Job) => {
  try {
    const audio = runFlite(module, job.text, { voice: job.voice, durationStretch: job.durationStretch });
    // A copy that owns its buffer, so it can be transferred instead of cloned.
    const pcm = audio.pcm.slice();
    parentPort?.postMessage({ id: job.id, pcm, sampleRate: audio.sampleRate, channels: audio.channels }, [pcm.buffer]);
  } catch (error) {
    const cause = error instanceof Error ? ((error.cause as Error | undefined)?.message ?? error.message) : String(error);
    parentPort?.postMessage({ id: job.id, error: cause });
  }
});
