import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  BATCH_STATE_MACHINE_ID, FIRST_RESERVED_STATE_MACHINE_ID, frameValue, isUserStateMachineId, MASTER_STATE_MACHINE_ID,
  NO_STATE_MACHINE_ID, SYSTEM_STATE_MACHINE_ID, unframeValue,
} from '../../src/runtime/value-frame.js';
import { fromUtf8, utf8 } from '../../src/util/bytes.js';

test('a frame is the state machine id (4 bytes, little-endian) followed by the payload', () => {
  const framed = frameValue(0x01020304, utf8('hi'));
  assert.deepEqual([...framed], [0x04, 0x03, 0x02, 0x01, 0x68, 0x69]);
  const { stateMachineId, payload } = unframeValue(framed);
  assert.equal(stateMachineId, 0x01020304);
  assert.equal(fromUtf8(payload), 'hi');
});

test('round trips ids up to the reserved range and empty payloads', () => {
  for (const id of [0, 1, 99_999_999, SYSTEM_STATE_MACHINE_ID, BATCH_STATE_MACHINE_ID, 0xffffffff]) {
    const decoded = unframeValue(frameValue(id, new Uint8Array(0)));
    assert.equal(decoded.stateMachineId, id);
    assert.equal(decoded.payload.length, 0);
  }
});

test('decodes a view that does not start at the beginning of its buffer', () => {
  const buffer = new ArrayBuffer(16);
  const bytes = new Uint8Array(buffer);
  bytes.set(frameValue(7, utf8('abc')), 5);
  const view = new Uint8Array(buffer, 5, 7);
  const { stateMachineId, payload } = unframeValue(view);
  assert.equal(stateMachineId, 7);
  assert.equal(fromUtf8(payload), 'abc');
});

test('a value shorter than the id is a no-op value with the whole value as payload', () => {
  for (const short of [new Uint8Array(0), utf8('abc')]) {
    const { stateMachineId, payload } = unframeValue(short);
    assert.equal(stateMachineId, NO_STATE_MACHINE_ID);
    assert.deepEqual(payload, short);
  }
});

test('user ids are 1..99999999; 0 and 100000000 up are not', () => {
  assert.equal(FIRST_RESERVED_STATE_MACHINE_ID, 100_000_000);
  assert.deepEqual([SYSTEM_STATE_MACHINE_ID, MASTER_STATE_MACHINE_ID, BATCH_STATE_MACHINE_ID],
    [100_000_000, 100_000_001, 100_000_002]);
  for (const id of [1, 2, 99_999_999]) assert.equal(isUserStateMachineId(id), true, String(id));
  for (const id of [0, -1, 1.5, NaN, 100_000_000, MASTER_STATE_MACHINE_ID, BATCH_STATE_MACHINE_ID]) {
    assert.equal(isUserStateMachineId(id), false, String(id));
  }
});
