import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ERROR_CODES, HTTP_STATUS, SluiceError, isErrorCode } from '../../src/protocol/errors.ts';

test('SluiceError carries a code from the closed set, a public message, details and a cause', () => {
  const cause = new Error('db password is hunter2');
  const e = new SluiceError('internal', 'Action failed', { cause, details: { reason: 'action_failed' } });
  assert.equal(e.code, 'internal');
  assert.equal(e.message, 'Action failed');
  assert.equal(e.cause, cause);
  assert.deepEqual(e.toJSON(), { code: 'internal', message: 'Action failed' });
  assert.equal(JSON.stringify(e).includes('hunter2'), false);
});

test('isInstance works without instanceof (another copy of the package)', () => {
  const foreign = Object.assign(Object.create(null), { [Symbol.for('sluice.error')]: true });
  assert.equal(SluiceError.isInstance(new SluiceError('not_found', 'x')), true);
  assert.equal(SluiceError.isInstance(foreign), true);
  assert.equal(SluiceError.isInstance(new Error('x')), false);
  assert.equal(SluiceError.isInstance(null), false);
});

test('from() keeps SluiceErrors, maps aborts and timeouts, wraps the rest without leaking', () => {
  const own = new SluiceError('not_found', 'x');
  assert.equal(SluiceError.from(own), own);
  assert.equal(SluiceError.from(new DOMException('x', 'AbortError')).code, 'cancelled');
  assert.equal(SluiceError.from(new DOMException('x', 'TimeoutError')).code, 'timeout');
  const wrapped = SluiceError.from(new Error('secret detail'));
  assert.equal(wrapped.code, 'internal');
  assert.equal(wrapped.message, 'Internal error');
  assert.equal(SluiceError.from('str', 'unavailable', 'Down').code, 'unavailable');
});

test('every code has an HTTP status; unknown codes are rejected', () => {
  for (const code of ERROR_CODES) assert.ok(HTTP_STATUS[code] >= 400, code);
  assert.equal(isErrorCode('internal'), true);
  assert.equal(isErrorCode('teapot'), false);
});
