/**
 * Output rails over a run's events: check-first and stream-first, allow / block / rewrite,
 * windows and context, a block that cancels the model call, and bad options.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SluiceError } from '../../../src/protocol/errors.ts';
import type { SluiceEvent } from '../../../src/protocol/events.ts';
import { chunk, defineAction, endStream, message } from '../../../src/runtime/action.ts';
import { ScriptedModel } from '../../../src/models/scripted.ts';
import { streamModel, type StreamModelResult } from '../../../src/models/stream-model.ts';
import { withOutputRails, type OutputRail, type RailWindow } from '../../../src/channels/voice/rails.ts';
import { sentencesOf } from '../../../src/channels/voice/sentences.ts';
import { call, collect, executorWith, pacedAction, texts, Trace } from './helpers.ts';

const TEXT = 'The weather is fine. The secret code is 1234. Have a nice day.';

const noSecrets: OutputRail = ({ text }) => (/secret/i.test(text) ? { action: 'block', reason: 'secret' } : 'allow');
const maskDigits: OutputRail = ({ text }) => (/\d/.test(text) ? { action: 'rewrite', text: text.replace(/\d/g, '*') } : { action: 'allow' });

function types(events: SluiceEvent[]): string[] {
  return events.map((e) => e.type);
}

describe('withOutputRails, check-first', () => {
  it('allow: releases every sentence, once checked, with the exact text; windows get context', async () => {
    const executor = executorWith([pacedAction('action_text', TEXT, 1)]);
    const run = executor.start(call('action_text'));
    const seen: RailWindow[] = [];
    const view = withOutputRails(run, { rail: (w) => (seen.push(w), 'allow') });
    const events = await collect(view);
    assert.equal(texts(events), TEXT);
    assert.deepEqual(seen.map((w) => w.text), ['The weather is fine. ', 'The secret code is 1234. ', 'Have a nice day.']);
    assert.deepEqual(seen.map((w) => w.context), ['', 'The weather is fine. ', 'The weather is fine. The secret code is 1234. ']);
    assert.deepEqual(seen.map((w) => w.final), [false, false, true]);
    assert.deepEqual(seen.map((w) => w.index), [0, 1, 2]);
    assert.equal(events.filter((e) => e.type === 'chunk').length, 3, 'one chunk per checked window');
    assert.deepEqual(types(events).slice(-3), ['stream-end', 'result', 'run-end']);
    assert.equal(view.blocked, false);
    assert.deepEqual(view.incidents, []);
    await executor.close();
  });

  it('never releases text before its window was checked', async () => {
    const executor = executorWith([pacedAction('action_text', TEXT, 1)]);
    const run = executor.start(call('action_text'));
    const checked: string[] = [];
    const view = withOutputRails(run, {
      rail: async (w) => {
        await new Promise((r) => setTimeout(r, 10));
        checked.push(w.text);
        return 'allow' as const;
      },
    });
    for await (const event of view) {
      if (event.type === 'chunk' && typeof event.text === 'string') assert.equal(checked.at(-1), event.text, 'released only after its check');
    }
    await executor.close();
  });

  it('block: nothing of the offending window is shown; stream ends, error + policy message, run cancelled, incident recorded', async () => {
    const trace = new Trace();
    const executor = executorWith([pacedAction('action_text', `${TEXT} More text follows here. And more.`, 15, trace)]);
    const run = executor.start(call('action_text'));
    const incidents: unknown[] = [];
    const view = withOutputRails(run, { rail: noSecrets, policyMessage: 'I cannot share that.', onIncident: (i) => incidents.push(i) });
    const events = await collect(view);
    assert.equal(texts(events), 'The weather is fine. ');
    assert.ok(!JSON.stringify(events).includes('1234'), 'the blocked text never appears');
    const tail = events.slice(events.findIndex((e) => e.type === 'stream-end'));
    assert.deepEqual(types(tail), ['stream-end', 'error', 'message', 'result', 'run-end']);
    assert.equal((tail[0] as { reason: string }).reason, 'error');
    assert.deepEqual(
      { code: (tail[1] as { code: string }).code, reason: (tail[1] as { reason: string }).reason, message: (tail[1] as { message: string }).message },
      { code: 'permission_denied', reason: 'output_rail_blocked', message: 'Blocked by output rails: secret' },
    );
    assert.equal((tail[2] as unknown as { message: { text: string } }).message.text, 'I cannot share that.');
    assert.equal((await run.done).reason, 'cancelled');
    assert.equal(trace.aborted, true, "the action's signal aborted: its model call would stop");
    assert.equal(view.blocked, true);
    assert.equal(view.incidents.length, 1);
    assert.deepEqual(incidents, view.incidents);
    assert.deepEqual(
      { action: view.incidents[0]!.action, text: view.incidents[0]!.text, applied: view.incidents[0]!.applied, alreadySent: view.incidents[0]!.alreadySent, mode: view.incidents[0]!.mode },
      { action: 'block', text: 'The secret code is 1234. ', applied: true, alreadySent: false, mode: 'check-first' },
    );
    const result = events.find((e) => e.type === 'result') as { events: unknown[] };
    assert.deepEqual(result.events, [{ event: 'slot', timestamp: null, name: 'finished', value: false }], "the run's own result still arrives");
    await executor.close();
  });

  it('rewrite: the window is replaced before anyone sees it; chained rails see the rewrite', async () => {
    const executor = executorWith([pacedAction('action_text', TEXT, 1)]);
    const second: string[] = [];
    const view = withOutputRails(executor.start(call('action_text')), {
      rail: [maskDigits, (w) => (second.push(w.text), 'allow')],
    });
    const events = await collect(view);
    assert.equal(texts(events), 'The weather is fine. The secret code is ****. Have a nice day.');
    assert.equal(second[1], 'The secret code is ****. ');
    assert.equal(view.incidents.length, 1);
    assert.deepEqual({ action: view.incidents[0]!.action, rewrittenTo: view.incidents[0]!.rewrittenTo, applied: view.incidents[0]!.applied }, { action: 'rewrite', rewrittenTo: 'The secret code is ****. ', applied: true });
    await executor.close();
  });

  it('checks windows of several sentences and whole messages; rich chunk parts pass after their text', async () => {
    const executor = executorWith([
      defineAction({
        name: 'action_rich',
        async *stream() {
          yield 'One. Two. ';
          yield chunk({ text: 'Three. ', citations: [{ position: 1, title: 'Source' }] });
          yield 'Four.';
          yield endStream();
          yield message({ text: 'Static one. Static 2.' });
        },
      }),
    ]);
    const windows: string[] = [];
    const view = withOutputRails(executor.start(call('action_rich')), { rail: [(w) => (windows.push(w.text), 'allow'), maskDigits], windowSentences: 2 });
    const events = await collect(view);
    assert.deepEqual(windows, ['One. Two. ', 'Three. Four.', 'Static one. Static 2.']);
    assert.equal(texts(events), 'One. Two. Three. Four.');
    const rich = events.find((e) => e.type === 'chunk' && Array.isArray(e.citations));
    assert.ok(rich !== undefined, 'the citation passes');
    assert.ok(events.indexOf(rich) > events.findIndex((e) => e.type === 'chunk' && e.text === 'Three. Four.'));
    const msg = events.find((e) => e.type === 'message') as unknown as { message: { text: string } };
    assert.equal(msg.message.text, 'Static one. Static *.');
    await executor.close();
  });

  it('a rail that throws blocks (fail closed) unless failClosed is false', async () => {
    for (const failClosed of [true, false]) {
      const executor = executorWith([pacedAction('action_text', TEXT, 1)]);
      const view = withOutputRails(executor.start(call('action_text')), {
        failClosed,
        rail: ({ index }) => {
          if (index === 1) throw new Error('moderation service down');
          return 'allow';
        },
      });
      const events = await collect(view);
      assert.equal(view.incidents[0]!.action, 'error');
      if (failClosed) {
        assert.equal(view.blocked, true);
        assert.equal(texts(events), 'The weather is fine. ');
      } else {
        assert.equal(view.blocked, false);
        assert.equal(texts(events), TEXT);
      }
      await executor.close();
    }
  });

  it('a block cancels the model call: streamModel reports cancelled', async () => {
    let result: StreamModelResult | undefined;
    const model = new ScriptedModel({ firstTokenDelayMs: 0, tokensPerSecond: 200, jitter: 0 });
    const executor = executorWith([
      defineAction({
        name: 'action_model',
        async run(dispatcher) {
          result = await streamModel(dispatcher, model, { messages: [{ role: 'user', content: 'tell me a story' }] });
          return [];
        },
      }),
    ]);
    const run = executor.start(call('action_model'));
    const view = withOutputRails(run, { rail: ({ text }) => (/sluice/i.test(text) ? 'block' : 'allow') });
    const events = await collect(view);
    assert.equal(view.blocked, true);
    assert.ok(!texts(events).toLowerCase().includes('sluice'));
    assert.equal(result?.cancelled, true);
    assert.ok(result!.text.length < 300, 'the model stopped before the end of its story');
    await executor.close();
  });

  it('works with sentencesOf: released windows come out as sentences at once', async () => {
    const executor = executorWith([pacedAction('action_text', TEXT, 20)]);
    const run = executor.start(call('action_text'));
    const started = performance.now();
    const reader = sentencesOf(withOutputRails(run, { rail: () => 'allow' }));
    const first = await reader.next();
    assert.equal(first.value?.text, 'The weather is fine. ');
    const at = performance.now() - started;
    assert.ok(at < 200, `first sentence after ${at.toFixed(0)} ms (the run takes ~260 ms)`);
    const rest = await collect(reader);
    assert.deepEqual(rest.map((s) => s.text), ['The secret code is 1234. ', 'Have a nice day.']);
    await executor.close();
  });
});

describe('withOutputRails, stream-first', () => {
  it('allow: chunks pass through as they come', async () => {
    const executor = executorWith([pacedAction('action_text', TEXT, 1)]);
    const run = executor.start(call('action_text'));
    const view = withOutputRails(run, { rail: () => 'allow', mode: 'stream-first' });
    const events = await collect(view);
    assert.equal(texts(events), TEXT);
    assert.equal(events.filter((e) => e.type === 'chunk').length, TEXT.split(' ').length, 'original chunks, not windows');
    await executor.close();
  });

  it('block: text already sent stays, the stream ends with an error and the policy message, the run is cancelled', async () => {
    const trace = new Trace();
    const executor = executorWith([pacedAction('action_text', `${TEXT} More text follows here and it goes on for quite a while. The end.`, 10, trace)]);
    const run = executor.start(call('action_text'));
    const view = withOutputRails(run, {
      mode: 'stream-first',
      rail: async (w) => {
        await new Promise((r) => setTimeout(r, 5));
        return noSecrets(w);
      },
    });
    const events = await collect(view);
    const shown = texts(events);
    assert.ok(shown.includes('The secret code is 1234.'), 'stream-first: the window was sent before it was checked');
    assert.ok(!shown.includes('The end.'), 'the stream stopped');
    assert.deepEqual(types(events.slice(events.findIndex((e) => e.type === 'error') - 1)), ['stream-end', 'error', 'message', 'result', 'run-end']);
    assert.equal(view.incidents[0]!.alreadySent, true);
    assert.equal(view.incidents[0]!.mode, 'stream-first');
    assert.equal(trace.aborted, true);
    assert.equal((await run.done).reason, 'cancelled');
    await executor.close();
  });

  it('block on the last window is still honoured before the stream ends', async () => {
    const executor = executorWith([pacedAction('action_text', 'All good. But a secret at the end.', 1)]);
    const view = withOutputRails(executor.start(call('action_text')), { mode: 'stream-first', rail: noSecrets });
    const events = await collect(view);
    assert.equal(view.blocked, true);
    const end = events.find((e) => e.type === 'stream-end') as { reason: string };
    assert.equal(end.reason, 'error');
    assert.equal(events.filter((e) => e.type === 'stream-end').length, 1, 'one end for the stream');
    await executor.close();
  });

  it('rewrite cannot retract sent text: recorded, not applied', async () => {
    const executor = executorWith([pacedAction('action_text', TEXT, 1)]);
    const view = withOutputRails(executor.start(call('action_text')), { mode: 'stream-first', rail: maskDigits });
    const events = await collect(view);
    assert.equal(texts(events), TEXT);
    assert.deepEqual({ action: view.incidents[0]!.action, applied: view.incidents[0]!.applied, rewrittenTo: view.incidents[0]!.rewrittenTo }, { action: 'rewrite', applied: false, rewrittenTo: 'The secret code is ****. ' });
    await executor.close();
  });
});

describe('withOutputRails options', () => {
  it('rejects bad options at construction, naming them', () => {
    const executor = executorWith([]);
    const run = executor.start(call('nothing'));
    const bad: [Record<string, unknown>, RegExp][] = [
      [{}, /'rail'/],
      [{ rail: [] }, /'rail'/],
      [{ rail: 'block' }, /'rail'/],
      [{ rail: () => 'allow', mode: 'later' }, /'mode'/],
      [{ rail: () => 'allow', windowSentences: 0 }, /windowSentences/],
      [{ rail: () => 'allow', contextSentences: -1 }, /contextSentences/],
      [{ rail: () => 'allow', policyMessage: '' }, /policyMessage/],
      [{ rail: () => 'allow', segmenterMode: 'x' }, /'mode'/],
      [{ rail: () => 'allow', onIncident: 1 }, /onIncident/],
      [{ rail: () => 'allow', chunkSize: 200 }, /unknown option 'chunkSize'/],
    ];
    for (const [options, pattern] of bad) {
      assert.throws(
        () => withOutputRails(run, options as never),
        (e: unknown) => SluiceError.isInstance(e) && e.code === 'invalid_argument' && pattern.test(e.message),
        JSON.stringify(Object.keys(options)),
      );
    }
    return executor.close();
  });
});
