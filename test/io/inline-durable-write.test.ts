// FileLogStore's write path: a small durable write is made on the event loop's thread
// (writeDurablySync), a larger one on the thread pool; the puts of one turn, whichever groups they
// are for, share one write; and a failing inline write halts the store exactly as a failing
// thread-pool write does (the put fails with STORAGE_UNAVAILABLE, nothing after it is taken, resume
// brings it back with nothing of the failed write acknowledged); a slow disk sends writes back to
// the thread pool for a while. On the real file system.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import type { AcceptorRecord } from '../../src/core/ready.js';
import { PaxosError } from '../../src/errors.js';
import { FileLogStore, recordBytesOnDisk, type FileLogStoreOptions } from '../../src/io/file-log-store.js';
import type { FileHandle } from '../../src/io/file-system.js';
import { assertRecord, patternBytes, record } from '../contract/log-store-contract.js';
import { tempDirectory } from './file-store-fixtures.js';
import { rejection } from './tmpfs-fixtures.js';
import { DelegatingFileSystem } from '../support/delegating-file-system.js';

const SEGMENT = 64 * 1024;
/** Records of this value size are written inline with INLINE_BYTES, one at a time. */
const SMALL_VALUE = 100;
const INLINE_BYTES = 2048;
const LARGE_VALUE = 4000;

const directories: (() => Promise<void>)[] = [];
after(async () => {
  for (const remove of directories) await remove();
});

async function directory(name: string): Promise<string> {
  const made = await tempDirectory(`inline-write-${name}`);
  directories.push(made.remove);
  return made.path;
}

function small(instanceId: number): AcceptorRecord {
  return record(instanceId, patternBytes(SMALL_VALUE, instanceId + 1));
}

function large(instanceId: number): AcceptorRecord {
  return record(instanceId, patternBytes(LARGE_VALUE, instanceId + 1));
}

type WriteKind = 'inline' | 'threadPool' | 'plain';

/** The real file system; it notes how each log write was made, and can fail inline writes with EIO. */
class WatchingFileSystem extends DelegatingFileSystem {
  readonly writes: { kind: WriteKind; bytes: number }[] = [];
  /** The next inline writes fail with EIO after putting half of their bytes on disk. */
  failInline = false;
  /** Inline writes take at least this long (a slow disk), blocking as a real one would. */
  inlineDelayMs = 0;
  /** Called on each fdatasync of a log segment. */
  onDatasync = (): void => {};

  override async open(path: string, readOnly: boolean): Promise<FileHandle> {
    return this.wrap(await this.real.open(path, readOnly), path);
  }

  override async create(path: string): Promise<FileHandle> {
    return this.wrap(await this.real.create(path), path);
  }

  kinds(): WriteKind[] {
    return this.writes.map((write) => write.kind);
  }

  private wrap(handle: FileHandle, path: string): FileHandle {
    const isLog = /\d{10}\.log$/.test(path);
    const note = (kind: WriteKind, data: Uint8Array): void => {
      if (isLog) this.writes.push({ kind, bytes: data.length });
    };
    const writeDurablySync = handle.writeDurablySync?.bind(handle);
    assert.ok(writeDurablySync !== undefined, 'the real file system offers inline durable writes');
    return {
      write: (data, position) => {
        note('plain', data);
        return handle.write(data, position);
      },
      writeDurably: (data, position) => {
        note('threadPool', data);
        return handle.writeDurably?.(data, position) ?? handle.write(data, position);
      },
      writeDurablySync: (data, position) => {
        note('inline', data);
        if (isLog && this.failInline) {
          writeDurablySync(data.subarray(0, Math.floor(data.length / 2)), position);
          throw Object.assign(new Error('EIO: i/o error, write'), { code: 'EIO' });
        }
        writeDurablySync(data, position);
        if (isLog && this.inlineDelayMs > 0) sleepBlocking(this.inlineDelayMs);
      },
      read: (length, position) => handle.read(length, position),
      datasync: () => {
        if (isLog) this.onDatasync();
        return handle.datasync();
      },
      size: () => handle.size(),
      close: () => handle.close(),
    };
  }
}

/** Blocks the thread, as a slow fdatasync does. */
function sleepBlocking(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * A store on `fileSystem`. Inline writes are never paused for slowness unless asked: a busy shared
 * machine's disk must not change which write path the other tests see.
 */
function open(dir: string, fileSystem: WatchingFileSystem, options: Partial<FileLogStoreOptions> = {}):
  Promise<FileLogStore> {
  return FileLogStore.open({ directory: dir, segmentBytes: SEGMENT, fileSystem, inlineWriteBytes: INLINE_BYTES,
    slowInlineWriteMs: Number.MAX_VALUE, ...options });
}

test('a small durable write is made inline, a larger one on the thread pool, one without sync plainly', async () => {
  const dir = await directory('kinds');
  const fileSystem = new WatchingFileSystem();
  const store = await open(dir, fileSystem);
  assert.ok(recordBytesOnDisk(SMALL_VALUE) <= INLINE_BYTES && recordBytesOnDisk(LARGE_VALUE) > INLINE_BYTES);
  fileSystem.writes.length = 0;
  await store.put(0, [small(0)], { sync: true });
  await store.put(0, [large(1)], { sync: true });
  await store.put(0, [small(2)], { sync: false });
  // After a write without sync the file holds unsynced data: O_DSYNC would not cover it, so the
  // next durable write goes through write + fdatasync, and only the one after it inline again.
  await store.put(0, [small(3)], { sync: true });
  await store.put(0, [small(4)], { sync: true });
  assert.deepEqual(fileSystem.kinds(), ['inline', 'threadPool', 'plain', 'plain', 'inline']);
  await store.close();

  const reopened = await FileLogStore.open({ directory: dir, segmentBytes: SEGMENT });
  for (const expected of [small(0), large(1), small(2), small(3), small(4)]) {
    assertRecord(await reopened.get(0, expected.instanceId), expected, `instance ${expected.instanceId}`);
  }
  await reopened.close();
});

test('inlineWriteBytes 0 sends every durable write to the thread pool', async () => {
  const dir = await directory('off');
  const fileSystem = new WatchingFileSystem();
  const store = await open(dir, fileSystem, { inlineWriteBytes: 0 });
  fileSystem.writes.length = 0;
  for (let i = 0; i < 3; i++) await store.put(0, [small(i)], { sync: true });
  assert.deepEqual(fileSystem.kinds(), ['threadPool', 'threadPool', 'threadPool']);
  await store.close();
});

test('the puts of one turn, from eight groups, share one write; later turns get their own', async () => {
  const dir = await directory('turn');
  const fileSystem = new WatchingFileSystem();
  const store = await open(dir, fileSystem, { inlineWriteBytes: 64 * 1024 });
  fileSystem.writes.length = 0;
  const flushesBefore = store.stats.flushes;
  await Promise.all(Array.from({ length: 8 }, (_, group) => store.put(group, [small(0)], { sync: true })));
  assert.equal(store.stats.flushes - flushesBefore, 1, 'one flush for the turn');
  assert.deepEqual(fileSystem.writes, [{ kind: 'inline', bytes: 8 * recordBytesOnDisk(SMALL_VALUE) }]);
  for (let group = 0; group < 8; group++) await store.put(group, [small(1)], { sync: true });
  assert.equal(store.stats.flushes - flushesBefore, 9, 'awaited one at a time, each put is its own flush');
  for (let group = 0; group < 8; group++) assertRecord(await store.get(group, 0), small(0), `group ${group}`);
  await store.close();
});

test('a failing inline write halts the store like any failed write; resume() brings it back', async () => {
  const dir = await directory('eio');
  const fileSystem = new WatchingFileSystem();
  const store = await open(dir, fileSystem);
  for (let i = 0; i < 3; i++) await store.put(1, [small(i)], { sync: true });
  fileSystem.failInline = true;
  const failed = await rejection(store.put(1, [small(3)], { sync: true }));
  assert.ok(failed instanceof PaxosError && failed.code === 'STORAGE_UNAVAILABLE', String(failed));
  assert.match(failed.message, /EIO/);
  assert.equal(store.storageFailure()?.reason, 'EIO');
  const refused = await rejection(store.put(1, [small(4)], { sync: true }));
  assert.ok(refused instanceof PaxosError && refused.code === 'STORAGE_UNAVAILABLE', 'later puts are refused');
  const inlineWrites = fileSystem.kinds().filter((kind) => kind === 'inline').length;
  assert.equal(inlineWrites, 4, 'the refused put was never written');

  fileSystem.failInline = false;
  await store.resume();
  assert.equal(await store.get(1, 3), undefined, 'the failed write was never acknowledged: it is not there');
  assert.equal(await store.maxInstanceId(1), 2);
  await store.put(1, [small(3)], { sync: true });
  await store.close();

  const reopened = await FileLogStore.open({ directory: dir, segmentBytes: SEGMENT });
  assert.equal(reopened.recovery.truncatedTail, null, 'nothing of the failed write is left to truncate');
  for (let i = 0; i < 4; i++) assertRecord(await reopened.get(1, i), small(i), `instance ${i}`);
  await reopened.close();
});

test('a slow disk stops inline writes for a second: the loop must not stall behind it; then one write probes again',
  async () => {
    const dir = await directory('slow');
    const fileSystem = new WatchingFileSystem();
    // 50 ms, not the default 4: a real fdatasync on a busy shared machine must not look slow here.
    const store = await open(dir, fileSystem, { slowInlineWriteMs: 50 });
    fileSystem.writes.length = 0;
    fileSystem.inlineDelayMs = 300;
    // 300 ms lifts the average (a fifth of each write) above 50 ms at once.
    for (let i = 0; i < 3; i++) await store.put(0, [small(i)], { sync: true });
    assert.deepEqual(fileSystem.kinds(), ['inline', 'threadPool', 'threadPool'], JSON.stringify(fileSystem.writes));
    await new Promise((resolve) => setTimeout(resolve, 1100));
    // Still slow: one probe, and the pool again.
    for (let i = 3; i < 5; i++) await store.put(0, [small(i)], { sync: true });
    assert.deepEqual(fileSystem.kinds().slice(3), ['inline', 'threadPool']);
    fileSystem.inlineDelayMs = 0;
    await new Promise((resolve) => setTimeout(resolve, 1100));
    // Fast again: the probe keeps inline writes on.
    for (let i = 5; i < 8; i++) await store.put(0, [small(i)], { sync: true });
    assert.deepEqual(fileSystem.kinds().slice(5), ['inline', 'inline', 'inline']);
    await store.close();
    const reopened = await FileLogStore.open({ directory: dir, segmentBytes: SEGMENT });
    for (let i = 0; i < 8; i++) assertRecord(await reopened.get(0, i), small(i), `instance ${i}`);
    await reopened.close();
  });

test('before each inline write the store calls beforeInlineWrite (the node sends what it queued); a throw is only logged',
  async () => {
    const dir = await directory('before');
    const fileSystem = new WatchingFileSystem();
    const calls: number[] = [];
    let throwing = false;
    const store = await open(dir, fileSystem, {
      beforeInlineWrite: () => {
        calls.push(fileSystem.writes.length);
        if (throwing) throw new Error('a bug in the hook');
      },
    });
    fileSystem.writes.length = 0;
    await store.put(0, [small(0)], { sync: true });
    await store.put(0, [large(1)], { sync: true });
    await store.put(0, [small(2)], { sync: true });
    // Called before the first and the third write (inline), not before the second (thread pool).
    assert.deepEqual(calls, [0, 2]);
    throwing = true;
    await store.put(0, [small(3)], { sync: true });
    assert.deepEqual(calls, [0, 2, 3]);
    assert.equal(store.storageFailure(), undefined, 'the write went on');
    assertRecord(await store.get(0, 3), small(3), 'written');
    await store.close();
  });

test('a store opened without sync on a log with data: after setSync(true) the first durable write covers that data too',
  async () => {
    const dir = await directory('unsynced-open');
    const first = await open(dir, new WatchingFileSystem(), { sync: false });
    await first.put(0, [small(0)], { sync: false });
    await first.close();
    // Opened without sync, the store skips the datasync of what the log holds: it may still be in
    // the page cache. An O_DSYNC write would make only itself durable, so the first durable write
    // after setSync(true) must be write + fdatasync, and only the next one inline.
    const fileSystem = new WatchingFileSystem();
    const store = await open(dir, fileSystem, { sync: false });
    store.setSync(true);
    fileSystem.writes.length = 0;
    let datasyncs = 0;
    fileSystem.onDatasync = () => datasyncs++;
    await store.put(0, [small(1)], { sync: true });
    assert.deepEqual(fileSystem.kinds(), ['plain']);
    assert.equal(datasyncs, 1, 'the write is followed by fdatasync');
    await store.put(0, [small(2)], { sync: true });
    assert.deepEqual(fileSystem.kinds(), ['plain', 'inline']);
    await store.close();

    // With sync on from the start, the open made the log durable: the first write is inline.
    const synced = new WatchingFileSystem();
    const reopened = await open(dir, synced);
    synced.writes.length = 0;
    await reopened.put(0, [small(3)], { sync: true });
    assert.deepEqual(synced.kinds(), ['inline']);
    for (let i = 0; i < 4; i++) assertRecord(await reopened.get(0, i), small(i), `instance ${i}`);
    await reopened.close();
  });
