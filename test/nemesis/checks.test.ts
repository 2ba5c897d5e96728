// The nemesis checks besides linearizability, on small hand-made histories: each one catches what it
// is for (an invented stale read, a lost write) and accepts what is legal; the availability gap and
// the firewall's cut sets are what they say.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { KvInput, KvOutput, RecordedOperation } from '../../src/testing/kv-model.js';
import { inventedStaleReads, longestGap, lostWrites, successfulWrites } from './checks.js';
import { between, keepOnly } from './firewall.js';
import type { StaleRead } from './workload.js';

function op(input: KvInput, call: number, ret: number, outcome: RecordedOperation['outcome'], output?: KvOutput,
): RecordedOperation {
  return { clientId: 'c', input, call, ret, outcome, output, error: undefined };
}

const writes: RecordedOperation[] = [
  op({ kind: 'put', key: 'a', value: 'one' }, 10, 20, 'ok', { ok: true, version: 1 }),
  op({ kind: 'put', key: 'a', value: 'two' }, 30, 40, 'unknown'),
  op({ kind: 'delete', key: 'a' }, 50, 60, 'ok', { ok: true, version: 3 }),
  op({ kind: 'put', key: 'b', value: 'three', expectedVersion: 0 }, 10, 20, 'ok', { ok: false, code: 'VERSION_CONFLICT', version: 4 }),
];

function read(key: string, call: number, ret: number, value: string | null, version: number): StaleRead {
  return { clientId: 'r', key, call, ret, output: { value, version }, error: undefined };
}

test('stale reads: old values pass, invented, misversioned or early ones are caught', () => {
  const legal = [read('a', 0, 5, null, 0), read('a', 70, 80, 'one', 1), read('a', 35, 36, 'two', 2), read('a', 61, 62, null, 3)];
  assert.deepEqual(inventedStaleReads(legal, writes), []);
  assert.equal(inventedStaleReads([read('a', 70, 80, 'never', 2)], writes).length, 1);
  assert.equal(inventedStaleReads([read('a', 70, 80, 'one', 2)], writes).length, 1, 'acknowledged at 1, not 2');
  assert.equal(inventedStaleReads([read('a', 0, 5, 'one', 1)], writes).length, 1, 'returned before the write was called');
  assert.equal(inventedStaleReads([read('b', 70, 80, 'three', 4)], writes).length, 1, 'a refused write wrote nothing');
  assert.equal(inventedStaleReads([read('a', 0, 5, 'x', 0)], writes).length, 1, 'a value at version 0');
});

test('lost writes: the final state must hold the highest acknowledged write', () => {
  assert.deepEqual(lostWrites(writes, new Map([['a', { value: null, version: 3 }]])), []);
  assert.deepEqual(lostWrites(writes, new Map([['a', { value: 'later', version: 5 }]])), []);
  assert.equal(lostWrites(writes, new Map([['a', { value: 'two', version: 2 }]])).length, 1);
  assert.equal(lostWrites(writes, new Map([['a', { value: 'other', version: 3 }]])).length, 1);
  assert.equal(lostWrites(writes, new Map()).length, 1);
});

test('the longest gap without a successful write, and which writes count', () => {
  assert.equal(longestGap([], 100, 500), 400);
  assert.equal(longestGap([150, 400, 120, 900], 100, 500), 250);
  assert.equal(longestGap([50, 480], 100, 500), 380);
  const { all, byClient } = successfulWrites(writes);
  assert.deepEqual(all, [20, 60], 'unknown and refused writes do not count');
  assert.deepEqual(byClient.get('c'), [20, 60]);
});

test('cut sets: both ways between groups; a ring keeps only neighbours', () => {
  assert.deepEqual(between([1], [2, 3]),
    [{ from: 1, to: 2 }, { from: 2, to: 1 }, { from: 1, to: 3 }, { from: 3, to: 1 }]);
  const ring = [1, 2, 3, 4, 5];
  const cuts = keepOnly(ring, (x, y) => Math.abs(x - y) === 1 || Math.abs(x - y) === 4);
  assert.equal(cuts.length, 10, 'each of 5 nodes loses 2 of its 4 links, one direction each');
  assert.ok(cuts.some((cut) => cut.from === 1 && cut.to === 3));
  assert.ok(!cuts.some((cut) => cut.from === 1 && cut.to === 5));
});
