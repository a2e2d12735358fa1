/**
 * What was heard: `spokenText` for each kind of playback report, and the bounded store.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SluiceError } from '../../../src/protocol/errors.ts';
import { VoiceHistoryStore, parsePlayed, spokenText, type HistorySentence, type VoiceHistoryEntry } from '../../../src/channels/voice/history.ts';

const S: HistorySentence[] = [
  { index: 0, text: 'First sentence. ', audio: 'complete', audioStartMs: 0, audioMs: 1000 },
  { index: 1, text: 'Second one is longer. ', audio: 'complete', audioStartMs: 1000, audioMs: 2000 },
  { index: 2, text: 'Third never played. ', audio: 'none', audioStartMs: 0, audioMs: 0 },
];

describe('spokenText', () => {
  it('without a report: every sentence whose audio started, in full; never one without audio', () => {
    assert.equal(spokenText(S), 'First sentence. Second one is longer. ');
  });
  it('{ sentence }: that sentence and the ones before (ACE granularity), capped at audio that started', () => {
    assert.equal(spokenText(S, { sentence: 0 }), 'First sentence. ');
    assert.equal(spokenText(S, { sentence: 2 }), 'First sentence. Second one is longer. ');
  });
  it('{ chars }: a prefix of the played sentences, never beyond them', () => {
    assert.equal(spokenText(S, { chars: 22 }), 'First sentence. Second');
    assert.equal(spokenText(S, { chars: 10_000 }), 'First sentence. Second one is longer. ');
    assert.equal(spokenText(S, { chars: 0 }), '');
  });
  it('{ ms }: whole sentences before the position, then whole words of the one playing', () => {
    assert.equal(spokenText(S, { ms: 500 }), 'First ');
    assert.equal(spokenText(S, { ms: 1000 }), 'First sentence. ');
    assert.equal(spokenText(S, { ms: 2000 }), 'First sentence. Second one ');
    assert.equal(spokenText(S, { ms: 60_000 }), 'First sentence. Second one is longer. ');
    assert.equal(spokenText(S, { ms: 0 }), '');
  });
  it('skips a sentence the engine failed on; a sentence cut short is estimated from its text', () => {
    const failed: HistorySentence[] = [
      { index: 0, text: 'Spoken. ', audio: 'complete', audioStartMs: 0, audioMs: 500 },
      { index: 1, text: 'Failed. ', audio: 'failed', audioStartMs: 0, audioMs: 0 },
      { index: 2, text: 'Also spoken. ', audio: 'complete', audioStartMs: 500, audioMs: 800 },
    ];
    assert.equal(spokenText(failed), 'Spoken. Also spoken. ');
    const cut: HistorySentence[] = [{ index: 0, text: 'A sentence whose audio was cut short by the barge in. ', audio: 'started', audioStartMs: 0, audioMs: 300 }];
    assert.ok(spokenText(cut, { ms: 10_000 }).length < 20, 'not the whole sentence: only ~300 ms of it was ever sent');
  });
  it('parsePlayed validates the report', () => {
    assert.deepEqual(parsePlayed({ ms: 12.5 }), { ms: 12.5 });
    for (const bad of [null, 3, {}, { chars: -1 }, { chars: 1.5 }, { sentence: 'x' }, { ms: 1, chars: 2 }, { seconds: 3 }]) {
      assert.throws(() => parsePlayed(bad), (e: unknown) => SluiceError.isInstance(e) && e.code === 'invalid_argument', JSON.stringify(bad));
    }
  });
});

describe('VoiceHistoryStore', () => {
  const entry = (id: string, sessionId = 's', runId = 'r'): VoiceHistoryEntry => ({
    id, sessionId, runId, kind: 'say', createdAt: 0, generated: '', spoken: '', interrupted: false, reason: 'completed', sentences: [],
  });
  it('keeps at most maxEntries, newest first; replaces by id', () => {
    const store = new VoiceHistoryStore({ maxEntries: 2 });
    store.put(entry('a'));
    store.put(entry('b', 't'));
    store.put(entry('c'));
    assert.equal(store.size, 2);
    assert.equal(store.get('a'), undefined);
    assert.deepEqual(store.list().map((e) => e.id), ['c', 'b']);
    assert.deepEqual(store.list({ sessionId: 't' }).map((e) => e.id), ['b']);
    store.put({ ...entry('b', 't'), spoken: 'x' });
    assert.equal(store.get('b')?.spoken, 'x');
    assert.equal(store.list({ limit: 1 }).length, 1);
  });
  it('rejects bad options', () => {
    assert.throws(() => new VoiceHistoryStore({ maxEntries: 0 }), /maxEntries/);
    assert.throws(() => new VoiceHistoryStore({ size: 3 } as never), /unknown option 'size'/);
  });
});
