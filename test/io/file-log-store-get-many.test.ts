// FileLogStore.getMany: the same records as get, read in runs (consecutive records of one segment),
// across groups interleaved in a segment, segment boundaries, holes, cleaned instances and damage.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { open as openFile } from 'node:fs/promises';
import type { AcceptorRecord } from '../../src/core/ready.js';
import { PaxosError } from '../../src/errors.js';
import { FileLogStore } from '../../src/io/file-log-store.js';
import { assertRecord, patternBytes, record } from '../contract/log-store-contract.js';
import { segmentPath, segmentsOf, tempDirectory } from './file-store-fixtures.js';

const removals: (() => Promise<void>)[] = [];
after(async () => {
  for (const remove of removals) await remove();
});

async function store(name: string): Promise<{ store: FileLogStore; directory: string }> {
  const made = await tempDirectory(`file-log-store-get-many-${name}`);
  removals.push(made.remove);
  return { store: await FileLogStore.open({ directory: made.path, segmentBytes: 16 * 1024 }), directory: made.path };
}

function value(instanceId: number, group: number): AcceptorRecord {
  return record(instanceId, patternBytes(100 + (instanceId % 7) * 150, instanceId * 10 + group + 1));
}

test('getMany returns what get returns, across interleaved groups, segments, holes and cleaned instances', async () => {
  const { store: log } = await store('same');
  // Groups 0 and 1 interleave in the segments; some writes carry several records; 16 KiB segments roll often.
  for (let instanceId = 0; instanceId < 300; instanceId += 3) {
    await log.put(0, [value(instanceId, 0), value(instanceId + 1, 0), value(instanceId + 2, 0)], { sync: false });
    await log.put(1, [value(instanceId, 1)], { sync: false });
  }
  await log.deleteBelow(0, 20);
  const wanted = [...Array.from({ length: 320 }, (_, index) => index), 5, 400, 150, 149, 0, 299];
  for (const group of [0, 1]) {
    const many = await log.getMany(group, wanted);
    assert.equal(many.length, wanted.length);
    for (const [index, instanceId] of wanted.entries()) {
      const one = await log.get(group, instanceId);
      if (one === undefined) assert.equal(many[index], undefined, `group ${group} instance ${instanceId}`);
      else assertRecord(many[index], one, `group ${group} instance ${instanceId}`);
    }
  }
  assert.deepEqual(await log.getMany(2, [0, 1]), [undefined, undefined]);
  await log.close();
});

test('getMany reports a damaged record in a run as STORAGE_CORRUPT, like get', async () => {
  const { store: log, directory } = await store('corrupt');
  await log.put(0, Array.from({ length: 10 }, (_, instanceId) => value(instanceId, 0)), { sync: true });
  const segments = await segmentsOf(directory);
  const [sequence, segment] = [...segments.entries()].find(([, found]) => found.records.length > 0) ?? [];
  const target = segment?.records.find((found) => found.instance === 4);
  assert.ok(sequence !== undefined && target !== undefined);
  const file = await openFile(segmentPath(directory, sequence), 'r+');
  await file.write(Buffer.from([0xff, 0xff]), 0, 2, target.offset + 40);
  await file.close();
  await assert.rejects(log.getMany(0, [2, 3, 4, 5]), (error: unknown) =>
    error instanceof PaxosError && error.code === 'STORAGE_CORRUPT');
  await assert.rejects(log.get(0, 4), (error: unknown) => error instanceof PaxosError && error.code === 'STORAGE_CORRUPT');
  assert.ok((await log.getMany(0, [0, 1, 2])).every((found) => found !== undefined));
  await log.close();
});

test('getMany with maxBytes reads a first part only: the records before the last one read stay within it', async () => {
  const { store: log } = await store('max-bytes');
  // 1,000-byte values, one group, one segment (16 KiB holds about fifteen of them).
  const records = Array.from({ length: 12 }, (_, instanceId) =>
    record(instanceId, patternBytes(1_000, instanceId + 1)));
  await log.put(0, records, { sync: false });
  const wanted = records.map(({ instanceId }) => instanceId);
  const all = await log.getMany(0, wanted);
  assert.equal(all.length, 12, 'no limit: everything');
  const part = await log.getMany(0, wanted, { maxBytes: 3_500 });
  assert.ok(part.length >= 3 && part.length <= 5, `3,500 bytes of 1,000-byte values: read ${part.length}`);
  part.forEach((found, index) => assertRecord(found, all[index] as AcceptorRecord, `instance ${index}`));
  const beforeLast = part.slice(0, -1).reduce((sum, found) => sum + (found?.value.length ?? 0), 0);
  assert.ok(beforeLast < 3_500, `the records before the last one read hold ${beforeLast} bytes`);
  assert.equal((await log.getMany(0, wanted, { maxBytes: 1 })).length, 1, 'at least one, however small the limit');
  assert.equal((await log.getMany(0, wanted, { maxBytes: 10_000_000 })).length, 12);
  await log.close();
});

test('getMany with maxBytes counts what lies between a group\'s records, and stops at a segment boundary', async () => {
  const { store: log } = await store('max-bytes-interleaved');
  // Group 1's 2,000-byte records lie between group 0's 200-byte ones: reading group 0's run reads them too.
  for (let instanceId = 0; instanceId < 6; instanceId++) {
    await log.put(0, [record(instanceId, patternBytes(200, instanceId + 1))], { sync: false });
    await log.put(1, [record(instanceId, patternBytes(2_000, instanceId + 50))], { sync: false });
  }
  const part = await log.getMany(0, [0, 1, 2, 3, 4, 5], { maxBytes: 5_000 });
  assert.ok(part.length >= 2 && part.length <= 3, `two or three records span 5,000 bytes with group 1's between: ${part.length}`);
  // Many small records over several 16 KiB segments: one call never crosses into the next segment.
  for (let instanceId = 10; instanceId < 200; instanceId++) {
    await log.put(0, [record(instanceId, patternBytes(300, instanceId))], { sync: false });
  }
  const wanted = Array.from({ length: 190 }, (_, index) => 10 + index);
  const first = await log.getMany(0, wanted, { maxBytes: 10_000_000 });
  assert.ok(first.length < 190, `stopped at the segment's end after ${first.length}`);
  assert.deepEqual(first.map((found) => found?.instanceId), wanted.slice(0, first.length));
  await log.close();
});

test('getMany with maxBytes: a missing first record, a hole and a rewritten record out of offset order', async () => {
  const { store: log } = await store('max-bytes-edges');
  for (let instanceId = 0; instanceId < 8; instanceId++) {
    if (instanceId === 4) continue; // a hole
    await log.put(0, [record(instanceId, patternBytes(500, instanceId + 1))], { sync: false });
  }
  // Instance 2 written again at a higher ballot: its newest record now lies after 7's.
  const rewritten = { ...record(2, patternBytes(500, 99)), accepted: { proposalId: 9, nodeId: 1 } };
  await log.put(0, [rewritten], { sync: false });
  const missingFirst = await log.getMany(0, [20, 0, 1], { maxBytes: 10_000 });
  assert.equal(missingFirst[0], undefined, 'a first record not in the log comes back as such');
  assert.ok(missingFirst.length >= 1);
  const withHole = await log.getMany(0, [3, 4, 5, 6], { maxBytes: 10_000 });
  assert.deepEqual(withHole.map((found) => found?.instanceId), [3], 'the part ends before the hole');
  const outOfOrder = await log.getMany(0, [1, 2, 3], { maxBytes: 10_000 });
  assert.deepEqual(outOfOrder.map((found) => found?.instanceId), [1, 2], 'the part ends where offsets go back (at 3)');
  assertRecord((await log.getMany(0, [2, 3], { maxBytes: 10_000 }))[0], rewritten, 'the newest record of 2');
  await log.close();
});
