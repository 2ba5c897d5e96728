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
