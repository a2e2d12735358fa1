import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import { describe, test } from 'node:test';
import { State } from '../../src/app/index.ts';

describe('State', () => {
  test('writes return a new state and leave the old one unchanged', () => {
    const s0 = State.of({ count: 0, history: [] as string[] });
    const s1 = s0.update({ count: 1 }).append('history', 'a', 'b').increment('count', 2).extend('history', ['c']);
    assert.deepEqual(s0.data, { count: 0, history: [] });
    assert.deepEqual(s1.data, { count: 3, history: ['a', 'b', 'c'] });
    assert.ok(Object.isFrozen(s1.data));
    assert.throws(() => {
      (s1.data as { count: number }).count = 9;
    }, TypeError);
  });

  test('get / has / keys / subset / merge / toJSON', () => {
    const s = State.of({ a: 1, b: 'two', c: [3] });
    assert.equal(s.get('b'), 'two');
    assert.ok(s.has('a') && !s.has('z'));
    assert.deepEqual(s.keys(), ['a', 'b', 'c']);
    assert.deepEqual(s.subset('a', 'c').data, { a: 1, c: [3] });
    assert.deepEqual(s.merge({ d: true }).data, { a: 1, b: 'two', c: [3], d: true });
    assert.deepEqual(s.merge(State.of({ a: 5 })).get('a'), 5);
    assert.equal(JSON.stringify(s), '{"a":1,"b":"two","c":[3]}');
    assert.match(inspect(s), /^State \{ a: 1/);
  });

  test('Burr §1.6: append shares the existing elements (no deep copy of a long history)', () => {
    const message = { role: 'user', content: 'x'.repeat(1000) };
    const s0 = State.of({ history: [message] });
    const s1 = s0.append('history', { role: 'assistant', content: 'ok' });
    assert.equal(s1.get('history')[0], message, 'the same object, not a copy');
    assert.notEqual(s1.get('history'), s0.get('history'));
    assert.equal(s0.get('history').length, 1);
  });

  test('type errors for misuse are runtime errors too', () => {
    const s = new State<Record<string, unknown>>({ n: 'not a number', list: 5 });
    assert.throws(() => s.increment('n'), /not a number/);
    assert.throws(() => s.append('list', 1), /not an array/);
    assert.deepEqual(new State().append('fresh', 1).data, { fresh: [1] });
  });

  test('typed keys: wrong keys and value types fail to type-check', () => {
    const s = State.of({ count: 0, tags: [] as string[] });
    // Never called: these lines only have to fail type-checking (`tsc --noEmit`).
    const typeErrors = (): void => {
      // @ts-expect-error unknown key
      s.get('nope');
      // @ts-expect-error wrong value type for an existing key
      s.update({ count: 'one' });
      // @ts-expect-error count is not an array
      s.append('count', 1);
      // @ts-expect-error tags holds strings
      s.append('tags', 1);
    };
    void typeErrors;
    const widened = s.update({ extra: true });
    assert.equal(widened.get('extra'), true);
  });
});
