/**
 * Issue 14, defect 5 on the AI SDK chat: a message with metadata nested 10,000 deep used to be
 * stored, and from then on `GET /api/chat/:id/messages` answered 500. It is a 400 naming the limit,
 * nothing is stored, and the chat reads back.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { json, postJson, startChatServer } from './helpers.ts';

describe('AI SDK chat: nesting depth', () => {
  it('metadata nested 10,000 deep: 400 naming the limit, never stored', async () => {
    const server = await startChatServer();
    try {
      const body = JSON.stringify({ id: 'deep-chat', messages: [{ id: 'm1', role: 'user', parts: [{ type: 'text', text: 'hi' }], metadata: 'DEEP' }] }).replace(
        '"DEEP"',
        '{"a":'.repeat(10_000) + '1' + '}'.repeat(10_000),
      );
      const res = await postJson(server.api, body);
      assert.equal(res.status, 400);
      assert.match(res.body.error, /nested too deeply: the limit is 64 levels/);
      const messages = await json(`${server.api}/deep-chat/messages`);
      assert.ok(messages.status === 200 || messages.status === 404, `GET messages: ${messages.status}`);
      assert.notEqual(messages.status, 500);
    } finally {
      await server.close();
    }
  });
});
