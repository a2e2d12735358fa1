/**
 * Pacing and coalescing with an injected clock: ≤ 1 send per interval, one pending update at
 * most, no lost text, no overlap, no trailing sleep; the clock and the pacer on their own.
 */

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { silentLogger } from '../../../src/runtime/logger.ts';
import {
  BotConnectorSender,
  BotFrameworkStream,
  ManualClock,
  Pacer,
  backoffDelay,
  type Activity,
  type ActivitySender,
  type SendResult,
} from '../../../src/channels/botframework/index.ts';
import { FakeConnector, MemorySender, assertPaced, assertRate } from './fixtures.ts';

function open(clock: ManualClock, intervalMs = 1000): { sender: MemorySender; stream: BotFrameworkStream } {
  const sender = new MemorySender(clock);
  return { sender, stream: new BotFrameworkStream(sender, { clock, intervalMs, logger: silentLogger }) };
}

/** Every streaming update starts with the text of the one before (the service checks it). */
function assertCumulative(activities: Activity[]): void {
  let previous = '';
  for (const a of activities) {
    if (a.type !== 'typing' || a.channelData?.streamType !== 'streaming') continue;
    assert.ok(a.text!.startsWith(previous), `update "${a.text!.slice(0, 40)}…" drops earlier text`);
    assert.notEqual(a.text, previous, 'an update repeats the previous text');
    previous = a.text!;
  }
}

describe('pacing', () => {
  it('12 synchronous chunks: the first goes at once, the rest together one interval later', async () => {
    const clock = new ManualClock();
    const { sender, stream } = open(clock);
    for (let i = 0; i < 12; i++) stream.queueTextChunk(`c${i} `);
    assert.equal(sender.sent.length, 1, 'the first send starts synchronously');
    assert.equal(sender.sent[0]!.activity.text, 'c0 ');
    await clock.advance(999);
    assert.equal(sender.sent.length, 1, 'nothing before the interval');
    await clock.advance(1);
    assert.equal(sender.sent.length, 2);
    assert.equal(sender.sent[1]!.activity.text, Array.from({ length: 12 }, (_, i) => `c${i} `).join(''));
    assert.equal(sender.sent[1]!.at, 1000);
    await clock.run(stream.endStream());
    assert.equal(sender.sent.length, 3);
  });

  it('10,000 chunks over 60 s: ≤ 1 send/s, all text delivered, cumulative updates', async () => {
    const clock = new ManualClock();
    const { sender, stream } = open(clock);
    sender.latencyMs = 120;
    let expected = '';
    for (let i = 0; i < 10_000; i++) {
      const piece = `w${i} `;
      expected += piece;
      stream.queueTextChunk(piece);
      if (i % 10 === 9) await clock.advance(60);
    }
    const result = await clock.run(stream.endStream());
    const times = sender.sent.map((s) => s.at);
    assertPaced(times, 1000);
    assertRate(times, 1, 1000);
    assert.ok(sender.sent.length <= 62, `${sender.sent.length} sends for 60 s`);
    assert.ok(sender.sent.length >= 58, `${sender.sent.length} sends: the stream keeps up with the interval`);
    assertCumulative(sender.activities());
    const final = sender.activities().at(-1)!;
    assert.equal(final.type, 'message');
    assert.equal(final.text, expected, 'no text lost');
    assert.equal(result.outcome, 'completed');
    assert.equal(result.updatesSent, sender.sent.length - 1);
  });

  it('a send slower than the interval: the next starts only after it returns', async () => {
    const clock = new ManualClock();
    const { sender, stream } = open(clock, 1000);
    sender.latencyMs = 2500;
    for (let i = 0; i < 100; i++) {
      stream.queueTextChunk(`x${i} `);
      await clock.advance(100);
    }
    await clock.run(stream.endStream());
    assertPaced(sender.sent.map((s) => s.at), 2500);
    assertCumulative(sender.activities());
  });

  it('at most one update is pending: informative updates replace each other', async () => {
    const clock = new ManualClock();
    const { sender, stream } = open(clock);
    stream.queueInformativeUpdate('one');
    stream.queueInformativeUpdate('two');
    stream.queueInformativeUpdate('three');
    await clock.advance(1000);
    assert.deepEqual(
      sender.activities().map((a) => a.text),
      ['one', 'three'],
    );
    await clock.run(stream.endStream());
  });

  it('informative updates are dropped once text exists, and a pending one gives way to text', async () => {
    const clock = new ManualClock();
    const { sender, stream } = open(clock);
    stream.queueInformativeUpdate('Searching…');
    stream.queueInformativeUpdate('Reading…');
    stream.queueTextChunk('Answer');
    stream.queueInformativeUpdate('Late status');
    await clock.run(stream.endStream());
    assert.deepEqual(
      sender.activities().map((a) => [a.type, a.channelData!.streamType, a.text]),
      [
        ['typing', 'informative', 'Searching…'],
        ['message', 'final', 'Answer'],
      ],
    );
  });

  it('the final message waits for its slot, and endStream resolves as soon as it is sent', async () => {
    const clock = new ManualClock();
    const { sender, stream } = open(clock);
    stream.queueTextChunk('a');
    await clock.advance(300);
    let resolvedAt = -1;
    void stream.endStream().then(() => (resolvedAt = clock.now()));
    await clock.advance(699);
    assert.equal(sender.sent.length, 1);
    await clock.advance(1);
    assert.equal(sender.sent.length, 2);
    assert.equal(resolvedAt, 1000, 'no sleep after the final message');
  });

  it('an update that would repeat the last text is not sent', async () => {
    const clock = new ManualClock();
    const { sender, stream } = open(clock);
    stream.queueTextChunk('See ');
    stream.queueTextChunk('[doc');
    await clock.advance(1000);
    assert.equal(sender.sent.length, 1, 'a half marker alone is held back: nothing new to send');
    stream.queueTextChunk('1] here');
    await clock.advance(1000);
    await clock.run(stream.endStream());
    assert.deepEqual(
      sender.activities().map((a) => a.text),
      ['See ', 'See [1] here', 'See [1] here'],
    );
  });

  it('over real HTTP: sends reach the service ≤ 1/s (clock time) and every word arrives', async () => {
    const clock = new ManualClock();
    const fake = await FakeConnector.start({ clock });
    try {
      let inFlight = 0;
      const rest = new BotConnectorSender({ serviceUrl: fake.url, conversationId: 'pace', conversationType: 'personal', token: 't' });
      // Counts requests in flight so the test advances the clock only between them.
      const sender: ActivitySender = {
        conversationType: 'personal',
        async send(activity): Promise<SendResult> {
          inFlight++;
          try {
            return await rest.send(activity);
          } finally {
            inFlight--;
          }
        },
      };
      const stream = new BotFrameworkStream(sender, { clock, logger: silentLogger });
      const settle = async (): Promise<void> => {
        while (inFlight > 0) await new Promise((r) => setTimeout(r, 1));
      };
      let expected = '';
      for (let i = 0; i < 300; i++) {
        expected += `t${i} `;
        stream.queueTextChunk(`t${i} `);
        await settle();
        await clock.advance(100);
      }
      const ending = stream.endStream();
      while (fake.received.length === 0 || fake.received.at(-1)!.activity.type !== 'message') {
        await settle();
        await clock.advance(100);
      }
      await ending;
      fake.assertClean();
      const times = fake.received.map((r) => r.at);
      assertRate(times, 1, 1000);
      assertPaced(times, 1000);
      assert.ok(fake.received.length >= 29 && fake.received.length <= 32, `${fake.received.length} requests for 30 s`);
      assert.equal(fake.received.at(-1)!.activity.text, expected);
    } finally {
      await fake.close();
    }
  });
});

describe('ManualClock', () => {
  it('wakes sleepers in time order, and sleeps scheduled on the way fire in the same advance', async () => {
    const clock = new ManualClock(100);
    const log: string[] = [];
    void clock.sleep(50).then(() => log.push(`a@${clock.now()}`));
    void clock.sleep(10).then(async () => {
      log.push(`b@${clock.now()}`);
      await clock.sleep(15);
      log.push(`c@${clock.now()}`);
    });
    await clock.advance(100);
    assert.deepEqual(log, ['b@110', 'c@125', 'a@150']);
    assert.equal(clock.now(), 200);
    assert.equal(clock.pending, 0);
  });

  it('an aborted sleep resolves at once and is forgotten', async () => {
    const clock = new ManualClock();
    const controller = new AbortController();
    let done = false;
    void clock.sleep(1000, controller.signal).then(() => (done = true));
    assert.equal(clock.pending, 1);
    controller.abort();
    await Promise.resolve();
    assert.ok(done);
    assert.equal(clock.pending, 0);
  });
});

describe('Pacer', () => {
  it('collapses requests, spaces jobs, honours deferUntil, and builds each job at its slot', async () => {
    const clock = new ManualClock();
    let value = 0;
    const runs: [number, number][] = [];
    const pacer = new Pacer(
      () => {
        const seen = value;
        return async () => {
          runs.push([clock.now(), seen]);
        };
      },
      { clock, intervalMs: 500 },
    );
    value = 1;
    pacer.request();
    value = 2;
    pacer.request();
    value = 3;
    pacer.request();
    await clock.advance(500);
    assert.deepEqual(runs, [
      [0, 1],
      [500, 3],
    ]);
    pacer.deferUntil(2000);
    value = 4;
    pacer.request();
    await clock.advance(1000);
    assert.equal(runs.length, 2, 'deferred');
    await clock.advance(500);
    assert.deepEqual(runs.at(-1), [2000, 4]);
    await pacer.idle();
    assert.equal(pacer.running, false);
  });

  it('close() abandons a waiting send', async () => {
    const clock = new ManualClock();
    let jobs = 0;
    const pacer = new Pacer(() => async () => void jobs++, { clock, intervalMs: 1000 });
    pacer.request();
    pacer.request();
    pacer.close();
    await pacer.idle();
    await clock.advance(5000);
    assert.equal(jobs, 1);
    assert.equal(clock.pending, 0);
  });

  it('back-off doubles and is capped', () => {
    assert.deepEqual([1, 2, 3, 4, 5, 6].map((n) => backoffDelay(n, 1000, 10_000)), [1000, 2000, 4000, 8000, 10_000, 10_000]);
  });
});
