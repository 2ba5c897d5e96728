// PaxosError's honesty defaults: a throw site that says nothing claims the safe answer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isRetryable, PaxosError } from '../src/errors.js';

test('mayBeChosen defaults to true: only a site that knows says "certainly not chosen"', () => {
  assert.equal(new PaxosError('GROUP_HALTED', 'x').mayBeChosen, true);
  assert.equal(new PaxosError('OVERLOADED', 'x', { mayBeChosen: false }).mayBeChosen, false);
});

test('a TIMEOUT that may be chosen is not retryable; one certainly not chosen is', () => {
  assert.equal(new PaxosError('TIMEOUT', 'x', { mayBeChosen: true }).retryable, false);
  assert.equal(new PaxosError('TIMEOUT', 'x', { mayBeChosen: false }).retryable, true);
  assert.equal(new PaxosError('TIMEOUT', 'x').retryable, false, 'the default is the safe answer');
  assert.equal(isRetryable('TIMEOUT', true), false);
  assert.equal(isRetryable('TIMEOUT', false), true);
  assert.equal(isRetryable('OVERLOADED', false), true);
  assert.equal(isRetryable('STOPPED', false), false);
});
