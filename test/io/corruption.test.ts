// FileLogStore against damaged files: a torn tail is truncated and reported; damage anywhere else,
// in the metadata, or in a record read after start-up is refused with STORAGE_CORRUPT, never
// answered with wrong data.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { open as openFile, readFile, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import type { AcceptorRecord } from '../../src/core/ready.js';
import { PaxosError } from '../../src/errors.js';
import { FileLogStore, recordBytesOnDisk, type FileLogStoreOptions } from '../../src/io/file-log-store.js';
import { encodeRecord, MAX_RECORD_BYTES } from '../../src/io/record-codec.js';
import { scanSegment } from '../../src/io/segment.js';
import { utf8 } from '../../src/util/bytes.js';
import { assertRecord, patternBytes, record } from '../contract/log-store-contract.js';
import { RecordingFileSystem, RecordingLogger, segmentPath, segmentsOf, tempDirectory } from './file-store-fixtures.js';

const SEGMENT = 64 * 1024;
const VALUE = 100;
const FRAME = recordBytesOnDisk(VALUE);

const directories: (() => Promise<void>)[] = [];
after(async () => {
  for (const remove of directories) await remove();
});

async function directory(name: string): Promise<string> {
  const made = await tempDirectory(`corruption-${name}`);
  directories.push(made.remove);
  return made.path;
}

function open(dir: string, options: Partial<FileLogStoreOptions> = {}): Promise<FileLogStore> {
  return FileLogStore.open({ directory: dir, segmentBytes: SEGMENT, ...options });
}

function item(instanceId: number, valueBytes = VALUE): AcceptorRecord {
  return record(instanceId, patternBytes(valueBytes, instanceId + 1));
}

/** A store in `dir` holding instances 0..count-1 of group 0, one frame each, in segment 1 in order. */
async function writeLog(dir: string, count: number, options: Partial<FileLogStoreOptions> = {}): Promise<void> {
  const store = await open(dir, options);
  for (let i = 0; i < count; i++) await store.put(0, [item(i)], { sync: true });
  await store.close();
}

async function patch(path: string, offset: number, bytes: Uint8Array): Promise<void> {
  const handle = await openFile(path, 'r+');
  try {
    await handle.write(bytes, 0, bytes.length, offset);
    await handle.datasync();
  } finally {
    await handle.close();
  }
}

async function flipBit(path: string, offset: number, bit: number): Promise<void> {
  const handle = await openFile(path, 'r+');
  try {
    const byte = Buffer.alloc(1);
    await handle.read(byte, 0, 1, offset);
    byte[0] = (byte[0] as number) ^ (1 << bit);
    await handle.write(byte, 0, 1, offset);
  } finally {
    await handle.close();
  }
}

async function rejectsCorrupt(promise: Promise<unknown>, ...patterns: RegExp[]): Promise<PaxosError> {
  let caught: unknown;
  await promise.then(() => assert.fail('expected STORAGE_CORRUPT, but it succeeded'), (error: unknown) => {
    caught = error;
  });
  assert.ok(caught instanceof PaxosError, `expected a PaxosError, got ${String(caught)}`);
  assert.equal(caught.code, 'STORAGE_CORRUPT', caught.message);
  for (const pattern of patterns) assert.match(caught.message, pattern);
  return caught;
}

function escaped(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Matches a message naming `path` and `offset`. */
function names(path: string, offset: number): RegExp[] {
  return [new RegExp(escaped(path)), new RegExp(`offset ${offset}\\b`)];
}

function garbage(length: number, seed: number): Buffer {
  const bytes = Buffer.from(patternBytes(length, seed));
  for (let i = 0; i < bytes.length; i++) if (bytes[i] === 0) bytes[i] = 0xa5;
  return bytes;
}

interface TornCase {
  readonly name: string;
  /** Damage segment 1 of a log holding COUNT frames; returns where the valid data now ends. */
  readonly damage: (path: string) => Promise<number>;
  readonly reason: RegExp;
  /** Instances still readable after the repair. */
  readonly survivors: number;
  /** Where the next write lands: at the truncation point, or (a file cut short: no room) the next segment. */
  readonly nextWrite?: 'in place' | 'next segment';
}

const COUNT = 10;
const LAST = (COUNT - 1) * FRAME;

const TORN: readonly TornCase[] = [
  {
    name: 'the last frame lost its final bytes (they never reached the disk)',
    damage: async (path) => {
      await patch(path, LAST + FRAME - 20, Buffer.alloc(20));
      return LAST;
    },
    reason: /CRC/, survivors: COUNT - 1,
  },
  {
    name: 'the last frame\'s tail and what follows are overwritten with garbage',
    damage: async (path) => {
      await patch(path, LAST + FRAME - 30, garbage(30 + 200, 5));
      return LAST;
    },
    reason: /CRC|implausible|runs past/, survivors: COUNT - 1,
  },
  {
    name: 'half of a new frame was written after the last one',
    damage: async (path) => {
      const frame = Buffer.alloc(FRAME);
      encodeRecord(frame, 0, 0, 0, { write: 0, start: 0 }, item(COUNT));
      await patch(path, COUNT * FRAME, frame.subarray(0, Math.floor(FRAME / 2)));
      return COUNT * FRAME;
    },
    reason: /CRC/, survivors: COUNT,
  },
  {
    name: 'only the header of a new frame was written',
    damage: async (path) => {
      const frame = Buffer.alloc(FRAME);
      encodeRecord(frame, 0, 0, 0, { write: 0, start: 0 }, item(COUNT));
      await patch(path, COUNT * FRAME, frame.subarray(0, 8));
      return COUNT * FRAME;
    },
    reason: /CRC/, survivors: COUNT,
  },
  {
    name: 'a write of four frames landed all but the sectors of its first header (a 512-byte-sector device)',
    damage: async (path) => {
      const from = COUNT * FRAME;
      const write = scanSegment(await readFile(path), -1).highestWrite + 1;
      const frames = Buffer.alloc(4 * FRAME);
      for (let i = 0; i < 4; i++) {
        encodeRecord(frames, i * FRAME, 0, 0, { write, start: from }, item(COUNT + i));
      }
      const headerSectorsEnd = (Math.floor((from + 8) / 512) + 1) * 512;
      assert.ok(headerSectorsEnd <= from + 3 * FRAME, 'a whole frame of the write lands after the lost sectors');
      await patch(path, headerSectorsEnd, frames.subarray(headerSectorsEnd - from));
      return from;
    },
    reason: /after the end of the log/, survivors: COUNT,
  },
  {
    name: 'the file ends inside the last frame',
    damage: async (path) => {
      await truncate(path, LAST + 30);
      return LAST;
    },
    reason: /runs past the end|truncated/, survivors: COUNT - 1, nextWrite: 'next segment',
  },
];

describe('torn tail', () => {
  for (const torn of TORN) {
    test(`${torn.name}: detected at open, reported, truncated, and overwritten by later writes`, async () => {
      const dir = await directory('torn');
      await writeLog(dir, COUNT);
      const path = segmentPath(dir, 1);
      const dataEnd = await torn.damage(path);
      const damagedBytes = await readFile(path);

      const logger = new RecordingLogger();
      const store = await open(dir, { logger });
      assert.equal(store.recovery.truncatedTail?.file, path);
      assert.equal(store.recovery.truncatedTail?.offset, dataEnd);
      assert.match(store.recovery.truncatedTail?.reason ?? '', torn.reason);
      assert.equal(store.recovery.records, torn.survivors);
      const warnings = logger.lines.filter((line) => line.level === 'warn');
      assert.equal(warnings.length, 1, JSON.stringify(logger.lines));
      assert.match(warnings[0]?.message ?? '', /torn tail/);
      assert.equal(warnings[0]?.fields?.['file'], path);
      assert.equal(warnings[0]?.fields?.['offset'], dataEnd);

      for (let i = 0; i < torn.survivors; i++) assertRecord(await store.get(0, i), item(i), 'survivor');
      for (let i = torn.survivors; i <= COUNT; i++) assert.equal(await store.get(0, i), undefined, `instance ${i}`);
      assert.equal(await store.maxInstanceId(0), torn.survivors - 1);
      // The repair zeroed the damaged bytes, so nothing of them can be misread later.
      const repaired = await readFile(path);
      assert.ok(repaired.subarray(dataEnd, damagedBytes.length).every((byte) => byte === 0), 'tail zeroed');
      assert.ok(repaired.subarray(0, dataEnd).equals(damagedBytes.subarray(0, dataEnd)), 'valid data untouched');

      // The next write lands where the valid data ended, and survives a reopen.
      const next = item(COUNT + 5, 500);
      await store.put(0, [next], { sync: true });
      await store.close();
      const segments = await segmentsOf(dir);
      if (torn.nextWrite === 'next segment') {
        assert.equal(segments.get(1)?.bytes, damagedBytes.length, 'a short segment is not extended');
        assert.equal(segments.get(2)?.records[0]?.instance, COUNT + 5, 'no room left: the write went to segment 2');
      } else {
        const landed = segments.get(1)?.records.find((stored) => stored.instance === COUNT + 5);
        assert.equal(landed?.offset, dataEnd, 'the new record overwrote the truncated tail');
      }

      const again = new RecordingLogger();
      const reopened = await open(dir, { logger: again });
      assert.equal(reopened.recovery.truncatedTail, null);
      assert.equal(again.lines.filter((line) => line.level === 'warn').length, 0);
      for (let i = 0; i < torn.survivors; i++) assertRecord(await reopened.get(0, i), item(i), 'after reopen');
      assertRecord(await reopened.get(0, COUNT + 5), next, 'written after the repair');
      await reopened.close();
    });
  }

  test('a read-only open reports a torn tail but repairs nothing', async () => {
    const dir = await directory('torn-read-only');
    await writeLog(dir, COUNT);
    const path = segmentPath(dir, 1);
    await patch(path, LAST + FRAME - 20, Buffer.alloc(20));
    const before = await readFile(path);
    const store = await open(dir, { readOnly: true });
    assert.equal(store.recovery.truncatedTail?.offset, LAST);
    assert.equal(await store.get(0, COUNT - 1), undefined);
    assertRecord(await store.get(0, COUNT - 2), item(COUNT - 2), 'read-only');
    await store.close();
    assert.ok((await readFile(path)).equals(before), 'the file is untouched');
  });
});

describe('damage that is not a torn tail', () => {
  const DAMAGED = 4;
  const at = DAMAGED * FRAME;
  const positions: readonly { name: string; offset: number; bit: number }[] = [
    { name: 'the length field (to an implausible length)', offset: at, bit: 7 },
    { name: 'the length field (to a plausible one)', offset: at, bit: 2 },
    { name: 'the CRC field', offset: at + 5, bit: 0 },
    { name: 'the record kind', offset: at + 8, bit: 1 },
    { name: 'the instance id', offset: at + 8 + 9, bit: 0 },
    { name: 'the promised ballot', offset: at + 8 + 17, bit: 6 },
    { name: 'the value', offset: at + 8 + 57 + 50, bit: 3 },
    { name: 'the last byte of the value', offset: at + FRAME - 1, bit: 0 },
  ];
  for (const { name, offset, bit } of positions) {
    test(`a flipped bit in ${name} of a record followed by valid ones: open refuses, naming file and offset`,
      async () => {
        const dir = await directory('flip');
        await writeLog(dir, COUNT);
        const path = segmentPath(dir, 1);
        await flipBit(path, offset, bit);
        const before = await readFile(path);
        await rejectsCorrupt(open(dir), ...names(path, at), /valid records follow/);
        await rejectsCorrupt(open(dir, { readOnly: true }), ...names(path, at));
        assert.ok((await readFile(path)).equals(before), 'nothing was repaired or truncated');
      });
  }

  test('a flipped bit in the very first record is corruption too', async () => {
    const dir = await directory('flip-first');
    await writeLog(dir, COUNT);
    const path = segmentPath(dir, 1);
    await flipBit(path, 8 + 57 + 3, 4);
    await rejectsCorrupt(open(dir), ...names(path, 0));
  });

  test('damage at the end of an earlier segment while later segments hold data: open refuses', async () => {
    const dir = await directory('earlier-segment');
    // 900-byte values in 4 KiB segments: 4 frames a segment, 12 frames in segments 1-3.
    const store = await open(dir, { segmentBytes: 4096 });
    for (let i = 0; i < 12; i++) await store.put(0, [item(i, 900)], { sync: true });
    await store.close();
    const frame = recordBytesOnDisk(900);
    const segments = await segmentsOf(dir);
    assert.deepEqual([1, 2, 3].map((n) => segments.get(n)?.records.length), [4, 4, 4]);
    const first = segmentPath(dir, 1);
    // Shaped like a torn tail (nothing valid follows in its own segment), but segment 2 and 3 hold data.
    await patch(first, 3 * frame + frame - 10, Buffer.alloc(10));
    await rejectsCorrupt(open(dir, { segmentBytes: 4096 }), ...names(first, 3 * frame), /later segments/);
    await rejectsCorrupt(open(dir, { segmentBytes: 4096, readOnly: true }), ...names(first, 3 * frame));
  });

  test('a flipped bit in the middle of a later segment: open refuses, naming that segment', async () => {
    const dir = await directory('middle-segment');
    const store = await open(dir, { segmentBytes: 4096 });
    for (let i = 0; i < 12; i++) await store.put(0, [item(i, 900)], { sync: true });
    await store.close();
    const frame = recordBytesOnDisk(900);
    const second = segmentPath(dir, 2);
    await flipBit(second, frame + 100, 5);
    await rejectsCorrupt(open(dir, { segmentBytes: 4096 }), ...names(second, frame));
  });
});

describe('corrupt metadata', () => {
  const damages: readonly { name: string; damage: (path: string) => Promise<void>; reason: RegExp }[] = [
    { name: 'a flipped bit in its body', damage: (path) => flipBit(path, 20, 2), reason: /CRC/ },
    { name: 'a flipped bit in its CRC', damage: (path) => flipBit(path, 5, 0), reason: /CRC/ },
    { name: 'cut short inside its header', damage: (path) => truncate(path, 5), reason: /shorter/ },
    { name: 'cut short inside its body', damage: (path) => truncate(path, 30), reason: /header says/ },
    {
      name: 'a body that is not JSON (with a matching CRC)',
      damage: async (path) => writeFile(path, framedMeta(Buffer.from('{"version":1,"groups":'))),
      reason: /JSON/,
    },
    {
      name: 'an unknown version (with a matching CRC)',
      damage: async (path) => writeFile(path, framedMeta(Buffer.from('{"version":99,"groups":{}}'))),
      reason: /version 99/,
    },
  ];
  for (const { name, damage, reason } of damages) {
    test(`meta file with ${name}: open refuses with STORAGE_CORRUPT`, async () => {
      const dir = await directory('meta');
      const store = await open(dir);
      await store.put(0, [item(0)], { sync: true });
      await store.setSystemVariables(0, utf8('system variables of group 0'));
      await store.close();
      const path = join(dir, 'meta');
      await damage(path);
      await rejectsCorrupt(open(dir), new RegExp(escaped(path)), reason);
      await rejectsCorrupt(open(dir, { readOnly: true }), new RegExp(escaped(path)), reason);
    });
  }
});

function framedMeta(body: Buffer): Buffer {
  const bytes = Buffer.alloc(8 + body.length);
  bytes.writeUInt32LE(body.length, 0);
  bytes.writeUInt32LE(crc32(body), 4);
  body.copy(bytes, 8);
  return bytes;
}

describe('damage after open', () => {
  const TARGET = 3;
  const at = TARGET * FRAME;
  const damages: readonly { name: string; damage: (path: string) => Promise<void> }[] = [
    { name: 'a flipped bit in the value', damage: (path) => flipBit(path, at + 8 + 57 + 7, 1) },
    { name: 'a flipped bit in the group', damage: (path) => flipBit(path, at + 8 + 1, 0) },
    { name: 'the frame zeroed', damage: (path) => patch(path, at, Buffer.alloc(FRAME)) },
    {
      name: 'a valid frame of another instance in its place',
      damage: async (path) => {
        const other = Buffer.alloc(FRAME);
        encodeRecord(other, 0, 0, 0, { write: 0, start: 0 }, item(TARGET + 2));
        await patch(path, at, other);
      },
    },
    {
      name: 'a valid frame of the same instance of another group in its place',
      damage: async (path) => {
        const other = Buffer.alloc(FRAME);
        encodeRecord(other, 0, 1, 0, { write: 0, start: 0 }, item(TARGET));
        await patch(path, at, other);
      },
    },
    {
      name: 'a huge length field',
      damage: async (path) => {
        const length = Buffer.alloc(4);
        length.writeUInt32LE(0xfffffff0, 0);
        await patch(path, at, length);
      },
    },
    {
      name: 'a length field longer than the rest of the file',
      damage: async (path) => {
        const length = Buffer.alloc(4);
        length.writeUInt32LE(SEGMENT, 0);
        await patch(path, at, length);
      },
    },
    { name: 'the file cut before it', damage: (path) => truncate(path, at - 10) },
  ];
  for (const { name, damage } of damages) {
    test(`get of a record with ${name} rejects with STORAGE_CORRUPT naming file and offset`, async () => {
      const dir = await directory('after-open');
      const fs = new RecordingFileSystem();
      const store = await open(dir, { fileSystem: fs });
      try {
        for (let i = 0; i < COUNT; i++) await store.put(0, [item(i)], { sync: true });
        assertRecord(await store.get(0, TARGET), item(TARGET), 'before the damage');
        const path = segmentPath(dir, 1);
        await damage(path);
        await rejectsCorrupt(store.get(0, TARGET), ...names(path, at), new RegExp(`instance ${TARGET}\\b`));
        // A damaged length must not make the store allocate (or read) more than any record can be.
        const largest = Math.max(...fs.events.filter((event) => event.op === 'read').map((event) => event.length ?? 0));
        assert.ok(largest <= 8 + MAX_RECORD_BYTES, `a read of ${largest} bytes`);
        // Again (no state was cached from the failed read), and the others still read back.
        await rejectsCorrupt(store.get(0, TARGET), ...names(path, at));
        if (!name.includes('cut')) {
          for (const i of [0, TARGET - 1, TARGET + 1, COUNT - 1]) assertRecord(await store.get(0, i), item(i), 'undamaged');
        }
      } finally {
        await store.close();
      }
    });
  }
});
