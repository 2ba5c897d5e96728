import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FUTURE_WINDOW_BYTES, FutureWindow } from '../../src/core/future-window.js';
import { TEACH_BYTES_BEYOND_ACK } from '../../src/core/teacher.js';
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

test('beyond maxBytes of values, messages about the farthest instance go first', () => {
  const window = new FutureWindow(100, 100, 10);
  assert.equal(window.add(acceptMsg(2, 3, ballot(1, 2), 'aaaa'), 0), true);
  assert.equal(window.add(acceptMsg(2, 7, ballot(1, 2), 'bbbb'), 0), true);
  assert.equal(window.add(message(8), 0), true, 'a message without a value costs no bytes');
  assert.equal(window.keptBytes, 8);
  assert.equal(window.add(acceptMsg(2, 5, ballot(1, 2), 'cccc'), 0), true, 'kept: instance 8, then 7, go instead');
  assert.equal(window.keptBytes, 8);
  assert.equal(window.dropped, 2);
  assert.equal(window.add(acceptMsg(2, 50, ballot(1, 2), 'dddd'), 0), false, 'a newcomer beyond the bytes is dropped');
  assert.equal(window.keptBytes, 8);
  assert.equal(window.take(3).length, 1);
  assert.equal(window.keptBytes, 4);
  assert.equal(window.take(5).length, 1);
  assert.deepEqual(window.take(7), [], 'the farthest values went');
  assert.equal(window.keptBytes, 0);
});

test('the default byte bound is 64 MiB, four times what a teacher sends beyond an ack', () => {
  assert.equal(FUTURE_WINDOW_BYTES, 4 * TEACH_BYTES_BEYOND_ACK);
  const window = new FutureWindow(1500, 6000);
  const large = new Uint8Array(8 * 1024 * 1024);
  for (let instanceId = 1; instanceId <= 20; instanceId++) {
    window.add({ ...acceptMsg(2, instanceId, ballot(1, 2), 'x'), value: large }, 0);
  }
  assert.equal(window.size, 8, 'eight values of 8 MiB, not twenty');
  assert.ok(window.keptBytes <= FUTURE_WINDOW_BYTES);
});
