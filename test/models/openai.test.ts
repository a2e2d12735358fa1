// The OpenAI-compatible adapter against a local server replaying recorded SSE frames, run inside
// real actions through the ActionExecutor: text, tool-call deltas split across frames, citations
// in a text-less first frame, usage in the last frame, provider failures, a stall, and barge-in
// closing the provider connection.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { OpenAIChatModel } from '../../src/models/openai.ts';
import { streamModel, type StreamModelResult, type Tool } from '../../src/models/stream-model.ts';
import type { ChatMessage, ModelUsage } from '../../src/models/types.ts';
import { SluiceError } from '../../src/protocol/errors.ts';
import { defineAction } from '../../src/runtime/action.ts';
import { Dispatcher } from '../../src/runtime/dispatcher.ts';
import type { Logger } from '../../src/runtime/logger.ts';
import { silentLogger } from '../../src/runtime/logger.ts';
import { slotSet } from '../../src/runtime/rasa-events.ts';
import { chunk, startFakeOpenAI, textScript, toolCallFrames, usageFrame, type Script } from './fake-openai.ts';
import { callFor, capturingLogger, chunkText, eventsOf, executorWith, only, readRun, types, weatherParams, within } from './helpers.ts';

const weatherTool = (log: string[] = []): Tool<{ city: string }> => ({
  name: 'get_weather',
  description: 'Current weather for a city',
  parameters: weatherParams,
  execute: ({ city }) => {
    log.push(`execute ${city}`);
    return { city, conditions: 'sunny', temperatureC: 21 };
  },
});

/** An action that answers with the model and keeps what streamModel returned. */
function assistant(model: OpenAIChatModel, options: { tools?: Tool[]; idleTimeoutMs?: number; logger?: Logger } = {}) {
  const seen: { result?: StreamModelResult; error?: unknown } = {};
  const action = defineAction({
    name: 'action_assistant',
    async run(dispatcher, tracker) {
      const messages: ChatMessage[] = [
        { role: 'system', content: 'You are terse.' },
        { role: 'user', content: String(tracker.latestMessage.text) },
      ];
      try {
        seen.result = await streamModel(dispatcher, model, { messages, status: 'Thinking…', ...options });
      } catch (error) {
        seen.error = error;
        throw error;
      }
      return [slotSet('answered', true)];
    },
  });
  return { action, seen };
}

async function serve(scripts: Script[]) {
  const server = await startFakeOpenAI(scripts);
  const model = new OpenAIChatModel({ baseURL: server.baseURL, model: 'test-model', maxRetries: 0, logger: silentLogger });
  return { server, model };
}

describe('OpenAI-compatible adapter: streaming', () => {
  test('text deltas become chunks of one message; status first; usage from the last frame', async () => {
    const { server, model } = await serve([textScript(['Hel', 'lo, ', 'world', '!'], [31, 4])]);
    await using _ = server;
    const { action, seen } = assistant(model);
    const events = await eventsOf(executorWith([action]), callFor('action_assistant', 'Say hello'));

    assert.deepEqual(types(events), ['run-start', 'status', 'stream-start', 'chunk', 'chunk', 'chunk', 'chunk', 'stream-end', 'result', 'run-end']);
    assert.deepEqual(
      only(events, 'chunk').map((c) => c.text),
      ['Hel', 'lo, ', 'world', '!'],
    );
    assert.equal(only(events, 'stream-end')[0]?.reason, 'completed');
    assert.deepEqual(only(events, 'result')[0]?.events, [slotSet('answered', true)]);
    assert.equal(seen.result?.text, 'Hello, world!');
    assert.deepEqual(seen.result?.usage, { inputTokens: 31, outputTokens: 4, totalTokens: 35, cachedInputTokens: 0, reasoningTokens: 0 });
    assert.equal(seen.result?.finishReason, 'stop');
    assert.equal(seen.result?.cancelled, false);
    assert.equal(seen.result?.responseId, only(events, 'stream-start')[0]?.responseId);

    const body = server.exchanges[0]?.body;
    assert.equal(body?.model, 'test-model');
    assert.equal(body?.stream, true);
    assert.deepEqual(body?.stream_options, { include_usage: true });
    assert.deepEqual(body?.messages, [
      { role: 'system', content: 'You are terse.' },
      { role: 'user', content: 'Say hello' },
    ]);
    assert.equal(body?.tools, undefined);
  });

  test('tool-call deltas split across frames: tool events, the tool runs, the model continues with its result', async () => {
    const { server, model } = await serve([
      [
        { frame: chunk({ role: 'assistant', content: null }) },
        ...toolCallFrames(0, 'call_abc', 'get_weather', ['{"ci', 'ty": "Pa', 'ris"}']),
        { frame: chunk({}, 'tool_calls') },
        { frame: usageFrame(50, 12) },
        { done: true },
      ],
      textScript(['It is sunny ', 'in Paris.'], [80, 6]),
    ]);
    await using _ = server;
    const log: string[] = [];
    const { action, seen } = assistant(model, { tools: [weatherTool(log)] });
    const events = await eventsOf(executorWith([action]), callFor('action_assistant', 'Weather in Paris?'));

    assert.deepEqual(types(events), [
      'run-start',
      'status',
      'tool-start',
      'tool-delta',
      'tool-delta',
      'tool-delta',
      'tool-call',
      'tool-result',
      'stream-start',
      'chunk',
      'chunk',
      'stream-end',
      'result',
      'run-end',
    ]);
    assert.deepEqual(
      only(events, 'tool-delta').map((d) => d.argsDelta),
      ['{"ci', 'ty": "Pa', 'ris"}'],
    );
    assert.deepEqual(only(events, 'tool-call')[0]?.args, { city: 'Paris' });
    assert.equal(only(events, 'tool-call')[0]?.toolCallId, 'call_abc');
    assert.deepEqual(only(events, 'tool-result')[0]?.output, { city: 'Paris', conditions: 'sunny', temperatureC: 21 });
    assert.deepEqual(log, ['execute Paris']);
    assert.equal(chunkText(events), 'It is sunny in Paris.');

    // The first request offered the tool; the second carries the call and its result.
    const first = server.exchanges[0]?.body;
    assert.deepEqual(first?.tools, [{ type: 'function', function: { name: 'get_weather', description: 'Current weather for a city', parameters: weatherParams } }]);
    assert.equal(first?.tool_choice, 'auto');
    const second = server.exchanges[1]?.body.messages as Record<string, unknown>[];
    assert.deepEqual(second.slice(2), [
      { role: 'assistant', content: null, tool_calls: [{ id: 'call_abc', type: 'function', function: { name: 'get_weather', arguments: '{"city": "Paris"}' } }] },
      { role: 'tool', tool_call_id: 'call_abc', content: JSON.stringify({ city: 'Paris', conditions: 'sunny', temperatureC: 21 }) },
    ]);
    assert.deepEqual(seen.result?.usage, { inputTokens: 130, outputTokens: 18, totalTokens: 148, cachedInputTokens: 0, reasoningTokens: 0 });
    assert.equal(seen.result?.toolCalls.length, 1);
    assert.deepEqual(
      seen.result?.messages.map((m) => m.role),
      ['assistant', 'tool', 'assistant'],
    );
  });

  test('parallel tool calls: the first tool runs as soon as the model moves on to the second call', async () => {
    const { server, model } = await serve([
      [
        ...toolCallFrames(0, 'call_1', 'get_weather', ['{"city":', '"Paris"}']),
        ...toolCallFrames(1, 'call_2', 'get_weather', ['{"city":', '"Berlin"}']),
        { frame: chunk({}, 'tool_calls') },
        { frame: usageFrame(40, 20) },
        { done: true },
      ],
      textScript(['Both sunny.']),
    ]);
    await using _ = server;
    const { action } = assistant(model, { tools: [weatherTool()] });
    const events = await eventsOf(executorWith([action]), callFor('action_assistant', 'Paris and Berlin?'));
    const order = events
      .filter((e) => e.type.startsWith('tool-'))
      .map((e) => `${e.type} ${(e as { toolCallId: string }).toolCallId}`);
    // call_1 is complete (tool-call) before any of call_2's argument deltas.
    assert.ok(order.indexOf('tool-call call_1') < order.indexOf('tool-start call_2'), order.join(', '));
    assert.equal(only(events, 'tool-result').length, 2);
    assert.equal(chunkText(events), 'Both sunny.');
  });

  test('a server that sends each call whole and reuses index 0 (as some Ollama versions do): two calls', async () => {
    const whole = (id: string, city: string) => ({ frame: chunk({ tool_calls: [{ index: 0, id, type: 'function', function: { name: 'get_weather', arguments: JSON.stringify({ city }) } }] }) });
    const { server, model } = await serve([[whole('call_a', 'Paris'), whole('call_b', 'Rome'), { frame: chunk({}, 'tool_calls') }, { done: true }], textScript(['Done.'])]);
    await using _ = server;
    const { action } = assistant(model, { tools: [weatherTool()] });
    const events = await eventsOf(executorWith([action]), callFor('action_assistant', 'Paris and Rome?'));
    assert.deepEqual(
      only(events, 'tool-call').map((c) => [c.toolCallId, c.args]),
      [
        ['call_a', { city: 'Paris' }],
        ['call_b', { city: 'Rome' }],
      ],
    );
    assert.equal(only(events, 'tool-result').length, 2);
  });

  test('citations in a text-less first frame ride on the first text chunk, once each', async () => {
    const urls = ['https://docs.example/sluice', 'https://blog.example/streams'];
    const extra = {
      citations: urls,
      search_results: [
        { title: 'Sluice docs', url: urls[0] },
        { title: 'On streams', url: urls[1] },
      ],
    };
    const { server, model } = await serve([
      [
        { frame: chunk({ role: 'assistant', content: '' }, null, extra) },
        { frame: chunk({ content: 'Sluice streams ' }, null, extra) },
        { frame: chunk({ content: 'actions [1][2].' }, null, extra) },
        { frame: chunk({}, 'stop', extra) },
        { frame: usageFrame(10, 5) },
        { done: true },
      ],
    ]);
    await using _ = server;
    const { action, seen } = assistant(model);
    const events = await eventsOf(executorWith([action]), callFor('action_assistant', 'What is Sluice?'));
    const chunks = only(events, 'chunk');
    assert.deepEqual(chunks[0]?.citations, [
      { position: 1, url: urls[0], title: 'Sluice docs' },
      { position: 2, url: urls[1], title: 'On streams' },
    ]);
    assert.equal(chunks[0]?.text, 'Sluice streams ');
    assert.equal(chunks[1]?.citations, undefined);
    assert.equal(seen.result?.citations.length, 2);
  });

  test("OpenAI's url_citation annotations become citations", async () => {
    const { server, model } = await serve([
      [
        { frame: chunk({ content: 'See the docs.' }) },
        { frame: chunk({ annotations: [{ type: 'url_citation', url_citation: { url: 'https://docs.example/a', title: 'A', start_index: 0, end_index: 3 } }] }) },
        { frame: chunk({}, 'stop') },
        { done: true },
      ],
    ]);
    await using _ = server;
    const { action, seen } = assistant(model);
    const events = await eventsOf(executorWith([action]), callFor('action_assistant'));
    // The citation came after the last text: it is sent in a chunk of its own before the end.
    const last = only(events, 'chunk').at(-1);
    assert.deepEqual(last?.citations, [{ position: 1, url: 'https://docs.example/a', title: 'A' }]);
    assert.equal(last?.text, undefined);
    // No usage frame: the usage is estimated, and says so.
    assert.equal(seen.result?.usage.estimated, true);
    assert.ok((seen.result?.usage.outputTokens ?? 0) > 0);
  });

  test('a server that cannot stream (stream: false): the answer is one chunk', async () => {
    const { server } = await serve([
      {
        json: {
          id: 'chatcmpl-1',
          object: 'chat.completion',
          created: 1,
          model: 'test-model',
          choices: [{ index: 0, message: { role: 'assistant', content: 'All at once.' }, finish_reason: 'stop' }],
          usage: { prompt_tokens: 9, completion_tokens: 3, total_tokens: 12 },
        },
      },
    ]);
    await using _ = server;
    const model = new OpenAIChatModel({ baseURL: server.baseURL, model: 'test-model', maxRetries: 0, stream: false });
    assert.equal(model.supportsStreaming, false);
    const { action, seen } = assistant(model);
    const events = await eventsOf(executorWith([action]), callFor('action_assistant'));
    assert.deepEqual(
      only(events, 'chunk').map((c) => c.text),
      ['All at once.'],
    );
    assert.equal(server.exchanges[0]?.body.stream, undefined);
    assert.deepEqual(seen.result?.usage, { inputTokens: 9, outputTokens: 3, totalTokens: 12 });
  });

  test('name and description say which model answers, never the key', () => {
    const model = new OpenAIChatModel({ baseURL: 'http://user:pw@127.0.0.1:11434/v1?token=x', apiKey: 'sk-secret', model: 'llama3.1' });
    assert.equal(model.name, 'llama3.1');
    assert.match(model.description, /llama3\.1 at http:\/\/127\.0\.0\.1:11434\/v1/);
    assert.doesNotMatch(model.description, /sk-secret|pw|token/);
  });
});

describe('OpenAI-compatible adapter: failures', () => {
  async function failing(script: Script, idleTimeoutMs?: number) {
    const { server, model } = await serve([script]);
    const logger = capturingLogger();
    const { action, seen } = assistant(model, idleTimeoutMs === undefined ? { logger } : { idleTimeoutMs, logger });
    const executor = executorWith([action], { logger });
    const events = await eventsOf(executor, callFor('action_assistant'));
    return { server, events, seen, logger };
  }

  test('an error frame mid-stream: partial text stays delivered, the message ends with error, the run ends in a clear error', async () => {
    const { server, events, seen } = await failing([
      { frame: chunk({ content: 'Partial ' }) },
      { frame: chunk({ content: 'answer' }) },
      { frame: { error: { message: 'upstream overloaded at 10.0.0.7', type: 'server_error' } } },
    ]);
    await using _ = server;
    assert.deepEqual(types(events), ['run-start', 'status', 'stream-start', 'chunk', 'chunk', 'stream-end', 'error', 'run-end']);
    assert.equal(chunkText(events), 'Partial answer');
    assert.equal(only(events, 'stream-end')[0]?.reason, 'error');
    const error = only(events, 'error')[0];
    assert.equal(error?.code, 'unavailable');
    assert.equal(error?.reason, 'model_stream_error');
    assert.doesNotMatch(JSON.stringify(events), /10\.0\.0\.7|overloaded/);
    assert.equal(only(events, 'run-end')[0]?.reason, 'error');
    assert.ok(SluiceError.isInstance(seen.error));
    assert.equal((seen.error as SluiceError).details.text, 'Partial answer');
    assert.ok((seen.error as SluiceError).details.usage);
  });

  test('a connection dropped mid-stream → unavailable', async () => {
    const { server, events } = await failing([{ frame: chunk({ content: 'Half' }) }, { wait: 20 }, { destroy: true }]);
    await using _ = server;
    assert.equal(chunkText(events), 'Half');
    assert.equal(only(events, 'error')[0]?.code, 'unavailable');
  });

  test('a malformed frame → internal, with a safe message', async () => {
    const { server, events } = await failing([{ frame: chunk({ content: 'Hel' }) }, { raw: 'data: {"choices":[{"index":0,"delta":{"content":"lo\n\n' }]);
    await using _ = server;
    assert.equal(chunkText(events), 'Hel');
    const error = only(events, 'error')[0];
    assert.equal(error?.code, 'internal');
    assert.equal(error?.message, 'The model sent a malformed response');
  });

  test('HTTP 429 → resource_exhausted; HTTP 500 → unavailable; the provider body never reaches the wire', async () => {
    for (const [status, code] of [
      [429, 'resource_exhausted'],
      [500, 'unavailable'],
    ] as const) {
      const { server, events, logger } = await failing({ status, body: { error: { message: 'internal host db-7.corp failed', type: 'x' } } });
      await using _ = server;
      const error = only(events, 'error')[0];
      assert.equal(error?.code, code, `status ${status}`);
      assert.doesNotMatch(JSON.stringify(events), /db-7\.corp/);
      assert.equal(only(events, 'stream-start').length, 0);
      // The cause is kept for the logs.
      assert.ok(logger.records.some((r) => r.level === 'warn' && r.obj.err !== undefined));
    }
  });

  test('a stall → timeout after the idle timeout, and the provider request is closed', async () => {
    const { server, events, seen } = await failing([{ frame: chunk({ content: 'Thinking' }) }, { stall: true }], 150);
    await using _ = server;
    assert.equal(chunkText(events), 'Thinking');
    const error = only(events, 'error')[0];
    assert.equal(error?.code, 'timeout');
    assert.equal(error?.reason, 'model_idle_timeout');
    assert.equal(only(events, 'stream-end')[0]?.reason, 'error');
    await within(server.exchanges[0]?.clientClosed as Promise<void>, 2000, 'the server seeing the request closed');
    assert.equal((seen.error as SluiceError).code, 'timeout');
  });

  test('a stream cut off without a finish_reason → unavailable, not a complete-looking partial', async () => {
    const { server, events } = await failing([{ frame: chunk({ content: 'The answer is' }) }, { raw: 'this is not server-sent events\n\n' }, { done: true }]);
    await using _ = server;
    assert.equal(chunkText(events), 'The answer is');
    assert.equal(only(events, 'stream-end')[0]?.reason, 'error');
    const error = only(events, 'error')[0];
    assert.equal(error?.code, 'unavailable');
    assert.equal(error?.reason, 'model_stream_truncated');
  });
});

describe('OpenAI-compatible adapter: barge-in', () => {
  test('an ack closes the provider connection at once; the run ends cancelled with usage so far', async () => {
    const { server, model } = await serve([[{ frame: chunk({ role: 'assistant', content: '' }) }, { frame: chunk({ content: 'One ' }) }, { frame: chunk({ content: 'two ' }) }, { stall: true }]]);
    await using _ = server;
    const usages: { usage: ModelUsage; cancelled: boolean }[] = [];
    const seen: { result?: StreamModelResult } = {};
    const action = defineAction({
      name: 'action_assistant',
      async run(dispatcher) {
        seen.result = await streamModel(dispatcher, model, {
          messages: [{ role: 'user', content: 'Count slowly' }],
          onUsage: (usage, info) => usages.push({ usage, cancelled: info.cancelled }),
        });
        return [slotSet('interrupted', seen.result.cancelled)];
      },
    });
    const executor = executorWith([action]);
    const run = executor.start(callFor('action_assistant'));
    let acked = false;
    const events = await within(
      readRun(run, (e) => {
        if (e.type === 'chunk' && e.text === 'two ' && !acked) acked = executor.ack(e.responseId);
      }),
      3000,
      'the cancelled run ending',
    );
    assert.ok(acked);
    await within(server.exchanges[0]?.clientClosed as Promise<void>, 2000, 'the server seeing the socket closed');

    assert.equal(only(events, 'stream-end')[0]?.reason, 'cancelled');
    assert.equal(only(events, 'run-end')[0]?.reason, 'cancelled');
    assert.deepEqual(only(events, 'result')[0]?.events, [slotSet('interrupted', true)]);
    assert.equal(seen.result?.cancelled, true);
    assert.equal(seen.result?.finishReason, 'aborted');
    assert.equal(seen.result?.text, 'One two ');
    assert.deepEqual(seen.result?.messages, [{ role: 'assistant', content: 'One two ' }]);
    // The provider never sent usage: it is estimated, and reported once.
    assert.equal(seen.result?.usage.estimated, true);
    assert.ok((seen.result?.usage.outputTokens ?? 0) > 0);
    assert.equal(usages.length, 1);
    assert.equal(usages[0]?.cancelled, true);
    assert.equal(executor.activeRuns, 0);
  });

  test('a signal aborted before the call: the provider is never called', async () => {
    const { server, model } = await serve([textScript(['never'])]);
    await using _ = server;
    const controller = new AbortController();
    controller.abort();
    const result = await streamModel(new Dispatcher({ signal: controller.signal }), model, { messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(result.cancelled, true);
    assert.equal(server.exchanges.length, 0);
  });
});
