/**
 * The conformance scenarios: one action each, the call that runs it, and the outcome every wire
 * must reproduce, stated once in Sluice's terms. `expectations.ts` maps each outcome to a wire.
 */

import { actionRejected, defineAction, endStream, status, type ActionDefinition } from '../../src/runtime/action.ts';
import { slotSet } from '../../src/runtime/rasa-events.ts';

/** A chunk as a streaming Sluice reader receives it (without `type`, `runId`, `seq`, `responseId`). */
export type ChunkPayload = Record<string, unknown>;
/** Events and whole responses, as a result carries them. */
export interface ResultShape {
  events: Record<string, unknown>[];
  responses: Record<string, unknown>[];
  /** Set when the call named no action. */
  skipped?: true;
}

/** How a client interrupts the scenario once it received the first chunk (barge-in). */
export type BargeIn = 'honoured' | 'ignored' | 'hangs';

/** What every wire must reproduce, in Sluice's terms. */
export interface AbstractOutcome {
  /**
   * The events a streaming reader receives, as `type`, or `type:reason` for `stream-end` and
   * `run-end`. Wires without a place for an event leave it out (see `expectations.ts`).
   */
  sequence: string[];
  /** Chunk payloads a streaming reader receives, in order. */
  chunks: ChunkPayload[];
  /** Streamed messages (distinct response ids) a streaming reader receives. */
  streams: number;
  /** The result on the streaming path: whole messages only, streamed chunks never. Absent on error. */
  result?: ResultShape;
  /**
   * The result on the non-streaming path (Rasa's `/webhook`, unary `Webhook`, `executor.run`
   * without a sink), where each chunk is replayed as one `utter_message` response. `null`: the call
   * named no action. Barge-in scenarios: what `executor.run` resolves to once its signal aborted.
   */
  unary?: ResultShape | null;
  /** The run's failure. */
  error?: { code: string; reason: string; message: string; actionName: string };
}

export interface Scenario {
  name: string;
  /** The Rasa action call (JSON) for a given sender. */
  call(sender: string): Record<string, unknown>;
  bargeIn?: BargeIn;
  expect: AbstractOutcome;
}

/** The barge-in timeout the conformance executor runs with, in seconds. */
export const BARGE_IN_TIMEOUT_SECONDS = 0.2;
export const MANY_CHUNKS = 10_000;

const MISSING_DOMAIN =
  'Missing domain context, assistant will retry the request and include the domain in the request payload. For more information please see https://rasa.com/docs/action-server/';

// ---------------------------------------------------------------------------------------------
// The probe: how barge-in actions and the wires coordinate without guessing at timing.

interface Deferred {
  promise: Promise<void>;
  resolve: () => void;
}

interface ProbeEntry {
  reached: Deferred;
  aborted: Deferred;
  gate: Deferred;
  sawCancel: boolean | undefined;
}

/** Per sender id: the action reached its interruption point, saw its signal abort, may go on. */
export class Probe {
  #entries = new Map<string, ProbeEntry>();

  #entry(sender: string): ProbeEntry {
    let entry = this.#entries.get(sender);
    if (entry === undefined) {
      entry = { reached: Promise.withResolvers(), aborted: Promise.withResolvers(), gate: Promise.withResolvers(), sawCancel: undefined };
      this.#entries.set(sender, entry);
    }
    return entry;
  }

  /** Called by an action once its first chunk is out. */
  reached(sender: string): void {
    this.#entry(sender).reached.resolve();
  }

  /** Marks `sender` aborted when `signal` aborts. */
  watch(sender: string, signal: AbortSignal): void {
    const entry = this.#entry(sender);
    if (signal.aborted) entry.aborted.resolve();
    else signal.addEventListener('abort', () => entry.aborted.resolve(), { once: true });
  }

  /** Records whether the action saw its stream cancelled. */
  sawCancel(sender: string, value: boolean): void {
    this.#entry(sender).sawCancel = value;
  }

  /** Whether the action saw its stream cancelled (undefined: it never got that far). */
  actionSawCancel(sender: string): boolean | undefined {
    return this.#entries.get(sender)?.sawCancel;
  }

  whenReached(sender: string, ms = 5_000): Promise<void> {
    return within(this.#entry(sender).reached.promise, ms, `the action of ${sender} to emit its first chunk`);
  }

  whenAborted(sender: string, ms = 5_000): Promise<void> {
    return within(this.#entry(sender).aborted.promise, ms, `the action of ${sender} to see its signal abort`);
  }

  /** Lets a gated action go on. */
  open(sender: string): void {
    this.#entry(sender).gate.resolve();
  }

  /** Resolves once the test opens the gate (or after `ms`, so a broken test cannot hang an action for good). */
  gate(sender: string, ms = 5_000): Promise<void> {
    return Promise.race([this.#entry(sender).gate.promise, new Promise<void>((resolve) => setTimeout(resolve, ms).unref())]);
  }
}

function within(promise: Promise<void>, ms: number, what: string): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Resolves when `signal` aborts, or after `ms` (the timer goes with the abort). */
function untilAborted(signal: AbortSignal, ms: number): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(timer);
      resolve();
    }, { once: true });
  });
}

// ---------------------------------------------------------------------------------------------
// The actions.

const BUTTONS = [
  { title: 'Yes', payload: '/affirm' },
  { title: 'No', payload: '/deny' },
];
const RICH = {
  text: 'Choose:',
  buttons: BUTTONS,
  json: { kind: 'card', n: 2 },
  image: 'https://example.com/a.png',
  attachment: 'https://example.com/a.pdf',
  elements: [{ title: 'Element 1' }],
  citations: [{ position: 1, title: 'Source', url: 'https://example.com/source' }],
  extra_field: 'kept where the wire has room',
};

/** The scenario actions, reporting to `probe`. */
export function createActions(probe: Probe): ActionDefinition[] {
  return [
    defineAction({
      name: 'action_plain',
      run(dispatcher) {
        dispatcher.utterMessage({ text: 'Hello' });
        return [slotSet('greeted', true)];
      },
    }),
    defineAction({
      name: 'action_stream_text',
      async *stream() {
        yield status('Thinking…');
        yield 'Hello ';
        yield 'world';
        return [slotSet('streamed', true)];
      },
    }),
    defineAction({
      name: 'action_rich',
      async run(dispatcher) {
        await dispatcher.streamStart();
        await dispatcher.streamChunk(RICH);
        await dispatcher.streamChunk({ image: 'https://example.com/b.png' });
        await dispatcher.streamEnd();
        return [];
      },
    }),
    defineAction({
      name: 'action_forgot_end',
      async run(dispatcher) {
        await dispatcher.streamStart();
        await dispatcher.streamChunk({ text: 'Hello' });
        await dispatcher.streamChunk({ buttons: BUTTONS });
        return [slotSet('forgot', true)];
      },
    }),
    defineAction({
      name: 'action_two_streams',
      async *stream() {
        yield 'first';
        yield endStream();
        yield 'second';
        return [];
      },
    }),
    defineAction({
      name: 'action_boom',
      async run(dispatcher) {
        await dispatcher.streamStart();
        await dispatcher.streamChunk({ text: 'before boom' });
        throw new Error('action exploded');
      },
    }),
    // Waits for the interruption, sees it, and returns early with its events.
    defineAction({
      name: 'action_honour',
      async run(dispatcher, tracker, _domain, { signal }) {
        const sender = tracker.senderId;
        probe.watch(sender, signal);
        await dispatcher.streamStart();
        await dispatcher.streamChunk({ text: 'delivered' });
        probe.reached(sender);
        await untilAborted(signal, 5_000);
        probe.sawCancel(sender, dispatcher.isStreamingCancelled);
        if (dispatcher.isStreamingCancelled) return [slotSet('interrupted', true)];
        await dispatcher.streamChunk({ text: ' and the rest' });
        await dispatcher.streamEnd();
        return [slotSet('interrupted', false)];
      },
    }),
    // Does not look at the cancel: goes on streaming (dropped) once the test lets it, then returns.
    defineAction({
      name: 'action_ignore',
      async run(dispatcher, tracker, _domain, { signal }) {
        const sender = tracker.senderId;
        probe.watch(sender, signal);
        await dispatcher.streamStart();
        await dispatcher.streamChunk({ text: 'delivered' });
        probe.reached(sender);
        await probe.gate(sender);
        await dispatcher.streamChunk({ text: ' late 1' });
        await dispatcher.streamChunk({ text: ' late 2' });
        await dispatcher.streamEnd();
        probe.sawCancel(sender, dispatcher.isStreamingCancelled);
        return [slotSet('finished', true)];
      },
    }),
    // Sees the interruption, then never returns: the barge-in timeout must end the run.
    defineAction({
      name: 'action_hang',
      async run(dispatcher, tracker, _domain, { signal }) {
        const sender = tracker.senderId;
        probe.watch(sender, signal);
        await dispatcher.streamStart();
        await dispatcher.streamChunk({ text: 'delivered' });
        probe.reached(sender);
        await untilAborted(signal, 5_000);
        probe.sawCancel(sender, dispatcher.isStreamingCancelled);
        // No timer behind it: an abandoned action must not keep the process alive.
        await new Promise<never>(() => {});
        return [];
      },
    }),
    defineAction({
      name: 'action_many',
      async *stream() {
        for (let i = 0; i < MANY_CHUNKS; i++) yield `${i} `;
        return [slotSet('count', MANY_CHUNKS)];
      },
    }),
    // Returns at once with its 100 chunks unread: the run ends before a slow reader catches up.
    defineAction({
      name: 'action_quick',
      async *stream() {
        for (let i = 0; i < 100; i++) yield `${i} `;
        return [];
      },
    }),
    defineAction({
      name: 'action_reject',
      run() {
        throw actionRejected('action_reject');
      },
    }),
  ];
}

// ---------------------------------------------------------------------------------------------
// Calls and expected outcomes.

/** A Rasa action call; `name: null` names no action. The domain is sent unless `domain: null`. */
export function actionCall(
  name: string | null,
  sender: string,
  options: { domain?: Record<string, unknown> | null; domainDigest?: string } = {},
): Record<string, unknown> {
  const call: Record<string, unknown> = {
    sender_id: sender,
    tracker: { sender_id: sender, slots: {}, latest_message: { text: 'hi' }, events: [], paused: false },
    version: '3.17.0',
  };
  if (name !== null) call.next_action = name;
  const domain = options.domain === undefined ? { config: { store_entities_as_slots: true } } : options.domain;
  if (domain !== null) call.domain = domain;
  if (options.domainDigest !== undefined) call.domain_digest = options.domainDigest;
  return call;
}

/** `rasa_sdk`'s `utter_message` dict for a message or a replayed chunk (`custom` is the chunk's json). */
export function utter(message: Record<string, unknown>): Record<string, unknown> {
  const { text, buttons, elements, custom, image, attachment, ...extra } = message;
  return {
    text: text ?? null,
    buttons: buttons ?? [],
    elements: elements ?? [],
    custom: custom ?? {},
    template: null,
    response: null,
    image: image ?? null,
    attachment: attachment ?? null,
    ...extra,
  };
}

const slot = (name: string, value: unknown) => ({ event: 'slot', timestamp: null, name, value });
const times = (token: string, n: number): string[] => Array.from({ length: n }, () => token);

const { json: richCustom, ...richRest } = RICH;
const RICH_CHUNK: ChunkPayload = { ...richRest, custom: richCustom };
const manyChunks = Array.from({ length: MANY_CHUNKS }, (_, i) => ({ text: `${i} ` }));

/** The sequence of a one-stream barge-in: the chunk the reader saw, its end, the result. */
const bargedIn = (endReason: string): string[] => ['run-start', 'stream-start', 'chunk', 'stream-end:cancelled', 'result', `run-end:${endReason}`];

export const SCENARIOS: Scenario[] = [
  {
    name: 'plain utter',
    call: (sender) => actionCall('action_plain', sender),
    expect: {
      sequence: ['run-start', 'message', 'result', 'run-end:completed'],
      chunks: [],
      streams: 0,
      result: { events: [slot('greeted', true)], responses: [utter({ text: 'Hello' })] },
      unary: { events: [slot('greeted', true)], responses: [utter({ text: 'Hello' })] },
    },
  },
  {
    name: 'streaming text',
    call: (sender) => actionCall('action_stream_text', sender),
    expect: {
      sequence: ['run-start', 'status', 'stream-start', 'chunk', 'chunk', 'stream-end:completed', 'result', 'run-end:completed'],
      chunks: [{ text: 'Hello ' }, { text: 'world' }],
      streams: 1,
      result: { events: [slot('streamed', true)], responses: [] },
      unary: { events: [slot('streamed', true)], responses: [utter({ text: 'Hello ' }), utter({ text: 'world' })] },
    },
  },
  {
    name: 'rich chunks',
    call: (sender) => actionCall('action_rich', sender),
    expect: {
      sequence: ['run-start', 'stream-start', 'chunk', 'chunk', 'stream-end:completed', 'result', 'run-end:completed'],
      chunks: [RICH_CHUNK, { image: 'https://example.com/b.png' }],
      streams: 1,
      result: { events: [], responses: [] },
      unary: { events: [], responses: [utter(RICH_CHUNK), utter({ image: 'https://example.com/b.png' })] },
    },
  },
  {
    name: 'forgotten end',
    call: (sender) => actionCall('action_forgot_end', sender),
    expect: {
      sequence: ['run-start', 'stream-start', 'chunk', 'chunk', 'stream-end:auto-closed', 'result', 'run-end:completed'],
      chunks: [{ text: 'Hello' }, { buttons: BUTTONS }],
      streams: 1,
      result: { events: [slot('forgot', true)], responses: [] },
      unary: { events: [slot('forgot', true)], responses: [utter({ text: 'Hello' }), utter({ buttons: BUTTONS })] },
    },
  },
  {
    name: 'two streams',
    call: (sender) => actionCall('action_two_streams', sender),
    expect: {
      sequence: [
        'run-start',
        'stream-start',
        'chunk',
        'stream-end:completed',
        'stream-start',
        'chunk',
        'stream-end:completed',
        'result',
        'run-end:completed',
      ],
      chunks: [{ text: 'first' }, { text: 'second' }],
      streams: 2,
      result: { events: [], responses: [] },
      unary: { events: [], responses: [utter({ text: 'first' }), utter({ text: 'second' })] },
    },
  },
  {
    name: 'throws mid-stream',
    call: (sender) => actionCall('action_boom', sender),
    expect: {
      sequence: ['run-start', 'stream-start', 'chunk', 'stream-end:error', 'error', 'run-end:error'],
      chunks: [{ text: 'before boom' }],
      streams: 1,
      error: { code: 'internal', reason: 'action_failed', message: 'action exploded', actionName: 'action_boom' },
    },
  },
  {
    name: 'cancel honoured',
    call: (sender) => actionCall('action_honour', sender),
    bargeIn: 'honoured',
    expect: {
      sequence: bargedIn('cancelled'),
      chunks: [{ text: 'delivered' }],
      streams: 1,
      result: { events: [slot('interrupted', true)], responses: [] },
      unary: { events: [slot('interrupted', true)], responses: [utter({ text: 'delivered' })] },
    },
  },
  {
    name: 'cancel ignored',
    call: (sender) => actionCall('action_ignore', sender),
    bargeIn: 'ignored',
    expect: {
      sequence: bargedIn('cancelled'),
      chunks: [{ text: 'delivered' }],
      streams: 1,
      result: { events: [slot('finished', true)], responses: [] },
      unary: { events: [slot('finished', true)], responses: [utter({ text: 'delivered' })] },
    },
  },
  {
    name: 'hangs after ack',
    call: (sender) => actionCall('action_hang', sender),
    bargeIn: 'hangs',
    expect: {
      sequence: bargedIn('timeout'),
      chunks: [{ text: 'delivered' }],
      streams: 1,
      result: { events: [], responses: [] },
      unary: { events: [], responses: [] },
    },
  },
  {
    name: '10,000 chunks',
    call: (sender) => actionCall('action_many', sender),
    expect: {
      sequence: ['run-start', 'stream-start', ...times('chunk', MANY_CHUNKS), 'stream-end:completed', 'result', 'run-end:completed'],
      chunks: manyChunks,
      streams: 1,
      result: { events: [slot('count', MANY_CHUNKS)], responses: [] },
      unary: { events: [slot('count', MANY_CHUNKS)], responses: manyChunks.map(utter) },
    },
  },
  {
    name: 'no next_action',
    call: (sender) => actionCall(null, sender),
    expect: {
      sequence: ['run-start', 'result', 'run-end:completed'],
      chunks: [],
      streams: 0,
      result: { events: [], responses: [], skipped: true },
      unary: null,
    },
  },
  {
    name: 'unknown action',
    call: (sender) => actionCall('action_nope', sender),
    expect: {
      sequence: ['run-start', 'error', 'run-end:error'],
      chunks: [],
      streams: 0,
      error: {
        code: 'not_found',
        reason: 'action_not_found',
        message: "No registered action found for name 'action_nope'.",
        actionName: 'action_nope',
      },
    },
  },
  {
    name: 'missing domain',
    // No domain, and a digest the server never stored: Rasa's "send the domain again".
    call: (sender) => actionCall('action_plain', sender, { domain: null, domainDigest: 'stale-digest' }),
    expect: {
      sequence: ['run-start', 'error', 'run-end:error'],
      chunks: [],
      streams: 0,
      error: { code: 'failed_precondition', reason: 'domain_missing', message: MISSING_DOMAIN, actionName: 'action_plain' },
    },
  },
  {
    name: 'rejects execution',
    call: (sender) => actionCall('action_reject', sender),
    expect: {
      sequence: ['run-start', 'error', 'run-end:error'],
      chunks: [],
      streams: 0,
      error: {
        code: 'failed_precondition',
        reason: 'action_rejected',
        message: "Custom action 'action_reject' rejected execution.",
        actionName: 'action_reject',
      },
    },
  },
];
