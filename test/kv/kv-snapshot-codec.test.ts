// The KV snapshot codec: a round trip keeps every part of a group's state, and every kind of
// damage or malformation is refused with a KvSnapshotError, never loaded.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { crc32 } from 'node:zlib';
import { groupOfKey } from '../../src/kv/key-hash.js';
import { encodeKvCommand, type KvCommand } from '../../src/kv/kv-command.js';
import {
  decodeKvSnapshot, encodeKvSnapshot, encodeKvSnapshotChunks, KvSnapshotError, type KvSnapshot,
} from '../../src/kv/kv-snapshot-codec.js';
import { KvStateMachine } from '../../src/kv/kv-state-machine.js';

const FENCE = { nodeId: 3, masterVersion: 2 ** 40 + 7 };
const GROUPS = 2;

function keyOf(group: number, prefix: string): string {
  for (let i = 0; ; i++) if (groupOfKey(`${prefix}${i}`, GROUPS) === group) return `${prefix}${i}`;
}

/** A two-group machine with a fence, values (empty, large, unicode keys) and a tombstone in group 0. */
function populated(): { machine: KvStateMachine; lastInstance: number } {
  const machine = new KvStateMachine({ groups: GROUPS });
  let instanceId = 0;
  const run = (command: KvCommand, group = 0): void => {
    const value = encodeKvCommand(command);
    machine.execute({ groupIndex: group, instanceId: instanceId++, value, context: undefined });
  };
  run({ kind: 'fence', fence: FENCE, httpAddress: 'http://127.0.0.1:8081' });
  const put = (key: string, value: Uint8Array): void =>
    run({ kind: 'put', key, value, expectedVersion: undefined, fence: FENCE });
  put(keyOf(0, 'plain-'), Buffer.from('hello'));
  put(keyOf(0, 'empty-'), new Uint8Array(0));
  put(keyOf(0, '\uFEFFbom-ключ-🔑-'), Buffer.alloc(70_000, 7)); // a BOM, Cyrillic and an astral character
  put(keyOf(0, 'gone-'), Buffer.from('x'));
  run({ kind: 'delete', key: keyOf(0, 'gone-'), expectedVersion: 1, fence: FENCE });
  put(keyOf(0, 'plain-'), Buffer.from('again'));
  return { machine, lastInstance: instanceId - 1 };
}

function snapshotOf(overrides: Partial<KvSnapshot> = {}): KvSnapshot {
  const { machine, lastInstance } = populated();
  return { ...machine.captureSnapshot(0, lastInstance + 2), ...overrides };
}

/** Recompute the trailer, so the damage under test is what the decoder sees, not a CRC mismatch. */
function withCrc(bytes: Uint8Array): Buffer {
  const copy = Buffer.from(bytes);
  copy.writeUInt32LE(crc32(copy.subarray(0, copy.length - 4)) >>> 0, copy.length - 4);
  return copy;
}

function refused(bytes: Uint8Array, pattern: RegExp, expected = { group: 0, groups: GROUPS }): void {
  assert.throws(() => decodeKvSnapshot(bytes, expected), (error: unknown) => {
    assert.ok(error instanceof KvSnapshotError, String(error));
    assert.match(error.message, pattern);
    return true;
  });
}

describe('KV snapshot codec', () => {
  test('a round trip restores keys, values, versions, tombstones, the fence and the instances', () => {
    const { machine, lastInstance } = populated();
    const snapshot = machine.captureSnapshot(0, lastInstance + 2);
    const bytes = encodeKvSnapshot(snapshot);
    const decoded = decodeKvSnapshot(bytes, { group: 0, groups: GROUPS });
    assert.equal(decoded.instanceId, lastInstance + 2);
    assert.equal(decoded.lastExecutedInstanceId, lastInstance);
    assert.deepEqual(decoded.fence, machine.fence(0));
    const restored = new KvStateMachine({ groups: GROUPS });
    restored.restoreSnapshot(decoded);
    for (const key of snapshot.keys) assert.deepEqual(restored.read(0, key), machine.read(0, key), key);
    assert.deepEqual(restored.read(0, keyOf(0, 'gone-')), { value: undefined, version: 2 }, 'the tombstone keeps its version');
    assert.deepEqual(restored.stats(), machine.stats());
    assert.equal(restored.checkpointInstanceId(0), lastInstance + 2);
    assert.equal(restored.checkpointInstanceId(1), -1, 'the other group is untouched');
    assert.equal(restored.lastExecutedInstanceId(0), lastInstance);
    assert.deepEqual(encodeKvSnapshot(restored.captureSnapshot(0, lastInstance + 2)), bytes, 're-encodes to the same bytes');
  });

  test('an empty group without a fence round-trips', () => {
    const empty = new KvStateMachine({ groups: GROUPS }).captureSnapshot(1, 0);
    const decoded = decodeKvSnapshot(encodeKvSnapshot(empty), { group: 1, groups: GROUPS });
    assert.equal(decoded.fence, undefined);
    assert.equal(decoded.entries.size, 0);
    assert.equal(decoded.lastExecutedInstanceId, -1);
  });

  test('large snapshots come in chunks of about a mebibyte whose concatenation is the file', () => {
    const keys = Array.from({ length: 30_000 }, (_, i) => `k${i}`);
    const value = Buffer.alloc(100, 1);
    const snapshot: KvSnapshot = {
      group: 0, groups: 1, instanceId: 5, lastExecutedInstanceId: 5, fence: undefined,
      keys, entries: keys.map(() => ({ value, version: 1 })), sessions: { nextId: 1, logTime: 0, sessions: [] },
    };
    const chunks = [...encodeKvSnapshotChunks(snapshot)];
    assert.ok(chunks.length >= 4, `${chunks.length} chunks`);
    assert.ok(chunks.every((chunk) => chunk.length <= 1024 * 1024));
    assert.equal(decodeKvSnapshot(Buffer.concat(chunks), { group: 0, groups: 1 }).entries.size, 30_000);
  });

  test('every flipped byte, every truncation and an appended byte are refused', () => {
    const bytes = Buffer.from(encodeKvSnapshot(snapshotOf({ keys: ['a'], entries: [{ value: Buffer.from('v'), version: 1 }],
      groups: 1 })));
    for (let offset = 0; offset < bytes.length; offset++) {
      const damaged = Buffer.from(bytes);
      damaged[offset] = (damaged[offset] as number) ^ 0x41;
      assert.throws(() => decodeKvSnapshot(damaged, { group: 0, groups: 1 }), KvSnapshotError, `flip at ${offset}`);
    }
    for (let length = 0; length < bytes.length; length++) {
      assert.throws(() => decodeKvSnapshot(bytes.subarray(0, length), { group: 0, groups: 1 }), KvSnapshotError,
        `truncated to ${length}`);
    }
    refused(Buffer.concat([bytes, Buffer.from([0])]), /CRC mismatch/, { group: 0, groups: 1 });
  });

  test('a valid CRC over malformed content is still refused', () => {
    const good = Buffer.from(encodeKvSnapshot(snapshotOf()));
    const patched = (offset: number, write: (buffer: Buffer) => void): Buffer => {
      const copy = Buffer.from(good);
      write(copy.subarray(offset));
      return withCrc(copy);
    };
    refused(patched(0, (b) => b.write('XX')), /bad magic/);
    refused(patched(8, (b) => b.writeUInt16LE(3)), /format version 3 is not supported/);
    refused(patched(10, (b) => b.writeUInt16LE(1)), /unknown flags/);
    refused(good, /not group 1 of 2/, { group: 1, groups: 2 });
    refused(good, /not group 0 of 3/, { group: 0, groups: 3 });
    refused(patched(24, (b) => b.writeUInt32LE(0x20_0000)), /instance is not a safe integer/);
    refused(patched(28, (b) => b.writeUInt32LE(0xffff_fff0)), /last executed instance .* is after/);
    refused(patched(36, (b) => b.writeUInt32LE(1_000_000)), /entry count 1000000 does not fit/);
    refused(patched(44, (b) => b.writeUInt8(2)), /fence presence byte 2/);
    refused(patched(45, (b) => b.writeUInt32LE(0)), /fence node id 0/);
  });

  test('entries that encodeKvSnapshot could not have taken from a state machine are refused', () => {
    const value = Buffer.from('v');
    const a = keyOf(0, 'a');
    const entries = (count: number): { value: Buffer; version: number }[] =>
      Array.from({ length: count }, () => ({ value, version: 1 }));
    refused(encodeKvSnapshot(snapshotOf({ keys: [a, a], entries: entries(2) })), /appears twice/);
    refused(encodeKvSnapshot(snapshotOf({ keys: [keyOf(1, 'b')], entries: entries(1) })),
      /does not belong to group 0/);
    refused(encodeKvSnapshot(snapshotOf({ keys: [a], entries: [{ value, version: 0 }] })), /version 0/);
    refused(encodeKvSnapshot(snapshotOf({ keys: [''], entries: entries(1) })), /key of 0 bytes is under the minimum/);
    const huge = Buffer.alloc(1024 * 1024 + 1);
    refused(encodeKvSnapshot(snapshotOf({ keys: [a], entries: [{ value: huge, version: 1 }] })),
      /value of 1048577 bytes is over the limit/);
    const one = Buffer.from(encodeKvSnapshot(snapshotOf({ fence: undefined, keys: [a], entries: entries(1) })));
    const keyAt = 44 + 1 + 2;
    const badUtf8 = Buffer.from(one);
    badUtf8[keyAt] = 0xff;
    refused(withCrc(badUtf8), /key is not valid UTF-8/);
    const kindAt = keyAt + Buffer.byteLength(a) + 8;
    const badKind = Buffer.from(one);
    badKind[kindAt] = 9;
    refused(withCrc(badKind), /unknown entry kind 9/);
    const trailing = Buffer.concat([one.subarray(0, one.length - 4), Buffer.from([0, 0, 0, 0, 0])]);
    refused(withCrc(trailing), /unexpected bytes after the session table/);
  });
});
