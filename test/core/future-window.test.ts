import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FutureWindow } from '../../src/core/future-window.js';
import type { PaxosMessage } from '../../src/core/messages.js';
import { acceptMsg, ballot, prepareMsg } from './fixtures.js';

function message(instanceId: number, from = 2): PaxosMessage {
  return prepareMsg(from, instanceId, ballot(1, from));
}

test('keeps messages strictly inside now + windowInstances', () => {
  const window = new FutureWindow(3, 100);
  assert.equal(window.add(message(11), 10), true);
  assert.equal(window.add(message(12), 10), true);
  assert.equal(window.add(message(13), 10), false, 'now + window is outside');
  assert.equal(window.add(message(500), 10), false);
  assert.equal(window.size, 2);
  assert.equal(window.dropped, 2);
});

test('take returns what was kept for one instance, in arrival order, and drops everything below', () => {
  const window = new FutureWindow(10, 100);
  const first = acceptMsg(2, 5, ballot(1, 2), 'a');
  const second = acceptMsg(3, 5, ballot(1, 3), 'b');
  window.add(message(3), 0);
  window.add(first, 0);
  window.add(message(6), 0);
  window.add(second, 0);
  assert.equal(window.size, 4);
  assert.deepEqual(window.take(5), [first, second]);
  assert.equal(window.size, 1, 'instance 3 is gone, 6 stays');
  assert.deepEqual(window.take(5), []);
  assert.deepEqual(window.take(6).map((kept) => kept.instanceId), [6]);
  assert.equal(window.size, 0);
});

test('beyond maxMessages, messages about the farthest instance go first', () => {
  const window = new FutureWindow(100, 3);
  window.add(message(2), 0);
  window.add(message(9, 2), 0);
  window.add(message(9, 3), 0);
  assert.equal(window.add(message(4), 0), true);
  assert.equal(window.size, 3);
  assert.equal(window.dropped, 1);
  const kept9 = window.take(9);
  assert.deepEqual(kept9.map((kept) => kept.from), [3], 'the oldest message of instance 9 went first');
  const window2 = new FutureWindow(100, 2);
  window2.add(message(2), 0);
  window2.add(message(3), 0);
  window2.add(message(50), 0);
  assert.equal(window2.size, 2);
  assert.deepEqual(window2.take(50), [], 'the newcomer was the farthest and was dropped');
});
