// FileLogStore beyond the LogStore contract: segments, group commit, deletion of whole segments,
// recovery, sync switching, read-only inspection, and use after close.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { AcceptorRecord } from '../../src/core/ready.js';
import { PaxosError } from '../../src/errors.js';
import { FileLogStore, recordBytesOnDisk, type FileLogStoreOptions } from '../../src/io/file-log-store.js';
import { utf8 } from '../../src/util/bytes.js';
import { assertRecord, patternBytes, record } from '../contract/log-store-contract.js';
import { RecordingFileSystem, segmentPath, segmentsOf, snapshot, spareReady, tempDirectory } from './file-store-fixtures.js';

const SEGMENT = 16 * 1024;
/** 1000-byte values: 1053-byte frames, 15 to a 16 KiB segment. */
const VALUE = 1000;
const PER_SEGMENT = Math.floor(SEGMENT / recordBytesOnDisk(VALUE));

const directories: (() => Promise<void>)[] = [];
after(async () => {
  for (const remove of directories) await remove();
});

async function directory(name: string): Promise<string> {
  const made = await tempDirectory(`file-log-store-${name}`);
  directories.push(made.remove);
  return made.path;
}

function open(dir: string, options: Partial<FileLogStoreOptions> = {}): Promise<FileLogStore> {
  return FileLogStore.open({ directory: dir, segmentBytes: SEGMENT, ...options });
}

function big(instanceId: number, seed = instanceId): AcceptorRecord {
  return record(instanceId, patternBytes(VALUE, seed + 1));
}

async function rejectsWith(promise: Promise<unknown>, code: string, message?: RegExp): Promise<PaxosError> {
  let caught: unknown;
  await promise.then(() => assert.fail(`expected ${code}, but it succeeded`), (error: unknown) => {
    caught = error;
  });
  assert.ok(caught instanceof PaxosError, `expected a PaxosError ${code}, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  if (message !== undefined) assert.match(caught.message, message);
  return caught;
}

async function logFiles(dir: string): Promise<string[]> {
  return (await readdir(join(dir, 'log'))).sort();
}

describe('FileLogStore segments', () => {
  test('rolls to a new pre-allocated segment when the active one is full; no frame spans two', async () => {
    const dir = await directory('roll');
    const store = await open(dir);
    const written = Array.from({ length: 100 }, (_, i) => big(i));
    for (const item of written) await store.put(0, [item], { sync: true });
    for (const item of written) assertRecord(await store.get(0, item.instanceId), item, 'before close');
    assert.equal(store.stats.records, 100);
    assert.equal(store.stats.flushes, 100);
    await store.close();

    const segments = await segmentsOf(dir);
    const withData = [...segments].filter(([, segment]) => segment.records.length > 0);
    assert.equal(withData.length, Math.ceil(100 / PER_SEGMENT), 'segments holding data');
    for (const [sequence, segment] of segments) {
      assert.equal(segment.bytes, SEGMENT, `segment ${sequence} is pre-allocated to segmentBytes`);
    }
    // Segment k holds instances PER_SEGMENT*(k-1) … in order: records go to the lowest segment with room.
    for (const [position, [sequence, segment]] of withData.entries()) {
      const instances = segment.records.map((stored) => stored.instance);
      const first = position * PER_SEGMENT;
      assert.deepEqual(instances, written.slice(first, first + PER_SEGMENT).map((item) => item.instanceId),
        `segment ${sequence}`);
      assert.equal(sequence, position + 1);
    }
    const spare = [...segments].filter(([, segment]) => segment.records.length === 0);
    assert.equal(spare.length, 1, 'one empty spare is pre-allocated ahead of need');

    const reopened = await open(dir);
    assert.equal(reopened.recovery.records, 100);
    assert.equal(reopened.recovery.segments, segments.size);
    assert.equal(reopened.recovery.truncatedTail, null);
    for (const item of written) assertRecord(await reopened.get(0, item.instanceId), item, 'after reopen');
    await reopened.close();
  });

  test('a batch larger than a segment gets a segment of its own size; later writes go after it', async () => {
    const dir = await directory('oversized');
    const store = await open(dir);
    await store.put(0, [big(0), big(1)], { sync: true });
    const batch = Array.from({ length: 40 }, (_, i) => big(100 + i));
    const batchBytes = batch.reduce((sum, item) => sum + recordBytesOnDisk(item.value.length), 0);
    assert.ok(batchBytes > SEGMENT);
    await store.put(0, batch, { sync: true });
    const single = record(500, patternBytes(5 * SEGMENT, 9));
    await store.put(1, [single], { sync: true });
    await store.put(0, [big(2)], { sync: true });
    for (const item of [big(0), big(1), big(2), ...batch]) assertRecord(await store.get(0, item.instanceId), item, 'open');
    assertRecord(await store.get(1, 500), single, 'open');
    await store.close();

    const segments = [...await segmentsOf(dir)];
    const holding = (instance: number): number =>
      (segments.find(([, segment]) => segment.records.some((stored) => stored.instance === instance)) ?? [-1])[0];
    const batchSegment = holding(100);
    for (const item of batch) assert.equal(holding(item.instanceId), batchSegment, 'the batch is in one segment');
    const batchFile = segments.find(([sequence]) => sequence === batchSegment)?.[1];
    assert.ok(batchFile !== undefined && batchFile.bytes >= batchBytes && batchFile.records.length === 40);
    const singleSegment = segments.find(([sequence]) => sequence === holding(500))?.[1];
    assert.ok(singleSegment !== undefined && singleSegment.bytes >= recordBytesOnDisk(5 * SEGMENT));
    assert.ok(holding(0) < batchSegment && batchSegment < holding(500) && holding(500) < holding(2),
      `writes land in ascending segments: ${holding(0)}, ${batchSegment}, ${holding(500)}, ${holding(2)}`);
    const last = segments.find(([sequence]) => sequence === holding(2))?.[1];
    assert.equal(last?.bytes, SEGMENT, 'after an oversized batch the next segment is of the normal size');

    const reopened = await open(dir);
    for (const item of [big(0), big(1), big(2), ...batch]) {
      assertRecord(await reopened.get(0, item.instanceId), item, 'after reopen');
    }
    assertRecord(await reopened.get(1, 500), single, 'after reopen');
    await reopened.close();
  });

  test('rejects a segment size below 4096', async () => {
    const dir = await directory('small-segment');
    await rejectsWith(FileLogStore.open({ directory: dir, segmentBytes: 1000 }), 'BAD_OPTIONS', /segmentBytes/);
  });

  test('a restart resumes appending to the last segment and adds no segment of its own', async () => {
    const dir = await directory('restart');
    let store = await open(dir);
    await store.put(0, [big(0)], { sync: true });
    await store.close();
    const files = await logFiles(dir);
    for (let life = 1; life <= 4; life++) {
      store = await open(dir);
      await store.put(0, [big(life)], { sync: true });
      await store.close();
      assert.deepEqual(await logFiles(dir), files, `restart ${life} changed the segment files`);
    }
    const segments = await segmentsOf(dir);
    assert.deepEqual(segments.get(1)?.records.map((stored) => stored.instance), [0, 1, 2, 3, 4],
      'every life appended to segment 1');
    // Restarts without any write do not pile up pre-allocated segments either.
    for (let life = 0; life < 3; life++) await (await open(dir)).close();
    assert.deepEqual(await logFiles(dir), files);
  });
});

describe('FileLogStore group commit', () => {
  test('puts that arrive while a flush runs share the next write and fdatasync', async () => {
    const dir = await directory('group-commit');
    const fs = new RecordingFileSystem();
    const store = await open(dir, { fileSystem: fs, segmentBytes: 4 * 1024 * 1024 });
    const syncsBefore = fs.count('datasync', segmentPath(dir, 1));
    const puts: Promise<void>[] = [];
    for (let i = 0; i < 300; i++) puts.push(store.put(i % 3, [record(Math.floor(i / 3), `v${i}`)], { sync: true }));
    await Promise.all(puts);
    const flushes = store.stats.flushes;
    const syncs = fs.count('datasync', segmentPath(dir, 1)) - syncsBefore;
    assert.equal(store.stats.records, 300);
    assert.ok(flushes <= 3, `300 concurrent puts took ${flushes} flushes`);
    assert.ok(syncs <= flushes && syncs >= 1, `${syncs} fdatasyncs for ${flushes} flushes`);
    const writes = fs.events.filter((event) => event.op === 'write' && event.path === segmentPath(dir, 1));
    assert.equal(writes.length, flushes, 'one write per flush');
    for (let i = 0; i < 300; i++) {
      assertRecord(await store.get(i % 3, Math.floor(i / 3)), record(Math.floor(i / 3), `v${i}`), 'grouped');
    }

    // For contrast: awaited one at a time, every put is its own flush and fdatasync.
    const before = { flushes: store.stats.flushes, syncs: fs.count('datasync', segmentPath(dir, 1)) };
    for (let i = 0; i < 10; i++) await store.put(5, [record(i, 'alone')], { sync: true });
    assert.equal(store.stats.flushes - before.flushes, 10);
    assert.equal(fs.count('datasync', segmentPath(dir, 1)) - before.syncs, 10);
    await store.close();
  });

  test('before writing to a new segment, the old one is made durable (even after puts without sync)',
    async () => {
      const dir = await directory('roll-sync');
      const fs = new RecordingFileSystem();
      const store = await open(dir, { fileSystem: fs });
      for (let i = 0; i < PER_SEGMENT; i++) await store.put(0, [big(i)], { sync: false });
      assert.equal(fs.count('datasync', segmentPath(dir, 1)), 0, 'puts without sync do not fdatasync');
      await store.put(0, [big(PER_SEGMENT)], { sync: true });
      const first = segmentPath(dir, 1);
      const second = segmentPath(dir, 2);
      const lastWriteToFirst = fs.events.findLastIndex((event) => event.op === 'write' && event.path === first);
      const firstWriteToSecond = fs.events.findIndex((event) => event.op === 'write' && event.path === second);
      assert.ok(firstWriteToSecond > lastWriteToFirst, 'the put rolled to segment 2');
      const synced = fs.events.findIndex((event, i) => i > lastWriteToFirst && i < firstWriteToSecond &&
        event.op === 'datasync' && event.path === first);
      // Otherwise a power cut could tear segment 1's unsynced tail while segment 2 holds synced data,
      // and the store would refuse to open ("valid data follows in later segments").
      assert.ok(synced >= 0, 'segment 1 was fdatasynced before segment 2 got data');
      await store.close();
    });
});

describe('FileLogStore deletion', () => {
  test('deleteBelow and clear unlink whole dead segments, never a live one, the active one or the spare',
    async () => {
      const dir = await directory('delete');
      const store = await open(dir);
      for (let i = 0; i < 90; i++) {
        await store.put(0, [big(i)], { sync: true });
        if (i === 40) await store.put(1, [big(7, 77)], { sync: true });
      }
      await store.put(2, [big(3, 33)], { sync: true });
      await spareReady(dir);
      const before = await segmentsOf(dir);
      const holding = (group: number, instance: number): number => [...before].find(([, segment]) =>
        segment.records.some((stored) => stored.group === group && stored.instance === instance))?.[0] ?? -1;
      const groupOneSegment = holding(1, 7);
      const active = holding(2, 3);
      const spare = Math.max(...before.keys());
      assert.equal(active, Math.max(...[...before].filter(([, s]) => s.records.length > 0).map(([n]) => n)));
      assert.ok(groupOneSegment > 1 && groupOneSegment < holding(0, 89), `group 1 in ${groupOneSegment}`);

      await store.deleteBelow(0, 60);
      const afterFirst = await segmentsOf(dir);
      for (const [sequence, segment] of before) {
        const live = sequence === active || sequence === spare ||
          segment.records.some((stored) => stored.group !== 0 || stored.instance >= 60);
        assert.equal(afterFirst.has(sequence), live, `segment ${sequence} (live: ${live}) after deleteBelow(0, 60)`);
      }
      assert.ok(afterFirst.size < before.size, 'some segments were unlinked');
      for (let i = 0; i < 60; i++) assert.equal(await store.get(0, i), undefined);
      for (let i = 60; i < 90; i++) assertRecord(await store.get(0, i), big(i), 'kept');
      assertRecord(await store.get(1, 7), big(7, 77), 'another group keeps its segment');

      // Everything of group 0 dead: only group 1's segment, the active one and the spare stay.
      await store.deleteBelow(0, 1000);
      const ascending = (sequences: number[]): number[] => [...new Set(sequences)].sort((x, y) => x - y);
      assert.deepEqual([...(await segmentsOf(dir)).keys()], ascending([groupOneSegment, active, spare]));
      await store.clear(1);
      assert.deepEqual([...(await segmentsOf(dir)).keys()], ascending([active, spare]),
        'clear unlinks the segment only the cleared group used');
      assertRecord(await store.get(2, 3), big(3, 33), 'group 2 in the active segment');
      await store.put(0, [big(1000)], { sync: true });
      await store.close();

      const reopened = await open(dir);
      assertRecord(await reopened.get(0, 1000), big(1000), 'written after the deletions');
      assertRecord(await reopened.get(2, 3), big(3, 33), 'after reopen');
      assert.equal(await reopened.get(0, 89), undefined, 'deleted records stay deleted');
      assert.equal(await reopened.get(1, 7), undefined, 'cleared records stay cleared');
      assert.equal(await reopened.maxInstanceId(1), undefined);
      assert.equal(await reopened.minChosenInstanceId(0), 1000);
      await reopened.close();
    });
});

describe('FileLogStore recovery', () => {
  test('reopening rebuilds the index from every segment: newest records, epochs, low-water marks', async () => {
    const dir = await directory('recover');
    const store = await open(dir);
    const expected = new Map<string, AcceptorRecord>();
    let frames = 0;
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 20; i++) {
        for (const group of [0, 1, 2]) {
          const item = record(i, patternBytes(300 + group * 50, round * 1000 + i * 10 + group));
          await store.put(group, [item], { sync: round === 2 });
          expected.set(`${group}/${i}`, item);
          frames++;
        }
      }
    }
    await store.deleteBelow(1, 10);
    await store.clear(2);
    await store.put(2, [record(4, 'after clear')], { sync: true });
    frames++;
    await store.close();
    const files = (await logFiles(dir)).filter((name) => name.endsWith('.log')).length;

    const reopened = await open(dir);
    assert.equal(reopened.recovery.segments, files);
    assert.ok(reopened.recovery.records <= frames && reopened.recovery.records > 0);
    assert.equal(reopened.recovery.truncatedTail, null);
    for (let i = 0; i < 20; i++) {
      assertRecord(await reopened.get(0, i), expected.get(`0/${i}`) as AcceptorRecord, 'group 0');
      if (i < 10) assert.equal(await reopened.get(1, i), undefined, `group 1 instance ${i} below the mark`);
      else assertRecord(await reopened.get(1, i), expected.get(`1/${i}`) as AcceptorRecord, 'group 1');
      if (i !== 4) assert.equal(await reopened.get(2, i), undefined, `group 2 instance ${i} cleared`);
    }
    assertRecord(await reopened.get(2, 4), record(4, 'after clear'), 'group 2');
    assert.deepEqual(await Promise.all([0, 1, 2].map((group) => reopened.maxInstanceId(group))), [19, 19, 4]);
    assert.deepEqual(reopened.groupIndexes, [0, 1, 2]);
    const listed: number[] = [];
    for await (const item of reopened.records(1)) listed.push(item.instanceId);
    assert.deepEqual(listed, Array.from({ length: 10 }, (_, i) => 10 + i));
    await reopened.close();
  });

  test('close waits for queued puts', async () => {
    const dir = await directory('close-waits');
    const store = await open(dir);
    const puts = Array.from({ length: 50 }, (_, i) => store.put(0, [big(i)], { sync: false }));
    await store.close();
    await Promise.all(puts);
    const reopened = await open(dir);
    for (let i = 0; i < 50; i++) assertRecord(await reopened.get(0, i), big(i), 'queued before close');
    await reopened.close();
  });
});

describe('FileLogStore sync switch', () => {
  test('setSync(false) stops fdatasync for puts, setSync(true) brings it back; sync: false at open too',
    async () => {
      const dir = await directory('sync');
      const fs = new RecordingFileSystem();
      const store = await open(dir, { fileSystem: fs, segmentBytes: 1024 * 1024 });
      const syncs = (): number => fs.count('datasync', segmentPath(dir, 1));
      let last = syncs();
      const step = async (instanceId: number, sync: boolean): Promise<number> => {
        await store.put(0, [record(instanceId, `v${instanceId}`)], { sync });
        const now = syncs();
        const added = now - last;
        last = now;
        return added;
      };
      assert.equal(await step(0, true), 1, 'sync on, put with sync');
      assert.equal(await step(1, false), 0, 'sync on, put without sync');
      store.setSync(false);
      assert.equal(await step(2, true), 0, 'sync off, put with sync');
      assert.equal(await step(3, true), 0, 'sync off, put with sync');
      store.setSync(true);
      assert.equal(await step(4, true), 1, 'sync back on');
      for (let i = 0; i < 5; i++) assertRecord(await store.get(0, i), record(i, `v${i}`), 'readable');
      await store.close();

      const unsynced = new RecordingFileSystem();
      const second = await open(dir, { fileSystem: unsynced, segmentBytes: 1024 * 1024, sync: false });
      await second.put(0, [record(5, 'v5')], { sync: true });
      assert.equal(unsynced.count('datasync', segmentPath(dir, 1)), 0, 'sync: false at open');
      await second.close();
      const third = await open(dir);
      for (let i = 0; i < 6; i++) assertRecord(await third.get(0, i), record(i, `v${i}`), 'after reopen');
      await third.close();
    });
});

describe('FileLogStore read-only', () => {
  test('a read-only open reads everything, writes nothing, and rejects every change', async () => {
    const dir = await directory('read-only');
    const writer = await open(dir);
    for (let i = 0; i < 40; i++) await writer.put(i % 2, [big(i)], { sync: true });
    await writer.setSystemVariables(0, utf8('sys'));
    await writer.setMasterVariables(1, utf8('master'));
    await writer.deleteBelow(1, 9);
    await writer.close();
    const before = await snapshot(dir);
    // Let the clock move, so a write would show in the modification times.
    await new Promise((resolve) => setTimeout(resolve, 20));

    const fs = new RecordingFileSystem();
    const reader = await open(dir, { readOnly: true, fileSystem: fs });
    assert.equal(reader.recovery.records, 40);
    for (let i = 0; i < 40; i++) {
      if (i % 2 === 1 && i < 9) assert.equal(await reader.get(1, i), undefined);
      else assertRecord(await reader.get(i % 2, i), big(i), 'read-only');
    }
    assert.equal(await reader.maxInstanceId(0), 38);
    assert.equal(await reader.minChosenInstanceId(1), 9);
    assert.equal(Buffer.from((await reader.systemVariables(0)) ?? []).toString(), 'sys');
    assert.equal(Buffer.from((await reader.masterVariables(1)) ?? []).toString(), 'master');
    await rejectsWith(reader.put(0, [big(100)], { sync: true }), 'BAD_OPTIONS', /read-only/);
    await rejectsWith(reader.setSystemVariables(0, utf8('x')), 'BAD_OPTIONS');
    await rejectsWith(reader.setMasterVariables(0, utf8('x')), 'BAD_OPTIONS');
    await rejectsWith(reader.setMinChosenInstanceId(0, 5), 'BAD_OPTIONS');
    await rejectsWith(reader.deleteBelow(0, 30), 'BAD_OPTIONS');
    await rejectsWith(reader.clear(0), 'BAD_OPTIONS');
    assertRecord(await reader.get(0, 0), big(0), 'still there after the refused changes');
    assert.equal(await reader.minChosenInstanceId(0), 0, 'a refused change leaves no trace');
    await reader.close();

    const mutating = fs.events.filter((event) =>
      ['create', 'write', 'datasync', 'unlink', 'rename', 'mkdir', 'syncDirectory'].includes(event.op));
    assert.deepEqual(mutating, [], 'no mutating file operation');
    assert.deepEqual(await snapshot(dir), before, 'listing, sizes, contents and mtimes unchanged');
  });

  test('a read-only open of a directory without a log fails and creates nothing', async () => {
    const dir = await directory('read-only-empty');
    await rejectsWith(open(dir, { readOnly: true }), 'BAD_OPTIONS', /no log/);
    assert.deepEqual(await readdir(dir), []);
  });
});

describe('FileLogStore after close', () => {
  test('every operation rejects with STOPPED once closed; close is idempotent', async () => {
    const dir = await directory('closed');
    const store = await open(dir);
    await store.put(0, [big(0)], { sync: true });
    await store.close();
    await store.close();
    await rejectsWith(store.get(0, 0), 'STOPPED');
    await rejectsWith(store.get(0, 1), 'STOPPED');
    await rejectsWith(store.put(0, [big(1)], { sync: true }), 'STOPPED');
    await rejectsWith(store.maxInstanceId(0), 'STOPPED');
    await rejectsWith(store.minChosenInstanceId(0), 'STOPPED');
    await rejectsWith(store.systemVariables(0), 'STOPPED');
    await rejectsWith(store.setSystemVariables(0, utf8('x')), 'STOPPED');
    await rejectsWith(store.deleteBelow(0, 1), 'STOPPED');
    await rejectsWith(store.clear(0), 'STOPPED');
    const info = await stat(segmentPath(dir, 1));
    assert.equal(info.size, SEGMENT);
  });
});
