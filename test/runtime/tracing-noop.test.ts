// Without an OpenTelemetry SDK the tracer costs a run nothing past its start: no watch is attached,
// so no per-event call is made. (tracing.test.ts registers an SDK; this file, its own process, does not.)
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { defineAction } from '../../src/runtime/action.ts';
import { ActionExecutor } from '../../src/runtime/executor.ts';
import { silentLogger } from '../../src/runtime/logger.ts';

test('no SDK registered: runs get no watch, and their events are unchanged', async () => {
  const executor = new ActionExecutor({
    logger: silentLogger,
    actions: [defineAction({ name: 'action_words', async *stream() { yield 'a '; yield 'b'; } })],
  });
  const run = executor.start({ next_action: 'action_words', tracker: { sender_id: 'n' } }, { transport: 'in-process', traceHeaders: { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' } });
  assert.equal(run.watch, null);
  assert.equal(run.transport, 'in-process');
  const types: string[] = [];
  for await (const event of run.subscribe()) types.push(event.type);
  assert.deepEqual(types, ['run-start', 'stream-start', 'chunk', 'chunk', 'stream-end', 'result', 'run-end']);
});
