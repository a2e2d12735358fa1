// The AI SDK adapter with the `ai` package's own mock LanguageModel (ai/test): text, tool calls
// through streamModel's loop, sources as citations, usage, provider errors, and abort reaching
// the provider's doStream signal.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { LanguageModelV4CallOptions, LanguageModelV4StreamPart } from '@ai-sdk/provider';
import { MockLanguageModelV4, convertArrayToReadableStream } from 'ai/test';
import { AiSdkChatModel, toModelMessages } from '../../src/models/ai-sdk.ts';
import { streamModel, type StreamModelResult } from '../../src/models/stream-model.ts';
import { defineAction } from '../../src/runtime/action.ts';
import { slotSet } from '../../src/runtime/rasa-events.ts';
import { callFor, chunkText, eventsOf, executorWith, only, readRun, types, weatherParams, within } from './helpers.ts';

const usage = (input: number, output: number) => ({
  inputTokens: { total: input, noCache: input, cacheRead: 0, cacheWrite: 0 },
  outputTokens: { total: output, text: output, reasoning: 0 },
});
const finish = (unified: 'stop' | 'tool-calls', input: number, output: number): LanguageModelV4StreamPart => ({
  type: 'finish',
  finishReason: { unified, raw: unified },
  usage: usage(input, output),
});
const text = (id: string, pieces: string[]): LanguageModelV4StreamPart[] => [
  { type: 'text-start', id },
  ...pieces.map((delta): LanguageModelV4StreamPart => ({ type: 'text-delta', id, delta })),
  { type: 'text-end', id },
];

function assistantWith(model: AiSdkChatModel, withTool = false) {
  const seen: { result?: StreamModelResult } = {};
  const action = defineAction({
    name: 'action_assistant',
    async run(dispatcher, tracker) {
      seen.result = await streamModel(dispatcher, model, {
        messages: [
          { role: 'system', content: 'Be brief.' },
          { role: 'user', content: String(tracker.latestMessage.text) },
        ],
        ...(withTool
          ? { tools: [{ name: 'get_weather', description: 'Weather for a city', parameters: weatherParams, execute: ({ city }: { city: string }) => ({ city, conditions: 'windy', temperatureC: 8 }) }] }
          : {}),
      });
      return [slotSet('done', true)];
    },
  });
  return { action, seen };
}

describe('AI SDK adapter', () => {
  test('text deltas become chunks; sources become citations on the next chunk; usage from finish', async () => {
    const mock = new MockLanguageModelV4({
      modelId: 'mock-1',
      doStream: {
        stream: convertArrayToReadableStream<LanguageModelV4StreamPart>([
          { type: 'stream-start', warnings: [] },
          { type: 'source', sourceType: 'url', id: 's1', url: 'https://docs.example/a', title: 'Doc A' },
          ...text('t1', ['Hello', ' from', ' the SDK [1].']),
          finish('stop', 12, 5),
        ]),
      },
    });
    const model = new AiSdkChatModel(mock, { maxRetries: 0 });
    assert.equal(model.name, 'mock-provider:mock-1');
    const { action, seen } = assistantWith(model);
    const events = await eventsOf(executorWith([action]), callFor('action_assistant', 'hi'));
    assert.deepEqual(types(events), ['run-start', 'stream-start', 'chunk', 'chunk', 'chunk', 'stream-end', 'result', 'run-end']);
    assert.equal(chunkText(events), 'Hello from the SDK [1].');
    assert.deepEqual(only(events, 'chunk')[0]?.citations, [{ position: 1, url: 'https://docs.example/a', title: 'Doc A' }]);
    assert.deepEqual(seen.result?.usage, { inputTokens: 12, outputTokens: 5, totalTokens: 17, cachedInputTokens: 0, reasoningTokens: 0 });
    assert.equal(seen.result?.finishReason, 'stop');
    // The prompt reached the provider, system message included.
    const prompt = mock.doStreamCalls[0]?.prompt;
    assert.equal(prompt?.[0]?.role, 'system');
    assert.equal(prompt?.[1]?.role, 'user');
  });

  test('tool calls: streamed input, executed by streamModel, result sent back on the next call', async () => {
    let calls = 0;
    const mock = new MockLanguageModelV4({
      doStream: async () => {
        calls++;
        const parts: LanguageModelV4StreamPart[] =
          calls === 1
            ? [
                { type: 'tool-input-start', id: 'tc1', toolName: 'get_weather' },
                { type: 'tool-input-delta', id: 'tc1', delta: '{"city"' },
                { type: 'tool-input-delta', id: 'tc1', delta: ':"Oslo"}' },
                { type: 'tool-input-end', id: 'tc1' },
                { type: 'tool-call', toolCallId: 'tc1', toolName: 'get_weather', input: '{"city":"Oslo"}' },
                finish('tool-calls', 20, 8),
              ]
            : [...text('t2', ['Windy in Oslo.']), finish('stop', 40, 4)];
        return { stream: convertArrayToReadableStream(parts) };
      },
    });
    const { action, seen } = assistantWith(new AiSdkChatModel(mock, { maxRetries: 0 }), true);
    const events = await eventsOf(executorWith([action]), callFor('action_assistant', 'Weather in Oslo?'));
    assert.deepEqual(
      types(events).filter((t) => t.startsWith('tool-')),
      ['tool-start', 'tool-delta', 'tool-delta', 'tool-call', 'tool-result'],
    );
    assert.deepEqual(only(events, 'tool-call')[0]?.args, { city: 'Oslo' });
    assert.deepEqual(only(events, 'tool-result')[0]?.output, { city: 'Oslo', conditions: 'windy', temperatureC: 8 });
    assert.equal(chunkText(events), 'Windy in Oslo.');
    assert.equal(mock.doStreamCalls.length, 2);
    assert.deepEqual(
      mock.doStreamCalls[0]?.tools?.map((t) => t.name),
      ['get_weather'],
    );
    const second = mock.doStreamCalls[1]?.prompt ?? [];
    const toolMessage = second.find((m) => m.role === 'tool');
    const result = toolMessage?.content[0];
    assert.ok(result?.type === 'tool-result');
    assert.equal(result.toolCallId, 'tc1');
    assert.deepEqual(result.output, { type: 'json', value: { city: 'Oslo', conditions: 'windy', temperatureC: 8 } });
    assert.deepEqual(seen.result?.usage, { inputTokens: 60, outputTokens: 12, totalTokens: 72, cachedInputTokens: 0, reasoningTokens: 0 });
  });

  test('a provider error part → unavailable error event, partial text kept', async () => {
    const mock = new MockLanguageModelV4({
      doStream: {
        stream: convertArrayToReadableStream<LanguageModelV4StreamPart>([
          { type: 'text-start', id: 't' },
          { type: 'text-delta', id: 't', delta: 'Partial' },
          { type: 'error', error: new Error('socket hang up at 10.1.2.3') },
        ]),
      },
    });
    const { action } = assistantWith(new AiSdkChatModel(mock, { maxRetries: 0 }));
    const events = await eventsOf(executorWith([action]), callFor('action_assistant'));
    assert.equal(chunkText(events), 'Partial');
    assert.equal(only(events, 'stream-end')[0]?.reason, 'error');
    assert.equal(only(events, 'error')[0]?.code, 'unavailable');
    assert.doesNotMatch(JSON.stringify(events), /10\.1\.2\.3/);
  });

  test("barge-in aborts the provider's doStream signal and the run ends cancelled", async () => {
    let signal: AbortSignal | undefined;
    const mock = new MockLanguageModelV4({
      doStream: async (options: LanguageModelV4CallOptions) => {
        signal = options.abortSignal;
        const stream = new ReadableStream<LanguageModelV4StreamPart>({
          start(controller) {
            controller.enqueue({ type: 'text-start', id: 't' });
            controller.enqueue({ type: 'text-delta', id: 't', delta: 'Once ' });
            controller.enqueue({ type: 'text-delta', id: 't', delta: 'upon ' });
            // Then nothing, like a slow model, until the request is aborted.
            options.abortSignal?.addEventListener('abort', () => controller.error(options.abortSignal?.reason), { once: true });
          },
        });
        return { stream };
      },
    });
    const { action, seen } = assistantWith(new AiSdkChatModel(mock, { maxRetries: 0 }));
    const executor = executorWith([action]);
    const run = executor.start(callFor('action_assistant'));
    const events = await within(
      readRun(run, (e) => {
        if (e.type === 'chunk' && e.text === 'upon ') executor.ack(e.responseId);
      }),
      3000,
      'the cancelled run ending',
    );
    assert.equal(signal?.aborted, true);
    assert.equal(only(events, 'run-end')[0]?.reason, 'cancelled');
    assert.equal(seen.result?.cancelled, true);
    assert.equal(seen.result?.text, 'Once upon ');
    assert.equal(seen.result?.usage.estimated, true);
  });

  test('toModelMessages: tool calls and results in the AI SDK shape', () => {
    assert.deepEqual(
      toModelMessages([
        { role: 'assistant', content: 'Checking.', toolCalls: [{ id: 'c1', name: 'get_weather', arguments: '{"city":"Rome"}' }] },
        { role: 'tool', toolCallId: 'c1', name: 'get_weather', content: '{"error":"Tool \'get_weather\' failed"}' },
      ]),
      [
        {
          role: 'assistant',
          content: [
            { type: 'text', text: 'Checking.' },
            { type: 'tool-call', toolCallId: 'c1', toolName: 'get_weather', input: { city: 'Rome' } },
          ],
        },
        { role: 'tool', content: [{ type: 'tool-result', toolCallId: 'c1', toolName: 'get_weather', output: { type: 'error-text', value: "Tool 'get_weather' failed" } }] },
      ],
    );
  });
});
