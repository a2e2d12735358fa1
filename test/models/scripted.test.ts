// ScriptedModel on its own: deterministic answers by keyword, citations before the text, tool
// calls with arguments in several deltas, exact usage, injected pacing, and an immediate stop.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ScriptedModel, scriptTokens, type Delay } from '../../src/models/scripted.ts';
import type { ChatMessage, ModelDelta, ModelRequest } from '../../src/models/types.ts';
import { weatherParams } from './helpers.ts';

const never = new AbortController().signal;

async function collect(model: ScriptedModel, request: Partial<ModelRequest> & { messages: ChatMessage[] }): Promise<ModelDelta[]> {
  const out: ModelDelta[] = [];
  for await (const d of model.stream({ signal: never, ...request })) out.push(d);
  return out;
}

const ask = (text: string): ChatMessage[] => [{ role: 'user', content: text }];
const textOf = (deltas: ModelDelta[]): string => deltas.map((d) => (d.type === 'text' ? d.text : '')).join('');
const weatherTool = { name: 'get_weather', description: 'Weather', parameters: weatherParams };

describe('ScriptedModel', () => {
  test('picks the answer by keywords of the last user message', async () => {
    const model = ScriptedModel.instant();
    assert.match(textOf(await collect(model, { messages: ask('When are you open on Saturday?') })), /Saturday from 10:00 to 16:00/);
    assert.match(textOf(await collect(model, { messages: ask('Tell me a story') })), /^Once upon a time/);
    assert.match(textOf(await collect(model, { messages: ask('What is Sluice?') })), /^Sluice is a TypeScript framework/);
    assert.match(textOf(await collect(model, { messages: ask('hi there') })), /^Hello!/);
    assert.match(textOf(await collect(model, { messages: ask('Explain quantum chromodynamics') })), /scripted model running offline/);
    // Whole words only: "this" does not contain the greeting "hi".
    assert.doesNotMatch(textOf(await collect(model, { messages: ask('this and that') })), /^Hello!/);
    // The last user message counts, not earlier ones.
    const history: ChatMessage[] = [...ask('Tell me a story'), { role: 'assistant', content: 'Once…' }, ...ask('and your opening hours?')];
    assert.match(textOf(await collect(model, { messages: history })), /We are open/);
  });

  test('knowledge answers send their citations first, in a text-less delta', async () => {
    const deltas = await collect(ScriptedModel.instant(), { messages: ask('What are your opening hours?') });
    assert.equal(deltas[0]?.type, 'citations');
    assert.ok(deltas[0]?.type === 'citations' && deltas[0].citations[0]?.position === 1);
    assert.match(textOf(deltas), /\[1\]/);
    assert.deepEqual(deltas.at(-1), { type: 'finish', reason: 'stop' });
  });

  test('weather with the tool offered: a preamble, then one call per city with arguments in several deltas', async () => {
    const deltas = await collect(ScriptedModel.instant(), { messages: ask("What's the weather in Paris and Tokyo?"), tools: [weatherTool] });
    assert.equal(textOf(deltas), 'Let me check the weather in Paris and Tokyo.');
    const ends = deltas.filter((d) => d.type === 'tool-end');
    assert.deepEqual(
      ends.map((d) => d.type === 'tool-end' && [d.name, JSON.parse(d.arguments)]),
      [
        ['get_weather', { city: 'Paris' }],
        ['get_weather', { city: 'Tokyo' }],
      ],
    );
    const first = ends[0];
    assert.ok(first?.type === 'tool-end');
    const pieces = deltas.filter((d) => d.type === 'tool-delta' && d.id === first.id);
    assert.ok(pieces.length >= 3, `${pieces.length} deltas`);
    assert.equal(pieces.map((d) => (d.type === 'tool-delta' ? d.argsDelta : '')).join(''), first.arguments);
    assert.deepEqual(deltas.at(-1), { type: 'finish', reason: 'tool-calls' });
  });

  test('weather answers from the tool result, or says the tool failed', async () => {
    const model = ScriptedModel.instant();
    const asked: ChatMessage[] = [
      ...ask('weather in Paris?'),
      { role: 'assistant', content: null, toolCalls: [{ id: 'c1', name: 'get_weather', arguments: '{"city":"Paris"}' }] },
    ];
    const ok = await collect(model, { messages: [...asked, { role: 'tool', toolCallId: 'c1', name: 'get_weather', content: '{"city":"Paris","conditions":"foggy","temperatureC":7}' }], tools: [weatherTool] });
    assert.equal(textOf(ok), 'In Paris it is foggy, around 7 °C.');
    const failed = await collect(model, { messages: [...asked, { role: 'tool', toolCallId: 'c1', name: 'get_weather', content: '{"error":"Tool \'get_weather\' failed"}' }], tools: [weatherTool] });
    assert.match(textOf(failed), /couldn't get that from get_weather/);
  });

  test("weather without the tool (or with toolChoice 'none'): answers from its table, with citations; no city → asks", async () => {
    const model = ScriptedModel.instant();
    for (const request of [{ messages: ask('Is it raining in Berlin?') }, { messages: ask('Is it raining in Berlin?'), tools: [weatherTool], toolChoice: 'none' as const }]) {
      const deltas = await collect(model, request);
      assert.equal(deltas.filter((d) => d.type === 'tool-start').length, 0);
      assert.match(textOf(deltas), /^In Berlin it is cloudy with a cold east wind, around 9 °C \[1\]\.$/);
      assert.equal(deltas[0]?.type, 'citations');
    }
    assert.match(textOf(await collect(model, { messages: ask('What is the weather like?'), tools: [weatherTool] })), /^Which city/);
  });

  test('usage is exact: input and output tokens as the script counts them', async () => {
    const messages = ask('Tell me a story please');
    const deltas = await collect(ScriptedModel.instant(), { messages });
    const usage = deltas.find((d) => d.type === 'usage');
    const outputTokens = deltas.filter((d) => d.type === 'text').length;
    assert.deepEqual(usage, { type: 'usage', usage: { inputTokens: 5, outputTokens, totalTokens: 5 + outputTokens } });
  });

  test('pacing goes through the injected delay: first-token delay, then 1000/tps per token with jitter', async () => {
    const waits: number[] = [];
    const delay: Delay = async (ms) => {
      waits.push(ms);
    };
    const model = new ScriptedModel({ firstTokenDelayMs: 300, tokensPerSecond: 50, jitter: 0.5, random: () => 1, delay });
    const deltas = await collect(model, { messages: ask('hello') });
    const tokens = deltas.filter((d) => d.type === 'text').length;
    assert.equal(waits[0], 300);
    assert.equal(waits.length, 1 + tokens);
    // random() = 1 → the slowest jitter: 20 ms × 1.5.
    assert.ok(waits.slice(1).every((w) => Math.abs(w - 30) < 1e-9), waits.join(','));
  });

  test('an abort stops it at once and reports the usage so far', async () => {
    const controller = new AbortController();
    const model = ScriptedModel.instant();
    const out: ModelDelta[] = [];
    for await (const d of model.stream({ messages: ask('Tell me a story'), signal: controller.signal })) {
      out.push(d);
      if (out.filter((x) => x.type === 'text').length === 3) controller.abort();
    }
    assert.equal(out.filter((d) => d.type === 'text').length, 3);
    assert.deepEqual(out.slice(-2), [
      { type: 'usage', usage: { inputTokens: 4, outputTokens: 3, totalTokens: 7 } },
      { type: 'finish', reason: 'aborted' },
    ]);
  });

  test('an abort during the first-token delay ends it without text', async () => {
    const controller = new AbortController();
    const model = new ScriptedModel({ firstTokenDelayMs: 60_000 });
    const started = Date.now();
    setTimeout(() => controller.abort(), 10);
    const out: ModelDelta[] = [];
    for await (const d of model.stream({ messages: ask('hello'), signal: controller.signal })) out.push(d);
    assert.ok(Date.now() - started < 1000);
    assert.deepEqual(
      out.map((d) => d.type),
      ['usage', 'finish'],
    );
  });

  test('streaming: false answers in one text delta and says it cannot stream', async () => {
    const model = ScriptedModel.instant({ streaming: false });
    assert.equal(model.supportsStreaming, false);
    const deltas = await collect(model, { messages: ask('tell me a story') });
    assert.equal(deltas.filter((d) => d.type === 'text').length, 1);
  });

  test('scriptTokens joins back to the exact text', () => {
    for (const text of ['', 'one', ' lead', 'two  spaces\nand\ttabs ', 'end. ', '¡Hola, señor!  你好 世界']) {
      assert.equal(scriptTokens(text).join(''), text);
    }
  });
});
