/**
 * The encoder: every Sluice event type → exact UI message stream parts, framing, block closing on
 * cancel and error, replay-stable ids, and the server-side message assembler against the AI SDK
 * client's own `readUIMessageStream`.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { SluiceEvent } from '../../../src/protocol/events.ts';
import {
  DONE_FRAME,
  UiMessageEncoder,
  assembleMessage,
  parseFrames,
  safeErrorText,
  type UiMessageChunk,
} from '../../../src/channels/ui-message/index.ts';
import { RID, RID2, clientMessage, eventMaker, plain, validateWithAiSdk } from './helpers.ts';

/** Encodes events with a fresh encoder; returns the parts per event, read back from the frames. */
function encodeAll(events: SluiceEvent[], options: ConstructorParameters<typeof UiMessageEncoder>[0] = {}): { text: string; parts: UiMessageChunk[][] } {
  const encoder = new UiMessageEncoder(options);
  let text = '';
  const parts: UiMessageChunk[][] = [];
  for (const event of events) {
    const frames = encoder.encode(event);
    assert.match(frames, /^(data: \{[^\n]*\}\n\n)*$/, 'only `data: <json>\\n\\n` frames');
    text += frames;
    parts.push(parseFrames(frames));
  }
  return { text, parts };
}

describe('UiMessageEncoder: event → parts', () => {
  it('maps a streamed answer: start, text block keyed by the responseId, finish', () => {
    const e = eventMaker('run-a');
    const { parts } = encodeAll([
      e({ type: 'run-start', action: 'action_chat', at: 1 }),
      e({ type: 'status', text: 'Thinking…' }),
      e({ type: 'stream-start', responseId: RID }),
      e({ type: 'chunk', responseId: RID, text: 'Hello ' }),
      e({ type: 'chunk', responseId: RID, text: 'world' }),
      e({ type: 'stream-end', responseId: RID, reason: 'completed' }),
      e({ type: 'result', events: [], responses: [] }),
      e({ type: 'run-end', reason: 'completed' }),
    ]);
    assert.deepEqual(parts, [
      [{ type: 'start', messageId: 'run-a' }],
      [{ type: 'data-status', data: { text: 'Thinking…' }, transient: true }],
      [],
      [
        { type: 'text-start', id: RID },
        { type: 'text-delta', id: RID, delta: 'Hello ' },
      ],
      [{ type: 'text-delta', id: RID, delta: 'world' }],
      [{ type: 'text-end', id: RID }],
      [],
      [{ type: 'finish', finishReason: 'stop' }],
    ]);
  });

  it('writes the exact bytes of a text delta (fast path) and the messageId option', () => {
    const e = eventMaker('run-b');
    const encoder = new UiMessageEncoder({ messageId: 'msg-42' });
    assert.equal(encoder.encode(e({ type: 'run-start', action: 'a', at: 1 })), 'data: {"type":"start","messageId":"msg-42"}\n\n');
    encoder.encode(e({ type: 'stream-start', responseId: RID }));
    assert.equal(
      encoder.encode(e({ type: 'chunk', responseId: RID, text: 'a' })),
      `data: {"type":"text-start","id":"${RID}"}\n\ndata: {"type":"text-delta","id":"${RID}","delta":"a"}\n\n`,
    );
    assert.equal(encoder.encode(e({ type: 'chunk', responseId: RID, text: 'line\n"q"\u2028' })), `data: {"type":"text-delta","id":"${RID}","delta":"line\\n\\"q\\"\u2028"}\n\n`);
    assert.equal(encoder.encode(e({ type: 'chunk', responseId: RID, text: '' })), '', 'an empty text sends nothing');
  });

  it('maps citations to source-url (with a URL) and source-document (without)', () => {
    const e = eventMaker();
    const { parts } = encodeAll([
      e({ type: 'run-start', action: 'a', at: 1 }),
      e({
        type: 'chunk',
        responseId: RID,
        text: 'Open 9–18 [1][2].',
        citations: [
          { position: 1, title: 'Handbook', url: 'https://example.com/h', snippet: 'Mon–Fri' },
          { position: 2, title: 'Store notes', snippet: 'Closed Sundays' },
        ],
      }),
    ]);
    assert.deepEqual(parts[1], [
      { type: 'text-start', id: RID },
      { type: 'text-delta', id: RID, delta: 'Open 9–18 [1][2].' },
      { type: 'source-url', sourceId: `${RID}-src-1`, url: 'https://example.com/h', title: 'Handbook', providerMetadata: { sluice: { position: 1, snippet: 'Mon–Fri' } } },
      { type: 'source-document', sourceId: `${RID}-src-2`, mediaType: 'text/plain', title: 'Store notes', providerMetadata: { sluice: { position: 2, snippet: 'Closed Sundays' } } },
    ]);
  });

  it('maps rich chunk content to data parts with ids, closing the text block first so order is kept', () => {
    const e = eventMaker();
    const { parts } = encodeAll([
      e({ type: 'run-start', action: 'a', at: 1 }),
      e({ type: 'chunk', responseId: RID, text: 'Pick one:' }),
      e({
        type: 'chunk',
        responseId: RID,
        image: 'https://example.com/cat.png',
        buttons: [{ title: 'Yes', payload: '/affirm' }],
        elements: [{ title: 'Card' }],
        attachment: 'https://example.com/a.pdf',
        custom: { kind: 'map', lat: 1 },
      }),
      e({ type: 'chunk', responseId: RID, text: 'Thanks' }),
      e({ type: 'chunk', responseId: RID, custom: { id: 'progress', pct: 50 } }),
      e({ type: 'chunk', responseId: RID, custom: { id: 'progress', pct: 100 } }),
      e({ type: 'stream-end', responseId: RID, reason: 'completed' }),
    ]);
    assert.deepEqual(parts[2], [
      { type: 'text-end', id: RID },
      { type: 'data-image', id: 'image-3', data: { url: 'https://example.com/cat.png' } },
      { type: 'data-buttons', id: 'buttons-3', data: { buttons: [{ title: 'Yes', payload: '/affirm' }] } },
      { type: 'data-elements', id: 'elements-3', data: { elements: [{ title: 'Card' }] } },
      { type: 'data-attachment', id: 'attachment-3', data: { attachment: 'https://example.com/a.pdf' } },
      { type: 'data-custom', id: 'custom-3', data: { kind: 'map', lat: 1 } },
    ]);
    // Text after rich content opens a new block of the same message.
    assert.deepEqual(parts[3], [
      { type: 'text-start', id: `${RID}-1` },
      { type: 'text-delta', id: `${RID}-1`, delta: 'Thanks' },
    ]);
    // A custom payload's own id reconciles (the client replaces the part's data).
    assert.deepEqual(parts[4], [{ type: 'text-end', id: `${RID}-1` }, { type: 'data-custom', id: 'progress', data: { id: 'progress', pct: 50 } }]);
    assert.deepEqual(parts[5], [{ type: 'data-custom', id: 'progress', data: { id: 'progress', pct: 100 } }]);
    assert.deepEqual(parts[6], [], 'no open block left to close');
  });

  it('maps a whole message to a text block (id msg-<seq>) plus its data parts, skipping Rasa empties', () => {
    const e = eventMaker();
    const { parts } = encodeAll([
      e({ type: 'run-start', action: 'a', at: 1 }),
      e({ type: 'chunk', responseId: RID, text: 'streamed' }),
      e({
        type: 'message',
        message: { text: 'Hi!', buttons: [{ title: 'Go', payload: '/go' }], elements: [], custom: {}, image: null, attachment: null, template: null, response: null },
      }),
      e({ type: 'message', message: { text: null, buttons: [], elements: [], custom: { card: 1 }, image: null, attachment: null } }),
    ]);
    assert.deepEqual(parts[2], [
      { type: 'text-end', id: RID },
      { type: 'text-start', id: 'msg-3' },
      { type: 'text-delta', id: 'msg-3', delta: 'Hi!' },
      { type: 'text-end', id: 'msg-3' },
      { type: 'data-buttons', id: 'buttons-3', data: { buttons: [{ title: 'Go', payload: '/go' }] } },
    ]);
    assert.deepEqual(parts[3], [{ type: 'data-custom', id: 'custom-4', data: { card: 1 } }]);
  });

  it('maps tool events to the tool input/output lifecycle, closing the text block first', () => {
    const e = eventMaker();
    const { parts } = encodeAll([
      e({ type: 'run-start', action: 'a', at: 1 }),
      e({ type: 'chunk', responseId: RID, text: 'Checking.' }),
      e({ type: 'tool-start', toolCallId: 'c1', name: 'get_weather' }),
      e({ type: 'tool-delta', toolCallId: 'c1', argsDelta: '{"city":' }),
      e({ type: 'tool-delta', toolCallId: 'c1', argsDelta: '"Paris"}' }),
      e({ type: 'tool-call', toolCallId: 'c1', name: 'get_weather', args: { city: 'Paris' } }),
      e({ type: 'tool-result', toolCallId: 'c1', name: 'get_weather', output: { temperatureC: 14 } }),
      e({ type: 'tool-call', toolCallId: 'c2', name: 'get_weather', args: { city: 'Atlantis' } }),
      e({ type: 'tool-result', toolCallId: 'c2', name: 'get_weather', error: 'No forecast is available for Atlantis' }),
      e({ type: 'tool-result', toolCallId: 'c3', name: 'noop' }),
    ]);
    assert.deepEqual(parts.slice(2), [
      [{ type: 'text-end', id: RID }, { type: 'tool-input-start', toolCallId: 'c1', toolName: 'get_weather' }],
      [{ type: 'tool-input-delta', toolCallId: 'c1', inputTextDelta: '{"city":' }],
      [{ type: 'tool-input-delta', toolCallId: 'c1', inputTextDelta: '"Paris"}' }],
      [{ type: 'tool-input-available', toolCallId: 'c1', toolName: 'get_weather', input: { city: 'Paris' } }],
      [{ type: 'tool-output-available', toolCallId: 'c1', output: { temperatureC: 14 } }],
      // A call announced whole (no tool-start) still gets its start first.
      [
        { type: 'tool-input-start', toolCallId: 'c2', toolName: 'get_weather' },
        { type: 'tool-input-available', toolCallId: 'c2', toolName: 'get_weather', input: { city: 'Atlantis' } },
      ],
      [{ type: 'tool-output-error', toolCallId: 'c2', errorText: 'No forecast is available for Atlantis' }],
      // A result for a call never seen (resume from a trimmed log) is made valid; no output → null.
      [
        { type: 'tool-input-start', toolCallId: 'c3', toolName: 'noop' },
        { type: 'tool-input-available', toolCallId: 'c3', toolName: 'noop', input: null },
        { type: 'tool-output-available', toolCallId: 'c3', output: null },
      ],
    ]);
  });

  it('drops a tool delta for a call that was never started (the client would throw)', () => {
    const e = eventMaker();
    const { parts } = encodeAll([e({ type: 'run-start', action: 'a', at: 1 }), e({ type: 'tool-delta', toolCallId: 'ghost', argsDelta: '{' })]);
    assert.deepEqual(parts[1], []);
  });

  it('on cancel closes every open block (no tool left input-streaming), sends abort with the reason, no finish', () => {
    const e = eventMaker();
    const { parts } = encodeAll(
      [
        e({ type: 'run-start', action: 'a', at: 1 }),
        e({ type: 'chunk', responseId: RID, text: 'Let me ' }),
        e({ type: 'stream-end', responseId: RID, reason: 'cancelled' }),
        e({ type: 'tool-start', toolCallId: 'c1', name: 'get_weather' }),
        e({ type: 'tool-delta', toolCallId: 'c1', argsDelta: '{"ci' }),
        e({ type: 'tool-call', toolCallId: 'c2', name: 'search', args: {} }),
        e({ type: 'chunk', responseId: RID2, text: 'x' }),
        e({ type: 'result', events: [], responses: [] }),
        e({ type: 'run-end', reason: 'cancelled' }),
      ],
      { abortReason: () => 'stop' },
    );
    assert.deepEqual(parts[2], [{ type: 'text-end', id: RID }]);
    assert.deepEqual(parts.at(-1), [
      { type: 'text-end', id: RID2 },
      { type: 'tool-output-error', toolCallId: 'c1', errorText: 'The tool call was cancelled' },
      { type: 'tool-output-error', toolCallId: 'c2', errorText: 'The tool call was cancelled' },
      { type: 'abort', reason: 'stop' },
    ]);
    assert.ok(!parts.flat().some((p) => p.type === 'finish'));
  });

  it('a barge-in timeout ends like a cancel; without a reason the abort part has none', () => {
    const e = eventMaker();
    const encoder = new UiMessageEncoder();
    encoder.encode(e({ type: 'run-start', action: 'a', at: 1 }));
    encoder.encode(e({ type: 'result', events: [], responses: [] }));
    assert.deepEqual(parseFrames(encoder.encode(e({ type: 'run-end', reason: 'timeout' }))), [{ type: 'abort' }]);
    assert.equal(encoder.ended, true);
    assert.equal(encoder.encode(e({ type: 'status', text: 'late' })), '', 'nothing after the end');
  });

  it('on error closes the open blocks, sends a safe error text, then finish with finishReason error', () => {
    const e = eventMaker();
    const { parts } = encodeAll([
      e({ type: 'run-start', action: 'a', at: 1 }),
      e({ type: 'chunk', responseId: RID, text: 'partial' }),
      e({ type: 'tool-start', toolCallId: 'c1', name: 'get_weather' }),
      e({ type: 'error', code: 'internal', message: 'connect ECONNREFUSED 10.0.0.5:5432' }),
      e({ type: 'run-end', reason: 'error' }),
    ]);
    assert.deepEqual(parts[3], [
      { type: 'tool-output-error', toolCallId: 'c1', errorText: 'The tool call did not finish' },
      { type: 'error', errorText: 'An error occurred.' },
    ]);
    assert.deepEqual(parts[4], [{ type: 'finish', finishReason: 'error' }]);
    assert.deepEqual(parts[2]?.[0], { type: 'text-end', id: RID });
  });

  it('shows the message of a public error code, and takes a custom errorText', () => {
    const e = eventMaker();
    const event = e({ type: 'error', code: 'unavailable', message: 'The model is unavailable' }) as Extract<SluiceEvent, { type: 'error' }>;
    assert.equal(safeErrorText(event), 'The model is unavailable');
    const encoder = new UiMessageEncoder({ errorText: (ev) => `Sorry (${ev.code})` });
    assert.deepEqual(parseFrames(encoder.encode(event)), [{ type: 'start', messageId: 'run-1' }, { type: 'error', errorText: 'Sorry (unavailable)' }]);
  });

  it('a stream read from the middle of a run (trimmed log) still opens what it continues', () => {
    const e = eventMaker('run-m');
    const events = [
      e({ type: 'run-start', action: 'a', at: 1 }),
      e({ type: 'stream-start', responseId: RID }),
      e({ type: 'chunk', responseId: RID, text: 'head ' }),
      e({ type: 'chunk', responseId: RID, text: 'tail' }),
      e({ type: 'stream-end', responseId: RID, reason: 'completed' }),
      e({ type: 'result', events: [], responses: [] }),
      e({ type: 'run-end', reason: 'completed' }),
    ];
    const { parts } = encodeAll(events.slice(3));
    assert.deepEqual(parts.flat(), [
      { type: 'start', messageId: 'run-m' },
      { type: 'text-start', id: RID },
      { type: 'text-delta', id: RID, delta: 'tail' },
      { type: 'text-end', id: RID },
      { type: 'finish', finishReason: 'stop' },
    ]);
  });

  it('skips a part JSON cannot encode, telling onEncodingError, and goes on', () => {
    const e = eventMaker();
    const circular: Record<string, unknown> = { name: 'loop' };
    circular.self = circular;
    const failures: string[] = [];
    const encoder = new UiMessageEncoder({ onEncodingError: (_error, part) => failures.push(part.type) });
    encoder.encode(e({ type: 'run-start', action: 'a', at: 1 }));
    const frames = encoder.encode(e({ type: 'chunk', responseId: RID, text: 'ok', custom: circular }));
    assert.deepEqual(failures, ['data-custom']);
    assert.deepEqual(parseFrames(frames).map((p) => p.type), ['text-start', 'text-delta', 'text-end']);
  });

  it('gives the same parts and ids on a replay (ids come from response ids and seqs)', () => {
    const e = eventMaker();
    const events = [
      e({ type: 'run-start', action: 'a', at: 1 }),
      e({ type: 'chunk', responseId: RID, text: 'a', buttons: [{ title: 'b' }] }),
      e({ type: 'chunk', responseId: RID, text: 'c' }),
      e({ type: 'message', message: { text: 'm' } }),
    ];
    assert.equal(encodeAll(events).text, encodeAll(events).text);
  });

  it('encode() and parts() agree for every event, fast path included', () => {
    const e = eventMaker();
    const events = [
      e({ type: 'run-start', action: 'a', at: 1 }),
      e({ type: 'stream-start', responseId: RID }),
      e({ type: 'chunk', responseId: RID, text: 'x' }),
      e({ type: 'chunk', responseId: RID, text: 'y' }),
      e({ type: 'chunk', responseId: RID, text: 'z', citations: [{ url: 'https://e.com' }] }),
      e({ type: 'stream-end', responseId: RID, reason: 'completed' }),
      e({ type: 'result', events: [], responses: [] }),
      e({ type: 'run-end', reason: 'completed' }),
    ];
    const a = new UiMessageEncoder();
    const b = new UiMessageEncoder();
    for (const event of events) assert.deepEqual(parseFrames(a.encode(event)), b.parts(event));
  });

  it('the AI SDK accepts every part Sluice produces, and builds the same message as the server assembler', async () => {
    const e = eventMaker('run-z');
    const events = [
      e({ type: 'run-start', action: 'a', at: 1 }),
      e({ type: 'status', text: 'Thinking…' }),
      e({ type: 'stream-start', responseId: RID }),
      e({ type: 'chunk', responseId: RID, text: 'Checking ', citations: [{ position: 1, title: 'T', url: 'https://e.com/t' }, { position: 2, title: 'Doc' }] }),
      e({ type: 'tool-start', toolCallId: 'c1', name: 'get_weather' }),
      e({ type: 'tool-delta', toolCallId: 'c1', argsDelta: '{"city":"Paris"}' }),
      e({ type: 'tool-call', toolCallId: 'c1', name: 'get_weather', args: { city: 'Paris' } }),
      e({ type: 'tool-result', toolCallId: 'c1', name: 'get_weather', output: { temperatureC: 14 } }),
      e({ type: 'tool-call', toolCallId: 'c2', name: 'get_weather', args: { city: 'X' } }),
      e({ type: 'tool-result', toolCallId: 'c2', name: 'get_weather', error: 'No forecast' }),
      e({ type: 'chunk', responseId: RID, text: 'Rainy.' }),
      e({ type: 'chunk', responseId: RID, image: 'https://e.com/i.png', buttons: [{ title: 'More', payload: '/more' }] }),
      e({ type: 'chunk', responseId: RID, custom: { id: 'card', v: 1 } }),
      e({ type: 'chunk', responseId: RID, custom: { id: 'card', v: 2 }, elements: [{ a: 1 }], attachment: 'https://e.com/f.pdf' }),
      e({ type: 'stream-end', responseId: RID, reason: 'completed' }),
      e({ type: 'message', message: { text: 'Bye', buttons: [{ title: 'x' }], custom: {}, elements: [], image: null } }),
      e({ type: 'result', events: [], responses: [] }),
      e({ type: 'run-end', reason: 'completed' }),
    ];
    const { text } = encodeAll(events);
    const chunks = await validateWithAiSdk(text + DONE_FRAME);
    const client = await clientMessage(chunks as never);
    const server = assembleMessage(events);
    assert.equal(client.id, 'run-z');
    assert.equal(server.id, 'run-z');
    assert.deepEqual(plain(server.parts), plain(client.parts));
    assert.deepEqual(server.metadata, { sluice: { runId: 'run-z', status: 'completed' } });
    assert.deepEqual(
      client.parts.map((p) => p.type),
      ['text', 'source-url', 'source-document', 'tool-get_weather', 'tool-get_weather', 'text', 'data-image', 'data-buttons', 'data-custom', 'data-elements', 'data-attachment', 'text', 'data-buttons'],
    );
  });

  it('the AI SDK accepts the parts of cancelled and failed runs', async () => {
    for (const end of ['cancelled', 'error'] as const) {
      const e = eventMaker();
      const events = [
        e({ type: 'run-start', action: 'a', at: 1 }),
        e({ type: 'chunk', responseId: RID, text: 'Let me ' }),
        e({ type: 'tool-start', toolCallId: 'c1', name: 'get_weather' }),
        e({ type: 'tool-delta', toolCallId: 'c1', argsDelta: '{"ci' }),
        ...(end === 'error' ? [e({ type: 'error', code: 'internal', message: 'boom' })] : [e({ type: 'result', events: [], responses: [] })]),
        e({ type: 'run-end', reason: end }),
      ];
      const chunks = await validateWithAiSdk(encodeAll(events, { abortReason: () => 'stop' }).text + DONE_FRAME);
      assert.equal(chunks.at(-1)?.type, end === 'error' ? 'finish' : 'abort');
      const server = assembleMessage(events);
      const tool = server.parts.find((p) => p.type === 'tool-get_weather');
      assert.equal(tool?.state, 'output-error', 'no dangling input-streaming tool');
      assert.equal((server.metadata as { sluice: { status: string } }).sluice.status, end);
    }
  });

  it('assembleMessage closes a live run when asked (a stop that cannot wait for the end)', () => {
    const e = eventMaker('run-s');
    const events = [
      e({ type: 'run-start', action: 'a', at: 1 }),
      e({ type: 'chunk', responseId: RID, text: 'half an ans' }),
      e({ type: 'tool-start', toolCallId: 'c1', name: 't' }),
    ];
    const live = assembleMessage(events);
    assert.deepEqual(live.parts[0], { type: 'text', text: 'half an ans', state: 'done' });
    assert.equal(live.parts[1]?.state, 'input-streaming');
    assert.deepEqual(live.metadata, { sluice: { runId: 'run-s', status: 'streaming' } });
    const stopped = assembleMessage(events, { close: 'cancelled' });
    assert.deepEqual(stopped.parts[1], { type: 'tool-t', toolCallId: 'c1', state: 'output-error', errorText: 'The tool call was cancelled' });
    assert.deepEqual(stopped.metadata, { sluice: { runId: 'run-s', status: 'cancelled' } });
  });
});
