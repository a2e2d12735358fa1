// The unary RPCs (Webhook on Rasa's replay path, AckStreamChunks, Actions), gRPC health, and the
// request mapping (MessageToDict parity), over a real server and a stock Connect gRPC client.
import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';
import { create } from '@bufbuild/protobuf';
import { Code, ConnectError } from '@connectrpc/connect';
import { actionRejected, defineAction } from '../../../src/runtime/action.ts';
import type { Tracker } from '../../../src/runtime/tracker.ts';
import { slotSet } from '../../../src/runtime/rasa-events.ts';
import { requestToActionCall, statusForError, toJsonValue } from '../../../src/transports/grpc/convert.ts';
import { WebhookRequestSchema } from '../../../src/transports/grpc/gen/action_webhook_pb.ts';
import { HealthCheckResponse_ServingStatus as ServingStatus } from '../../../src/transports/grpc/gen/health_pb.ts';
import { request, startHarness, type Harness } from './helpers.ts';

const utter = (text: string) => ({ text, buttons: [], elements: [], custom: {}, template: null, response: null, image: null, attachment: null });

const streaming = defineAction({
  name: 'action_streaming',
  async run(d) {
    d.utterMessage({ text: 'plain utter' });
    await d.streamStart();
    await d.streamChunk({ text: 'implicit start ' });
    await d.streamChunk({ text: 'Choose:', buttons: [{ title: 'A', payload: '/a' }], json: { k: 'v' }, extra_field: 'kept on replay' });
    await d.streamEnd();
    return [slotSet('done', true)];
  },
});
const boom = defineAction({
  name: 'action_boom',
  run() {
    throw new Error('action exploded');
  },
});
const reject = defineAction({
  name: 'action_reject',
  run() {
    throw actionRejected('action_reject');
  },
});
const hello = defineAction({ name: 'action_hello', run: () => [] });

async function failure(promise: Promise<unknown>): Promise<ConnectError> {
  try {
    await promise;
  } catch (error) {
    return ConnectError.from(error);
  }
  assert.fail('expected the call to fail');
}

describe('Webhook, AckStreamChunks, Actions, Health', () => {
  let h: Harness | null = null;
  afterEach(async () => {
    await h?.close();
    h = null;
  });

  test('Webhook replays each streamed chunk as one whole response (utter_message shape, extra keys kept)', async () => {
    h = await startHarness([streaming]);
    const response = await h.client.webhook(request('action_streaming'));
    assert.deepEqual(response.events, [{ event: 'slot', timestamp: null, name: 'done', value: true }]);
    assert.deepEqual(response.responses, [
      utter('plain utter'),
      utter('implicit start '),
      { ...utter('Choose:'), buttons: [{ title: 'A', payload: '/a' }], custom: { k: 'v' }, extra_field: 'kept on replay' },
    ]);
  });

  test('Webhook: a call that names no action gets an empty response, OK', async () => {
    h = await startHarness([hello]);
    const response = await h.client.webhook({ tracker: { senderId: 'u' } });
    assert.deepEqual([response.events, response.responses], [[], []]);
  });

  for (const c of [
    {
      label: 'an unknown action → NOT_FOUND, resource_type ACTION',
      call: request('action_unknown'),
      code: Code.NotFound,
      details: `{"action_name":"action_unknown","message":"No registered action found for name 'action_unknown'.","resource_type":"ACTION"}`,
    },
    {
      label: 'a missing domain → NOT_FOUND, resource_type DOMAIN',
      call: request('action_hello', { domainDigest: 'stale' }),
      code: Code.NotFound,
      details: /^\{"action_name":"action_hello","message":"Missing domain context, .*","resource_type":"DOMAIN"\}$/,
    },
    {
      label: 'a rejection → INTERNAL with {action_name, message}',
      call: request('action_reject'),
      code: Code.Internal,
      details: `{"action_name":"action_reject","message":"Custom action 'action_reject' rejected execution."}`,
    },
    {
      label: 'an action error → INTERNAL with its message (Rasa: UNKNOWN with grpc-aio\'s text)',
      call: request('action_boom'),
      code: Code.Internal,
      details: 'action exploded',
    },
    {
      label: 'no tracker → INVALID_ARGUMENT naming it (Rasa: a KeyError)',
      call: { nextAction: 'action_hello' },
      code: Code.InvalidArgument,
      details: /tracker: is required/,
    },
  ]) {
    test(`Webhook: ${c.label}`, async () => {
      h = await startHarness([hello, boom, reject]);
      const error = await failure(h.client.webhook(c.call));
      assert.equal(error.code, c.code);
      if (typeof c.details === 'string') assert.equal(error.rawMessage, c.details);
      else assert.match(error.rawMessage, c.details);
    });
  }

  test('Actions lists the registered actions as [{name}] Structs, in registration order', async () => {
    h = await startHarness([streaming, boom, hello]);
    const response = await h.client.actions({});
    assert.deepEqual(response.actions, [{ name: 'action_streaming' }, { name: 'action_boom' }, { name: 'action_hello' }]);
  });

  test('AckStreamChunks always returns Empty', async () => {
    h = await startHarness([hello]);
    const ack = await h.client.ackStreamChunks({ responseId: '' });
    assert.equal(ack.$typeName, 'google.protobuf.Empty');
  });

  test('Health: "" and "ActionServer" are SERVING, another name is NOT_FOUND', async () => {
    h = await startHarness([hello]);
    assert.equal((await h.health.check({ service: '' })).status, ServingStatus.SERVING);
    assert.equal((await h.health.check({ service: 'ActionServer' })).status, ServingStatus.SERVING);
    assert.equal((await failure(h.health.check({ service: 'Other' }))).code, Code.NotFound);
  });

  test('Health Watch: the current status, then NOT_SERVING when the server closes', async () => {
    const harness = await startHarness([hello]);
    const seen: number[] = [];
    let closing: Promise<void> | null = null;
    for await (const response of harness.health.watch({ service: 'ActionServer' })) {
      seen.push(response.status);
      closing ??= harness.server.close();
    }
    await closing;
    assert.deepEqual(seen, [ServingStatus.SERVING, ServingStatus.NOT_SERVING]);
    await harness.close();
  });

  test('the action sees the request as Rasa SDK does: numbers stay numbers, set optionals present, defaults absent', async () => {
    let seen: { tracker: Tracker; domain: unknown } | null = null;
    const capture = defineAction({
      name: 'action_capture',
      run(_d, tracker, domain) {
        seen = { tracker, domain };
        return [];
      },
    });
    h = await startHarness([capture]);
    await h.client.webhook({
      nextAction: 'action_capture',
      tracker: {
        senderId: 'u',
        slots: { n: 3, f: 1.5, s: 'x', none: null, list: [1, 'a', { deep: true }] },
        latestMessage: { text: 'hi', intent: { name: 'greet', confidence: 0.9 } },
        followupAction: '',
        activeLoop: { name: 'form' },
      },
      domain: { config: { store_entities_as_slots: true }, intents: [{ stringValue: 'greet' }] },
    });
    assert.ok(seen !== null);
    const { tracker, domain } = seen as { tracker: Tracker; domain: unknown };
    assert.deepEqual(tracker.slots, { n: 3, f: 1.5, s: 'x', none: null, list: [1, 'a', { deep: true }] });
    assert.equal(tracker.getIntentOfLatestMessage(), 'greet');
    assert.equal(tracker.followupAction, '', 'a set optional field is present even when empty');
    assert.equal(tracker.latestActionName, null, 'an unset optional field is absent');
    assert.equal(tracker.activeLoopName, 'form');
    assert.equal(tracker.paused, false);
    assert.deepEqual(domain, { config: { store_entities_as_slots: true }, intents: [{ string_value: 'greet' }] });
  });
});

describe('request and status mapping', () => {
  test('requestToActionCall matches MessageToDict(preserving_proto_field_name=True)', () => {
    const empty = create(WebhookRequestSchema, {});
    assert.deepEqual(requestToActionCall(empty), {});
    const full = create(WebhookRequestSchema, {
      nextAction: 'a',
      senderId: 's',
      version: '3.17.0',
      domainDigest: '',
      tracker: {
        senderId: 's',
        paused: true,
        events: [{ event: 'action', name: 'action_listen' }],
        stack: [],
        activeLoop: {},
        userId: 'u',
        latestActionName: 'action_listen',
      },
      domain: {
        sessionConfig: {},
        entities: [{ dictValue: { city: { roles: ['from'] } } }],
        actions: [{ stringValue: 'a' }],
        e2eActions: [{ x: 1 }],
        forms: {},
      },
    });
    assert.deepEqual(requestToActionCall(full), {
      next_action: 'a',
      sender_id: 's',
      version: '3.17.0',
      domain_digest: '',
      tracker: {
        sender_id: 's',
        paused: true,
        events: [{ event: 'action', name: 'action_listen' }],
        user_id: 'u',
        latest_action_name: 'action_listen',
      },
      domain: {
        session_config: {},
        entities: [{ dict_value: { city: { roles: ['from'] } } }],
        actions: [{ string_value: 'a' }],
        e2e_actions: [{ x: 1 }],
        forms: {},
      },
    });
    assert.deepEqual(requestToActionCall(create(WebhookRequestSchema, { tracker: {} })), { tracker: {} });
  });

  test('toJsonValue keeps what JSON keeps', () => {
    const input = {
      a: undefined,
      b: [undefined, () => 1, Number.NaN, 2n],
      c: new Date(0),
      d: { toJSON: () => ({ e: 1 }) },
      ['__proto__']: { polluted: true },
    };
    const out = toJsonValue(input) as Record<string, unknown>;
    assert.deepEqual(Object.keys(out).sort(), ['__proto__', 'b', 'c', 'd']);
    assert.deepEqual(out.b, [null, null, null, 2]);
    assert.equal(out.c, '1970-01-01T00:00:00.000Z');
    assert.deepEqual(out.d, { e: 1 });
    assert.equal(Object.getPrototypeOf(out), Object.prototype, 'an own __proto__ key stays data');
  });

  test('statusForError: Rasa\'s three errors, bad input, action errors, other codes', () => {
    assert.deepEqual(statusForError({ code: 'not_found', message: 'm', reason: 'action_not_found', actionName: 'x' }, 'req'), {
      code: Code.NotFound,
      details: '{"action_name":"x","message":"m","resource_type":"ACTION"}',
    });
    assert.deepEqual(statusForError({ code: 'failed_precondition', message: 'm', reason: 'domain_missing' }, 'req'), {
      code: Code.NotFound,
      details: '{"action_name":"req","message":"m","resource_type":"DOMAIN"}',
    });
    assert.deepEqual(statusForError({ code: 'failed_precondition', message: 'm', reason: 'action_rejected', actionName: 'x' }, 'req'), {
      code: Code.Internal,
      details: '{"action_name":"x","message":"m"}',
    });
    assert.deepEqual(statusForError({ code: 'invalid_argument', message: 'bad', reason: 'invalid_body' }, 'req'), {
      code: Code.InvalidArgument,
      details: 'bad',
    });
    assert.deepEqual(statusForError({ code: 'internal', message: 'boom', reason: 'action_failed' }, 'req'), { code: Code.Internal, details: 'boom' });
    assert.deepEqual(statusForError({ code: 'resource_exhausted', message: 'slow' }, 'req'), { code: Code.ResourceExhausted, details: 'slow' });
  });
});
