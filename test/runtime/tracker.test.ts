import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as events from '../../src/runtime/rasa-events.ts';
import { Tracker } from '../../src/runtime/tracker.ts';

const json = {
  sender_id: 'u1',
  slots: { city: 'Paris', empty: null },
  latest_message: {
    text: 'weather in paris',
    intent: { name: 'ask_weather', confidence: 0.9 },
    entities: [
      { entity: 'city', value: 'Paris', role: 'destination' },
      { entity: 'city', value: 'Lyon', role: 'origin' },
    ],
  },
  events: [
    { event: 'user', input_channel: 'old' },
    { event: 'restart' },
    { event: 'user', input_channel: 'rest' },
    { event: 'action', name: 'action_listen' },
  ],
  paused: false,
  followup_action: null,
  active_form: { name: 'booking_form' },
  latest_action_name: 'action_listen',
  stack: [{ frame: 1 }],
};

test('a tracker built from Rasa’s JSON answers like Rasa SDK’s Tracker', () => {
  const t = Tracker.fromJson(json);
  assert.equal(t.senderId, 'u1');
  assert.equal(t.getSlot('city'), 'Paris');
  assert.equal(t.getSlot('empty'), null);
  assert.equal(t.getSlot('unknown'), null);
  assert.deepEqual(t.getLatestEntityValues('city'), ['Paris', 'Lyon']);
  assert.deepEqual(t.getLatestEntityValues('city', 'origin'), ['Lyon']);
  assert.equal(t.getIntentOfLatestMessage(), 'ask_weather');
  assert.equal(t.getLatestInputChannel(), 'rest');
  assert.equal(t.eventsAfterLatestRestart().length, 2);
  assert.equal(t.activeLoopName, 'booking_form'); // legacy active_form
  assert.equal(t.latestActionName, 'action_listen');
  assert.equal(t.isPaused(), false);
  assert.deepEqual(t.stack, [{ frame: 1 }]);
  assert.equal(t.currentState().sender_id, 'u1');
});

test('a minimal tracker has empty defaults', () => {
  const t = Tracker.fromJson({ sender_id: 'x' });
  assert.deepEqual([t.slots, t.events, t.activeLoopName, t.followupAction, t.userId], [{}, [], null, null, null]);
});

test('event helpers produce Rasa’s exact dicts', () => {
  assert.deepEqual(events.slotSet('city', 'Paris'), { event: 'slot', timestamp: null, name: 'city', value: 'Paris' });
  assert.deepEqual(events.followupAction('action_x'), { event: 'followup', timestamp: null, name: 'action_x' });
  assert.deepEqual(events.allSlotsReset(), { event: 'reset_slots', timestamp: null });
  assert.deepEqual(events.restarted(), { event: 'restart', timestamp: null });
  assert.deepEqual(events.activeLoop(null), { event: 'active_loop', timestamp: null, name: null });
  assert.deepEqual(events.botUttered('hi'), { event: 'bot', timestamp: null, text: 'hi', data: null, metadata: null });
  assert.deepEqual(events.userUtteranceReverted(), { event: 'rewind', timestamp: null });
  assert.deepEqual(events.conversationPaused(), { event: 'pause', timestamp: null });
  assert.deepEqual(events.actionExecuted('a'), { event: 'action', name: 'a', policy: null, confidence: null, timestamp: null });
  assert.deepEqual(events.reminderScheduled('remind', new Date('2026-01-01T00:00:00Z'), { name: 'r' }), {
    event: 'reminder',
    timestamp: null,
    intent: 'remind',
    entities: null,
    date_time: '2026-01-01T00:00:00.000Z',
    name: 'r',
    kill_on_user_msg: true,
  });
});
