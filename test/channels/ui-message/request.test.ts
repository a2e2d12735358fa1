/**
 * The chat request (validation naming each problem), the Rasa action call built from it, and the
 * bounded in-memory chat store.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SluiceError } from '../../../src/protocol/errors.ts';
import { parseActionCall } from '../../../src/protocol/schemas.ts';
import { Tracker } from '../../../src/runtime/tracker.ts';
import { historyFromTracker } from '../../../src/models/history.ts';
import { MemoryChatStore, buildActionCall, messageText, parseChatRequest, type UiMessage } from '../../../src/channels/ui-message/index.ts';

function rejects(body: unknown, pattern: RegExp): void {
  assert.throws(
    () => parseChatRequest(body, 100),
    (error: unknown) => SluiceError.isInstance(error) && error.code === 'invalid_argument' && pattern.test(error.message),
  );
}

const user = (text: string, id = 'u'): UiMessage => ({ id, role: 'user', parts: [{ type: 'text', text }] });

describe('parseChatRequest', () => {
  it('accepts the AI SDK body and keeps unknown fields', () => {
    const body = {
      id: 'chat-1',
      trigger: 'submit-message',
      messageId: undefined,
      messages: [{ id: 'm1', role: 'user', parts: [{ type: 'text', text: 'Hi' }, { type: 'file', url: 'data:,x', mediaType: 'text/plain' }], metadata: { a: 1 } }],
    };
    const parsed = parseChatRequest(body, 100);
    assert.equal(parsed.id, 'chat-1');
    assert.deepEqual(parsed.messages, body.messages);
  });

  it('names each problem', () => {
    rejects(null, /body must be a JSON object/);
    rejects([], /body must be a JSON object/);
    rejects({ id: 'c' }, /messages: is required/);
    rejects({ messages: [user('x')] }, /id: is required/);
    rejects({ id: '', messages: [user('x')] }, /^Invalid chat request: id: /);
    rejects({ id: 'c', messages: 'hello' }, /messages: /);
    rejects({ id: 'c', messages: [] }, /messages: /);
    rejects({ id: 'c', messages: [{ id: 'm', role: 'robot', parts: [] }] }, /messages\.0\.role: /);
    rejects({ id: 'c', messages: [{ id: 'm', role: 'user' }] }, /messages\.0\.parts: is required/);
    rejects({ id: 'c', messages: [{ id: 'm', role: 'user', parts: [{ type: 'text', text: 5 }] }] }, /messages\.0\.parts\.0\.text: a text part needs a string `text`/);
    rejects({ id: 7, messages: [user('x')] }, /id: /);
    assert.throws(() => parseChatRequest({ id: 'c', messages: [user('a'), user('b')] }, 1), /messages: /);
  });

  it('gives messages without an id one', () => {
    const parsed = parseChatRequest({ id: 'c', messages: [{ role: 'user', parts: [] }] }, 10);
    assert.equal(parsed.messages[0]?.id, 'c-0');
  });
});

describe('buildActionCall', () => {
  it('builds a valid Rasa call: sender_id = chat id, latest_message = last user text, user/bot events', () => {
    const messages: UiMessage[] = [
      { id: 's', role: 'system', parts: [{ type: 'text', text: 'be nice' }] },
      user('Weather in Paris?', 'u1'),
      {
        id: 'a1',
        role: 'assistant',
        parts: [
          { type: 'text', text: 'Let me check.' },
          { type: 'tool-get_weather', toolCallId: 'c', state: 'output-available', input: {}, output: {} },
          { type: 'text', text: 'Rainy.' },
        ],
      },
      { id: 'a2', role: 'assistant', parts: [{ type: 'data-buttons', data: {} }] },
      user('And Berlin?', 'u2'),
    ];
    const call = buildActionCall('chat-9', messages, { action: 'action_chat' });
    const parsed = parseActionCall(call);
    assert.equal(parsed.next_action, 'action_chat');
    assert.equal(parsed.tracker.sender_id, 'chat-9');
    const tracker = Tracker.fromJson(parsed.tracker);
    assert.equal(tracker.latestMessage.text, 'And Berlin?');
    assert.deepEqual(
      tracker.events.map((e) => [e.event, e.text]),
      [
        ['user', 'Weather in Paris?'],
        ['bot', 'Let me check.\n\nRainy.'],
        ['user', 'And Berlin?'],
      ],
    );
    // The model layer reads it as a normal conversation, the last user message once.
    assert.deepEqual(historyFromTracker(tracker), [
      { role: 'user', content: 'Weather in Paris?' },
      { role: 'assistant', content: 'Let me check.\n\nRainy.' },
      { role: 'user', content: 'And Berlin?' },
    ]);
  });

  it('joins text parts without doubling the whitespace they already have', () => {
    assert.equal(messageText({ parts: [{ type: 'text', text: 'a.' }, { type: 'text', text: '\n\nb' }, { type: 'text', text: 'c' }] }), 'a.\n\nb\n\nc');
  });
});

describe('MemoryChatStore', () => {
  it('keeps the newest messages and evicts the least recently used chat', () => {
    const store = new MemoryChatStore({ maxChats: 2, maxMessages: 2 });
    store.save('a', [user('1', '1'), user('2', '2'), user('3', '3')]);
    assert.deepEqual(store.get('a')?.map((m) => m.id), ['2', '3']);
    store.save('b', [user('x')]);
    store.get('a'); // a is now more recent than b
    store.save('c', [user('y')]);
    assert.equal(store.size, 2);
    assert.equal(store.get('b'), undefined);
    assert.ok(store.get('a') !== undefined && store.get('c') !== undefined);
    const copy = store.get('a')!;
    copy.push(user('mutated'));
    assert.equal(store.get('a')?.length, 2, 'callers get copies');
    assert.throws(() => new MemoryChatStore({ maxChats: 0 }), RangeError);
  });
});
