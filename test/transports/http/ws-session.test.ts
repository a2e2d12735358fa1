/**
 * WsSession's sentence view against a socket whose send buffer the test controls: a barge-in
 * that lands while sentences wait for room stops them all, including ones already cut.
 */

import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { WebSocket } from 'ws';
import { defineAction } from '../../../src/runtime/action.ts';
import { ActionExecutor } from '../../../src/runtime/executor.ts';
import { silentLogger } from '../../../src/runtime/logger.ts';
import { slotSet } from '../../../src/runtime/rasa-events.ts';
import type { HttpContext } from '../../../src/transports/http/context.ts';
import { resolveSseOptions, resolveWsOptions } from '../../../src/transports/http/options.ts';
import { WsSession } from '../../../src/transports/http/ws-session.ts';
import { assertSettled, call, waitFor } from './fixtures.ts';

/** Just enough of a `ws` socket: it records frames and reports the `bufferedAmount` it is told. */
class FakeSocket extends EventEmitter {
  readyState: number = WebSocket.OPEN;
  bufferedAmount = 0;
  readonly sent: any[] = [];
  /** Called after each frame, to change `bufferedAmount` as a real socket would. */
  onSend: (message: any) => void = () => {};

  send(data: string): void {
    const message = JSON.parse(data);
    this.sent.push(message);
    this.onSend(message);
  }

  receive(message: unknown): void {
    this.emit('message', Buffer.from(JSON.stringify(message)), false);
  }

  ping(): void {}
  terminate(): void {
    this.readyState = WebSocket.CLOSED;
    this.emit('close');
  }
}

describe('WsSession, sentence view', () => {
  it('a barge-in while sentences wait for room stops them all; result and run-end still go out', async () => {
    const executor = new ActionExecutor({
      logger: silentLogger,
      bargeInTimeoutSeconds: 0.5,
      actions: [
        defineAction({
          name: 'action_burst',
          async *stream({ signal }) {
            // One chunk cuts three sentences at once; the fourth is still open.
            yield 'First one. Second one. Third one. Fourth';
            await sleep(5000, undefined, { signal }).catch(() => {});
            return [slotSet('interrupted', signal.aborted)];
          },
        }),
      ],
    });
    const ctx: HttpContext = {
      executor,
      logger: silentLogger,
      sse: resolveSseOptions(),
      ws: resolveWsOptions({ highWaterMark: 1024 }, 1024 * 1024),
      maxDepth: 64,
      writers: new Set(),
    };
    const socket = new FakeSocket();
    // The first sentence fills the buffer: the next ones wait for room.
    socket.onSend = (message) => {
      if (message.type === 'sentence') socket.bufferedAmount = 10_000;
    };
    const session = new WsSession(socket as unknown as WebSocket, ctx);
    socket.receive({ type: 'start', id: 'b', call: call('action_burst'), view: 'sentences' });
    await waitFor(() => socket.sent.some((m) => m.type === 'sentence'), 3000, 'the first sentence');
    await sleep(30);
    assert.deepEqual(socket.sent.map((m) => m.type), ['started', 'sentence'], 'the others wait for room');

    const { responseId } = socket.sent[1];
    socket.receive({ type: 'ack', responseId });
    assert.deepEqual(socket.sent.at(-1), { type: 'acked', responseId, acknowledged: true });
    socket.bufferedAmount = 0;
    await waitFor(() => socket.sent.some((m) => m.type === 'run-end'), 3000, 'run-end');
    assert.deepEqual(socket.sent.map((m) => m.type), ['started', 'sentence', 'acked', 'result', 'run-end']);
    assert.deepEqual(socket.sent[3].events, [{ event: 'slot', timestamp: null, name: 'interrupted', value: true }]);
    assert.equal(socket.sent[4].reason, 'cancelled');
    await waitFor(() => session.reading === 0, 1000, 'the reader to be released');
    socket.terminate();
    await assertSettled(executor);
    await executor.close();
  });
});
