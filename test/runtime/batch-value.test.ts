import { test } from 'node:test';
import assert from 'node:assert/strict';
import { batchOverheadBytes, decodeBatch, encodeBatch } from '../../src/runtime/batch-value.js';
import { BATCH_STATE_MACHINE_ID, frameValue, unframeValue } from '../../src/runtime/value-frame.js';
import { expandInstanceValue } from '../../src/node/instance-values.js';
import { utf8 } from '../../src/util/bytes.js';

test('a batch round-trips its entries, empty ones included, under the reserved batch id', () => {
  const entries = [frameValue(1, utf8('a')), new Uint8Array(0), frameValue(7, utf8('x'.repeat(1000)))];
  const batch = encodeBatch(entries);
  assert.equal(batch.length, batchOverheadBytes(3) + entries.reduce((sum, entry) => sum + entry.length, 0));
  const { stateMachineId, payload } = unframeValue(batch);
  assert.equal(stateMachineId, BATCH_STATE_MACHINE_ID);
  assert.deepEqual(decodeBatch(payload).map((entry) => Buffer.from(entry)), entries.map((entry) => Buffer.from(entry)));
});

test('a malformed batch is refused, never half-read', () => {
  const payload = unframeValue(encodeBatch([frameValue(1, utf8('abc')), frameValue(2, utf8('de'))])).payload;
  assert.throws(() => decodeBatch(payload.subarray(0, 2)), /shorter than its entry count/);
  for (let cut = 4; cut < payload.length; cut++) {
    assert.throws(() => decodeBatch(payload.subarray(0, cut)), /batch/, `truncated at ${cut}`);
  }
  const trailing = new Uint8Array(payload.length + 1);
  trailing.set(payload);
  assert.throws(() => decodeBatch(trailing), /1 trailing bytes/);
  const huge = Uint8Array.from(payload);
  new DataView(huge.buffer).setUint32(0, 0xffff_ffff, true);
  assert.throws(() => decodeBatch(huge), /claims 4294967295 entries/);
  const longEntry = Uint8Array.from(payload);
  new DataView(longEntry.buffer).setUint32(4, 1000, true);
  assert.throws(() => decodeBatch(longEntry), /entry 0 runs past the end/);
});

test('instance values strip the state machine id and expand batches', () => {
  assert.deepEqual(expandInstanceValue(frameValue(3, utf8('one'))), [{ stateMachineId: 3, value: utf8('one') }]);
  assert.deepEqual(expandInstanceValue(encodeBatch([frameValue(1, utf8('a')), frameValue(2, utf8('b'))])),
    [{ stateMachineId: 1, value: utf8('a') }, { stateMachineId: 2, value: utf8('b') }]);
  assert.deepEqual(expandInstanceValue(new Uint8Array(0)), [{ stateMachineId: 0, value: new Uint8Array(0) }]);
});
