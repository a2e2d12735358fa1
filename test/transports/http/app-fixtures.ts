/** The streaming action of the application route tests (one instance and two). */
import { setTimeout as sleep } from 'node:timers/promises';
import { streamingAction } from '../../../src/app/index.ts';

/** Streams `inputs.words` words (default 3), one every `inputs.intervalMs` (default 1); a stop ends with '…'. */
export const tick = streamingAction({ reads: ['count', 'transcript'], writes: ['count', 'transcript'] }, async function* (state, inputs, ctx) {
  const words = Number(inputs.words ?? 3);
  const interval = Number(inputs.intervalMs ?? 1);
  let text = '';
  for (let i = 0; i < words; i++) {
    try {
      await sleep(interval, undefined, { signal: ctx.signal });
    } catch {
      break;
    }
    text += `w${i} `;
    yield [`w${i} `, null];
  }
  const final = ctx.signal.aborted ? `${text}…` : text;
  yield [{ text: final }, state.update({ count: (state.get('count') as number) + 1 }).append('transcript', final)];
});
