/**
 * Pauses the events show (tool calls, status, whole messages) release the pending sentence at
 * once: in `SentenceStream.cut`, in the sentence reader behind every sentence consumer, and in
 * the output rails (check-first holds text until a window is complete).
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { SluiceEvent } from '../../../src/protocol/events.ts';
import { SentenceStream } from '../../../src/text/sentence-stream.ts';
import { sentencesOf } from '../../../src/channels/voice/sentences.ts';
import { withOutputRails } from '../../../src/channels/voice/rails.ts';
import { isTextPause } from '../../../src/channels/voice/text-pause.ts';
import { call, executorWith } from './helpers.ts';
import { AFTER_TOOL, BEFORE_TOOL, toolAction } from './sentence-actions.ts';

const RID = 'a'.repeat(32);

/** A source that yields `events`, then waits for `release()` before yielding `rest`. */
function gated(events: Partial<SluiceEvent>[], rest: Partial<SluiceEvent>[]) {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  let seq = 0;
  const stamp = (e: Partial<SluiceEvent>) => ({ runId: 'r1', seq: ++seq, ...e }) as SluiceEvent;
  async function* source(): AsyncGenerator<SluiceEvent> {
    for (const e of events) yield stamp(e);
    await gate;
    for (const e of rest) yield stamp(e);
  }
  return { source: source(), release };
}

const chunk = (text: string): Partial<SluiceEvent> => ({ type: 'chunk', responseId: RID, text }) as Partial<SluiceEvent>;
const END: Partial<SluiceEvent>[] = [{ type: 'stream-end', responseId: RID, reason: 'completed' } as Partial<SluiceEvent>, { type: 'run-end', reason: 'completed' } as Partial<SluiceEvent>];

describe('SentenceStream.cut', () => {
  it('releases the held sentence, keeps the stream open, and the rest joins back exactly', () => {
    const s = new SentenceStream();
    assert.deepEqual(s.push('Let me check the weather. '), []);
    assert.deepEqual(s.cut(), ['Let me check the weather. ']);
    assert.deepEqual(s.cut(), [], 'nothing pending: nothing released');
    assert.deepEqual([...s.push('It is sunny. It is warm.'), ...s.flush()], ['It is sunny. ', 'It is warm.']);
  });

  it('releases an unfinished sentence whole; minFirstLength applies to the first chunk only', () => {
    const s = new SentenceStream({ minFirstLength: 40 });
    s.push('One moment');
    assert.deepEqual(s.cut(), ['One moment']);
    assert.deepEqual([...s.push(' ok. Then more. '), ...s.flush()], [' ok. ', 'Then more. ']);
    const t = new SentenceStream({ minFirstLength: 40 });
    t.push('   ');
    assert.deepEqual(t.cut(), [], 'no letter or digit: nothing to say');
    assert.deepEqual(t.flush(), []);
  });
});

describe('the sentence reader at pauses', () => {
  for (const [name, pause] of [
    ['tool-start', { type: 'tool-start', toolCallId: 'c1', name: 'weather' }],
    ['status', { type: 'status', text: 'Looking it up…' }],
    ['tool-call', { type: 'tool-call', toolCallId: 'c1', name: 'weather', args: {} }],
  ] as const) {
    it(`${name}: the pending sentence comes out before the run goes on`, async () => {
      const { source, release } = gated(
        [{ type: 'stream-start', responseId: RID } as Partial<SluiceEvent>, chunk('Let me check '), chunk('the weather. '), pause as Partial<SluiceEvent>],
        [chunk('It is sunny.'), ...END],
      );
      const reader = sentencesOf(source);
      const first = await reader.next();
      assert.equal(first.value?.text, 'Let me check the weather. ');
      assert.equal(first.value?.seq, 4, 'the pause completed it');
      release();
      const rest = [];
      for await (const s of reader) rest.push(s.text);
      assert.deepEqual(rest, ['It is sunny.']);
    });
  }

  it('a whole message: the open stream is cut first, then the message speaks', async () => {
    const { source, release } = gated(
      [chunk('Half a sentence'), { type: 'message', message: { text: 'A notice.' } } as Partial<SluiceEvent>],
      [chunk(' and the rest.'), ...END],
    );
    const reader = sentencesOf(source);
    assert.equal((await reader.next()).value?.text, 'Half a sentence');
    assert.equal((await reader.next()).value?.text, 'A notice.');
    release();
    const rest = [];
    for await (const s of reader) rest.push(s.text);
    assert.deepEqual(rest, [' and the rest.']);
  });

  it('tool deltas and results are pauses too; text chunks and rich parts are not', () => {
    assert.equal(isTextPause({ type: 'tool-delta', runId: 'r', seq: 1, toolCallId: 'c', argsDelta: '{' } as SluiceEvent), true);
    assert.equal(isTextPause({ type: 'tool-result', runId: 'r', seq: 1, toolCallId: 'c', name: 'n', output: 1 } as SluiceEvent), true);
    assert.equal(isTextPause({ type: 'chunk', runId: 'r', seq: 1, responseId: RID, text: 'x' } as SluiceEvent), false);
  });
});

describe('resume across a pause', () => {
  it('the cut is in the log (the tool-start), so a late reader and a resume by index see the same sentences', async () => {
    const executor = executorWith([toolAction('action_tool', 20)]);
    const run = executor.start(call('action_tool', { sender: 'resume-tool' }));
    const live = [];
    for await (const s of sentencesOf(run)) live.push(s.text);
    assert.deepEqual(live, [BEFORE_TOOL, AFTER_TOOL]);
    const replayed = [];
    for await (const s of sentencesOf(run, { afterIndex: 0 })) replayed.push([s.index, s.text]);
    assert.deepEqual(replayed, [[1, AFTER_TOOL]]);
    await executor.close();
  });
});

describe('output rails at pauses', () => {
  for (const mode of ['check-first', 'stream-first'] as const) {
    it(`${mode}: a tool-start releases the held window; the reader after the rails speaks it before the run goes on`, async () => {
      const windows: string[] = [];
      const { source, release } = gated(
        [{ type: 'stream-start', responseId: RID } as Partial<SluiceEvent>, chunk('Let me check the weather. '), { type: 'tool-start', toolCallId: 'c1', name: 'weather' } as Partial<SluiceEvent>],
        [chunk('It is sunny.'), ...END],
      );
      const railed = withOutputRails(source, { mode, windowSentences: 2, rail: (w) => (windows.push(w.text), 'allow'), cancel: () => {} });
      const reader = sentencesOf(railed);
      assert.equal((await reader.next()).value?.text, 'Let me check the weather. ');
      release();
      const rest = [];
      for await (const s of reader) rest.push(s.text);
      assert.deepEqual(rest, ['It is sunny.']);
      assert.deepEqual(windows, ['Let me check the weather. ', 'It is sunny.']);
    });
  }
});
