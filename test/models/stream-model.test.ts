// streamModel inside real actions (ActionExecutor): status first, one streamed message, tools run
// as their calls complete, the tool loop and its guard, tool failures, citations, non-streaming
// models, barge-in (usage kept), model failures (partial text kept, clear error), idle timeout.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ScriptedModel, scriptTokens } from '../../src/models/scripted.ts';
import { streamModel, type StreamModelOptions, type StreamModelResult, type Tool, type UsageInfo } from '../../src/models/stream-model.ts';
import type { ChatMessage, ChatModel, ModelDelta, ModelRequest, ModelUsage } from '../../src/models/types.ts';
import { SluiceError } from '../../src/protocol/errors.ts';
import { defineAction } from '../../src/runtime/action.ts';
import { Dispatcher } from '../../src/runtime/dispatcher.ts';
import { slotSet } from '../../src/runtime/rasa-events.ts';
import { callFor, capturingLogger, chunkText, eventsOf, executorWith, only, readRun, types, weatherParams, within } from './helpers.ts';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A model whose n-th call (from 0) yields what `script(request, n)` yields. */
function fakeModel(script: (request: ModelRequest, n: number) => AsyncIterable<ModelDelta>, supportsStreaming = true) {
  const requests: ModelRequest[] = [];
  const model: ChatModel = {
    name: 'fake',
    description: 'a fake model',
    supportsStreaming,
    stream(request) {
      requests.push({ ...request, messages: request.messages.slice() });
      return script(request, requests.length - 1);
    },
  };
  return { model, requests };
}

const weather = (overrides: Partial<Tool<{ city: string }>> = {}): Tool<{ city: string }> => ({
  name: 'get_weather',
  description: 'Current weather for a city',
  parameters: weatherParams,
  execute: ({ city }) => ({ city, conditions: 'sunny', temperatureC: 22 }),
  ...overrides,
});

/** An action running streamModel on the user's message; `seen` keeps the outcome. */
function assistant(model: ChatModel, options: Partial<StreamModelOptions> = {}) {
  const seen: { result?: StreamModelResult; error?: unknown; usage: { usage: ModelUsage; info: UsageInfo }[] } = { usage: [] };
  const action = defineAction({
    name: 'action_assistant',
    async run(dispatcher, tracker) {
      const messages: ChatMessage[] = [{ role: 'user', content: String(tracker.latestMessage.text) }];
      try {
        seen.result = await streamModel(dispatcher, model, { messages, onUsage: (usage, info) => seen.usage.push({ usage, info }), ...options });
      } catch (error) {
        seen.error = error;
        throw error;
      }
      return [slotSet('cancelled', seen.result.cancelled)];
    },
  });
  return { action, seen };
}

describe('streamModel with the scripted model', () => {
  test('status first, then one streamed message, tool events, the tool result, the answer', async () => {
    const { action, seen } = assistant(ScriptedModel.instant(), {
      status: 'Thinking…',
      tools: [weather({ status: ({ city }) => `Checking the weather in ${city}…` })],
    });
    const events = await eventsOf(executorWith([action]), callFor('action_assistant', 'What is the weather in Lisbon?'));
    const kinds = types(events);
    assert.equal(kinds[1], 'status');
    assert.equal(only(events, 'status')[0]?.text, 'Thinking…');
    assert.equal(only(events, 'status')[1]?.text, 'Checking the weather in Lisbon…');
    assert.equal(only(events, 'stream-start').length, 1, 'one message across the tool round');
    const toolKinds = kinds.filter((k) => k.startsWith('tool-'));
    assert.deepEqual(toolKinds, ['tool-start', 'tool-delta', 'tool-delta', 'tool-delta', 'tool-delta', 'tool-call', 'tool-result']);
    assert.equal(chunkText(events), 'Let me check the weather in Lisbon.\n\nIn Lisbon it is sunny, around 22 °C.');
    assert.deepEqual(kinds.slice(-3), ['stream-end', 'result', 'run-end']);

    const result = seen.result as StreamModelResult;
    assert.equal(result.text, chunkText(events));
    assert.equal(result.finishReason, 'stop');
    assert.equal(result.cancelled, false);
    assert.deepEqual(result.toolCalls, [{ id: 'call_1', name: 'get_weather', args: { city: 'Lisbon' }, output: { city: 'Lisbon', conditions: 'sunny', temperatureC: 22 } }]);
    assert.deepEqual(result.messages, [
      { role: 'assistant', content: 'Let me check the weather in Lisbon.', toolCalls: [{ id: 'call_1', name: 'get_weather', arguments: '{"city":"Lisbon"}' }] },
      { role: 'tool', toolCallId: 'call_1', name: 'get_weather', content: '{"city":"Lisbon","conditions":"sunny","temperatureC":22}' },
      { role: 'assistant', content: '\n\nIn Lisbon it is sunny, around 22 °C.' },
    ]);
    assert.equal(result.usage.estimated, undefined);
    assert.ok(result.usage.inputTokens > 0 && result.usage.outputTokens > 0);
    assert.equal(seen.usage.length, 1);
    assert.deepEqual(seen.usage[0]?.info, { model: 'scripted', finishReason: 'stop', cancelled: false });
  });

  test('a tool that throws: safe error in tool-result, details only in logs, the model goes on', async () => {
    const logger = capturingLogger();
    const { action, seen } = assistant(ScriptedModel.instant(), {
      logger,
      tools: [
        weather({
          execute: () => {
            throw new Error('ECONNREFUSED 10.9.8.7:5432 password=hunter2');
          },
        }),
      ],
    });
    const events = await eventsOf(executorWith([action]), callFor('action_assistant', 'weather in Paris'));
    assert.deepEqual(only(events, 'tool-result')[0]?.error, "Tool 'get_weather' failed");
    assert.doesNotMatch(JSON.stringify(events), /hunter2|10\.9\.8\.7/);
    assert.ok(logger.records.some((r) => r.level === 'error' && String((r.obj.err as Error)?.message).includes('hunter2')));
    assert.match(chunkText(events), /Sorry, I couldn't get that from get_weather/);
    assert.equal(only(events, 'run-end')[0]?.reason, 'completed');
    assert.equal(seen.result?.messages[1]?.content, JSON.stringify({ error: "Tool 'get_weather' failed" }));
  });

  test("a tool's SluiceError message is public; a non-JSON result is an error; nothing returned is null", async () => {
    const cases: [Tool['execute'], { output?: unknown; error?: string }][] = [
      [
        () => {
          throw new SluiceError('unavailable', 'The weather service is down');
        },
        { error: 'The weather service is down' },
      ],
      [() => ({ big: 1n }), { error: "Tool 'get_weather' returned an invalid result" }],
      [
        () => {
          const loop: Record<string, unknown> = {};
          loop.self = loop;
          return loop;
        },
        { error: "Tool 'get_weather' returned an invalid result" },
      ],
      [() => undefined, { output: null }],
      [async () => ({ when: new Date(0) }), { output: { when: '1970-01-01T00:00:00.000Z' } }],
    ];
    for (const [execute, expected] of cases) {
      const { action } = assistant(ScriptedModel.instant(), { tools: [weather({ execute })] });
      const events = await eventsOf(executorWith([action]), callFor('action_assistant', 'weather in Paris'));
      const result = only(events, 'tool-result')[0];
      assert.deepEqual({ output: result?.output, error: result?.error }, { output: undefined, error: undefined, ...expected });
      assert.equal(only(events, 'run-end')[0]?.reason, 'completed');
    }
  });

  test('a model that cannot stream is delivered as one chunk', async () => {
    const { action, seen } = assistant(ScriptedModel.instant({ streaming: false }));
    const events = await eventsOf(executorWith([action]), callFor('action_assistant', 'Tell me a story'));
    assert.equal(only(events, 'chunk').length, 1);
    assert.match(only(events, 'chunk')[0]?.text ?? '', /^Once upon a time.*again\.$/s);
    assert.equal(seen.result?.text, only(events, 'chunk')[0]?.text);
  });

  test("Rasa's non-streaming path (run() without a sink): each round's text is one message, not one per token", async () => {
    const { action, seen } = assistant(ScriptedModel.instant(), { tools: [weather()] });
    const result = await executorWith([action]).run(callFor('action_assistant', 'weather in Paris'));
    assert.deepEqual(
      result?.responses.map((r) => r.text),
      ['Let me check the weather in Paris.', 'In Paris it is sunny, around 22 °C.'],
    );
    assert.equal(seen.result?.text, 'Let me check the weather in Paris.In Paris it is sunny, around 22 °C.');
  });

  test('citations: your sources on the first chunk, the model’s after they arrive; false drops the model’s', async () => {
    const mine = [{ title: 'Our FAQ', url: 'https://faq.example/hours' }];
    const { action, seen } = assistant(ScriptedModel.instant(), { citations: mine });
    const events = await eventsOf(executorWith([action]), callFor('action_assistant', 'opening hours?'));
    const first = only(events, 'chunk')[0];
    assert.deepEqual(
      first?.citations?.map((c) => [c.position, c.title]),
      [
        [1, 'Our FAQ'],
        [1, 'Store handbook: opening hours'],
      ],
    );
    assert.equal(seen.result?.citations.length, 2);

    const dropped = assistant(ScriptedModel.instant(), { citations: false });
    const plain = await eventsOf(executorWith([dropped.action]), callFor('action_assistant', 'opening hours?'));
    assert.ok(only(plain, 'chunk').every((c) => c.citations === undefined));
  });
});

describe('streamModel: the tool loop', () => {
  test('tools run as their calls complete, while the model is still streaming', async () => {
    let toolStarted!: () => void;
    const started = new Promise<void>((r) => (toolStarted = r));
    const { model } = fakeModel(async function* (_request, n) {
      if (n === 0) {
        yield { type: 'tool-start', id: 'a', name: 'get_weather' };
        yield { type: 'tool-end', id: 'a', name: 'get_weather', arguments: '{"city":"Paris"}' };
        // The model keeps going only once the tool has started: proof it runs mid-stream.
        await within(started, 2000, 'the tool starting mid-stream');
        yield { type: 'text', text: 'Checking…' };
        yield { type: 'finish', reason: 'tool-calls' };
      } else {
        yield { type: 'text', text: 'Sunny.' };
        yield { type: 'finish', reason: 'stop' };
      }
    });
    const { action, seen } = assistant(model, {
      tools: [
        weather({
          execute: ({ city }) => {
            toolStarted();
            return { city };
          },
        }),
      ],
    });
    const events = await eventsOf(executorWith([action]), callFor('action_assistant', 'weather?'));
    assert.equal(chunkText(events), 'Checking…\n\nSunny.');
    assert.equal(seen.result?.finishReason, 'stop');
  });

  test('unknown tools and invalid JSON arguments: error results, and the model is told', async () => {
    const { model, requests } = fakeModel(async function* (_request, n) {
      if (n === 0) {
        yield { type: 'tool-start', id: 'x', name: 'launch_rockets' };
        yield { type: 'tool-end', id: 'x', name: 'launch_rockets', arguments: '{}' };
        yield { type: 'tool-start', id: 'y', name: 'get_weather' };
        yield { type: 'tool-delta', id: 'y', argsDelta: '{"city": Par' };
        yield { type: 'tool-end', id: 'y', name: 'get_weather', arguments: '{"city": Par' };
        yield { type: 'finish', reason: 'tool-calls' };
      } else {
        yield { type: 'text', text: 'Sorry.' };
        yield { type: 'finish', reason: 'stop' };
      }
    });
    const { action } = assistant(model, { tools: [weather()] });
    const events = await eventsOf(executorWith([action]), callFor('action_assistant', 'go'));
    assert.deepEqual(
      only(events, 'tool-result').map((r) => r.error),
      ["Unknown tool 'launch_rockets'", "The arguments for tool 'get_weather' are not valid JSON"],
    );
    assert.equal(only(events, 'tool-call')[1]?.args, '{"city": Par');
    const second = requests[1]?.messages ?? [];
    assert.deepEqual(
      second.map((m) => m.role),
      ['user', 'assistant', 'tool', 'tool'],
    );
    assert.equal(chunkText(events), 'Sorry.');
  });

  test('framing is repaired: a call that ends without a start is announced; one never ended is closed', async () => {
    const { model } = fakeModel(async function* (_request, n) {
      if (n === 0) {
        yield { type: 'tool-end', id: 'q', name: 'get_weather', arguments: '{"city":"Rome"}' };
        yield { type: 'tool-start', id: 'r', name: 'get_weather' };
        yield { type: 'tool-delta', id: 'r', argsDelta: '{"ci' };
        yield { type: 'finish', reason: 'tool-calls' };
      } else {
        yield { type: 'text', text: 'Done.' };
        yield { type: 'finish', reason: 'stop' };
      }
    });
    const { action } = assistant(model, { tools: [weather()] });
    const events = await eventsOf(executorWith([action]), callFor('action_assistant', 'go'));
    const q = events.filter((e) => 'toolCallId' in e && e.toolCallId === 'q').map((e) => e.type);
    assert.deepEqual(q, ['tool-start', 'tool-delta', 'tool-call', 'tool-result']);
    const r = events.filter((e) => 'toolCallId' in e && e.toolCallId === 'r');
    assert.deepEqual(
      r.map((e) => e.type),
      ['tool-start', 'tool-delta', 'tool-result'],
    );
    assert.equal((r.at(-1) as { error?: string }).error, 'The model did not finish this tool call');
  });

  test('maxToolRounds: after the last tool round the model is told not to call tools; calls it still makes are refused', async () => {
    const logger = capturingLogger();
    const { model, requests } = fakeModel(async function* (_request, n) {
      yield { type: 'tool-start', id: `c${n}`, name: 'get_weather' };
      yield { type: 'tool-end', id: `c${n}`, name: 'get_weather', arguments: '{"city":"Paris"}' };
      yield { type: 'finish', reason: 'tool-calls' };
    });
    let executed = 0;
    const { action, seen } = assistant(model, {
      maxToolRounds: 2,
      logger,
      tools: [
        weather({
          execute: () => {
            executed++;
            return {};
          },
        }),
      ],
    });
    const events = await eventsOf(executorWith([action]), callFor('action_assistant', 'loop'));
    assert.equal(requests.length, 3);
    assert.deepEqual(
      requests.map((r) => r.toolChoice),
      ['auto', 'auto', 'none'],
    );
    assert.equal(executed, 2);
    assert.equal(only(events, 'tool-result')[2]?.error, 'Tool call limit reached: answer without calling more tools');
    assert.equal(seen.result?.finishReason, 'tool-calls');
    assert.ok(logger.records.some((r) => r.level === 'warn' && /kept calling tools/.test(r.msg)));
    assert.equal(only(events, 'run-end')[0]?.reason, 'completed');
    // Every call in the history has its result.
    const messages = seen.result?.messages ?? [];
    const calls = messages.flatMap((m) => (m.role === 'assistant' ? (m.toolCalls ?? []).map((c) => c.id) : []));
    const results = messages.flatMap((m) => (m.role === 'tool' ? [m.toolCallId] : []));
    assert.deepEqual(results, calls);
  });
});

describe('streamModel: barge-in', () => {
  test('an ack stops the model at once; the run ends cancelled with events; usage so far is reported', async () => {
    const model = new ScriptedModel({ firstTokenDelayMs: 0, tokensPerSecond: 500, jitter: 0 });
    const { action, seen } = assistant(model);
    const executor = executorWith([action]);
    const run = executor.start(callFor('action_assistant', 'Tell me a story'));
    let chunks = 0;
    const events = await within(
      readRun(run, (e) => {
        if (e.type === 'chunk' && ++chunks === 3) executor.ack(e.responseId);
      }),
      3000,
      'the cancelled run',
    );
    const end = events.findIndex((e) => e.type === 'stream-end');
    assert.equal(only(events, 'stream-end')[0]?.reason, 'cancelled');
    assert.ok(!events.slice(end).some((e) => e.type === 'chunk'), 'no chunk after the end');
    assert.equal(only(events, 'run-end')[0]?.reason, 'cancelled');
    assert.deepEqual(only(events, 'result')[0]?.events, [slotSet('cancelled', true)]);

    const result = seen.result as StreamModelResult;
    assert.equal(result.cancelled, true);
    assert.equal(result.finishReason, 'aborted');
    assert.ok(result.text.startsWith(chunkText(events)));
    assert.ok(result.text.length < 100, 'the story was not finished');
    // The scripted model reports exact usage on abort: the tokens it produced.
    assert.equal(result.usage.outputTokens, scriptTokens(result.text).length);
    assert.equal(result.usage.estimated, undefined);
    assert.deepEqual(result.messages, [{ role: 'assistant', content: result.text }]);
    assert.equal(seen.usage.length, 1);
    assert.equal(seen.usage[0]?.info.cancelled, true);
    assert.equal(executor.activeStreams, 0);
  });

  test('a barge-in while a tool runs: the tool is signalled, the history keeps no dangling call', async () => {
    let toolSignal: AbortSignal | undefined;
    const { action, seen } = assistant(ScriptedModel.instant(), {
      tools: [
        weather({
          execute: (_args, { signal }) => {
            toolSignal = signal;
            return new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason), { once: true }));
          },
        }),
      ],
    });
    const executor = executorWith([action]);
    const run = executor.start(callFor('action_assistant', 'weather in Tokyo'));
    let responseId = '';
    const events = await within(
      readRun(run, (e) => {
        if (e.type === 'stream-start') responseId = e.responseId;
        if (e.type === 'tool-call') executor.ack(responseId);
      }),
      3000,
      'the cancelled run',
    );
    assert.equal(toolSignal?.aborted, true);
    assert.equal(only(events, 'run-end')[0]?.reason, 'cancelled');
    assert.equal(seen.result?.cancelled, true);
    assert.deepEqual(seen.result?.messages, [{ role: 'assistant', content: 'Let me check the weather in Tokyo.' }]);
  });
});

describe('streamModel: failures', () => {
  const failingModel = () =>
    fakeModel(async function* () {
      yield { type: 'text', text: 'Half ' };
      yield { type: 'text', text: 'an answer' };
      throw new Error('upstream reset by peer 172.16.0.4');
    }).model;

  test('a model that fails mid-stream: partial text delivered, message ends with error, run ends in a clear error', async () => {
    const { action, seen } = assistant(failingModel());
    const events = await eventsOf(executorWith([action]), callFor('action_assistant', 'go'));
    assert.deepEqual(types(events), ['run-start', 'stream-start', 'chunk', 'chunk', 'stream-end', 'error', 'run-end']);
    assert.equal(chunkText(events), 'Half an answer');
    assert.equal(only(events, 'stream-end')[0]?.reason, 'error');
    assert.deepEqual(
      { code: only(events, 'error')[0]?.code, message: only(events, 'error')[0]?.message },
      { code: 'unavailable', message: 'The model failed while answering' },
    );
    assert.doesNotMatch(JSON.stringify(events), /172\.16/);
    assert.equal(seen.usage.length, 1);
    assert.equal(seen.usage[0]?.info.error, 'unavailable');
    assert.equal(seen.usage[0]?.usage.estimated, true);
  });

  test('an action can catch the error, apologise and still return its events', async () => {
    const model = failingModel();
    const action = defineAction({
      name: 'action_assistant',
      async run(dispatcher) {
        try {
          await streamModel(dispatcher, model, { messages: [{ role: 'user', content: 'go' }] });
          return [];
        } catch (error) {
          if (!SluiceError.isInstance(error)) throw error;
          dispatcher.utterMessage({ text: 'Sorry, I lost my train of thought.' });
          return [slotSet('model_error', error.code)];
        }
      },
    });
    const events = await eventsOf(executorWith([action]), callFor('action_assistant'));
    assert.deepEqual(types(events), ['run-start', 'stream-start', 'chunk', 'chunk', 'stream-end', 'message', 'result', 'run-end']);
    assert.equal(only(events, 'stream-end')[0]?.reason, 'error');
    const result = only(events, 'result')[0];
    assert.deepEqual(result?.events, [slotSet('model_error', 'unavailable')]);
    assert.equal(result?.responses[0]?.text, 'Sorry, I lost my train of thought.');
    assert.equal(only(events, 'run-end')[0]?.reason, 'completed');
  });

  test('a model that stalls: timeout after idleTimeoutMs, and its request is aborted', async () => {
    let modelSignal: AbortSignal | undefined;
    const { model } = fakeModel(async function* (request) {
      modelSignal = request.signal;
      yield { type: 'text', text: 'Hmm' };
      await new Promise(() => {});
    });
    const { action } = assistant(model, { idleTimeoutMs: 50 });
    const started = Date.now();
    const events = await within(eventsOf(executorWith([action]), callFor('action_assistant')), 3000, 'the timeout');
    assert.ok(Date.now() - started < 1000);
    assert.equal(only(events, 'error')[0]?.code, 'timeout');
    assert.equal(modelSignal?.aborted, true);
    assert.equal(chunkText(events), 'Hmm');
  });

  test('a slow reader (backpressure) is not a stalled model', async () => {
    // The reader takes longer per event than the idle timeout; the model itself answers at once.
    const { action, seen } = assistant(ScriptedModel.instant(), { idleTimeoutMs: 10 });
    const executor = executorWith([action], { run: { highWaterMark: 2 } });
    const run = executor.start(callFor('action_assistant', 'hello'));
    const events = await readRun(run, () => sleep(15));
    assert.equal(only(events, 'run-end')[0]?.reason, 'completed');
    assert.match(seen.result?.text ?? '', /short story\.$/);
  });

  test('bad options are rejected with invalid_argument', async () => {
    const d = new Dispatcher();
    const model = ScriptedModel.instant();
    await assert.rejects(streamModel(d, model, { messages: 'hi' as never }), { code: 'invalid_argument' });
    await assert.rejects(streamModel(d, model, { messages: [], maxToolRounds: -1 }), { code: 'invalid_argument' });
    await assert.rejects(streamModel(d, model, { messages: [], tools: [weather(), weather()] }), { code: 'invalid_argument' });
  });
});
