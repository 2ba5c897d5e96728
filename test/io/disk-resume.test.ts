// FileLogStore.resume: after a failed write the store refuses writes; resume() fails (and changes
// nothing) while the disk still refuses them, and once it takes them again the store rebuilds itself
// from disk and takes writes: nothing acknowledged is lost, nothing refused appears, no temporary
// file is left. Real faults on a small tmpfs (ENOSPC, EROFS; needs root, skipped otherwise) and an
// injected EIO that leaves half of the failed write behind (the bytes a failed write or fsync leaves
// are unknown: resume must not trust them). And a store that cannot start for lack of space says so
// and leaves nothing behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { open as openFile, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { AcceptorRecord } from '../../src/core/ready.js';
import { PaxosError } from '../../src/errors.js';
import { FileLogStore, recordBytesOnDisk } from '../../src/io/file-log-store.js';
import type { FileHandle } from '../../src/io/file-system.js';
import { utf8 } from '../../src/util/bytes.js';
import { assertRecord, patternBytes, record } from '../contract/log-store-contract.js';
import { tempDirectory } from './file-store-fixtures.js';
import { rejection, withTmpfs } from './tmpfs-fixtures.js';
import { DelegatingFileSystem } from '../support/delegating-file-system.js';

const SEGMENT = 64 * 1024;
const VALUE = 1024 - recordBytesOnDisk(0);
const TEST_TIMEOUT_MS = 60_000;
const NO_SPACE = /ENOSPC|no space/i;

function fill(instanceId: number): AcceptorRecord {
  return record(instanceId, patternBytes(VALUE, instanceId + 1));
}

function assertUnavailable(error: unknown, cause: RegExp): void {
  assert.ok(error instanceof PaxosError, `expected a PaxosError, got ${String(error)}`);
  assert.equal(error.code, 'STORAGE_UNAVAILABLE', error.message);
  assert.match(error.message, cause);
}

async function temporaryFiles(directory: string): Promise<string[]> {
  const top = (await readdir(directory)).filter((name) => name.endsWith('.tmp'));
  const log = (await readdir(join(directory, 'log'))).filter((name) => name.endsWith('.tmp'));
  return [...top, ...log];
}

/** Write a file of `chunk`s until the file system is full; returns its path. */
async function fillDisk(path: string): Promise<void> {
  const handle = await openFile(path, 'w');
  try {
    const chunk = Buffer.alloc(16 * 1024, 1);
    for (;;) await handle.write(chunk);
  } catch (error) {
    assert.match(String(error), NO_SPACE);
  } finally {
    await handle.close();
  }
}

test('ENOSPC, then space again: resume() refuses while full, then the store takes writes; nothing lost or added',
  { timeout: TEST_TIMEOUT_MS }, async (t) => {
    await withTmpfs(t, '2m', async (mount, openStore) => {
      const directory = join(mount.path, 'store');
      const store = await openStore({ directory, segmentBytes: SEGMENT });
      await store.setSystemVariables(7, utf8('system'));
      const filler = join(mount.path, 'filler');
      await fillDisk(filler);
      // The active and spare segments still hold room: puts go on until the store must roll twice.
      let acknowledged = 0;
      let failure: unknown;
      for (let i = 0; i < 1_000 && failure === undefined; i++) {
        await store.put(7, [fill(i)], { sync: true })
          .then(() => { acknowledged++; }, (error: unknown) => { failure = error; });
      }
      t.diagnostic(`${acknowledged} acknowledged, then ${String(failure)}`);
      assertUnavailable(failure, NO_SPACE);
      assert.equal(store.storageFailure()?.reason, 'ENOSPC');
      assertUnavailable(await rejection(store.put(7, [fill(acknowledged)], { sync: true })), NO_SPACE);

      // Still full: resume fails, says why, and the store keeps refusing and keeps what it had.
      assertUnavailable(await rejection(store.resume()), NO_SPACE);
      assert.equal(store.storageFailure()?.reason, 'ENOSPC');
      assertUnavailable(await rejection(store.setMasterVariables(7, utf8('m'))), NO_SPACE);
      assertRecord(await store.get(7, acknowledged - 1), fill(acknowledged - 1), 'while full');
      assert.deepEqual(await temporaryFiles(directory), [], 'a failed attempt leaves no temporary file');

      await rm(filler);
      await store.resume();
      assert.equal(store.storageFailure(), undefined);
      const more = acknowledged + 20;
      for (let i = acknowledged; i < more; i++) await store.put(7, [fill(i)], { sync: true });
      await store.setMasterVariables(7, utf8('master'));
      for (let i = 0; i < more; i++) assertRecord(await store.get(7, i), fill(i), 'after resume');
      assert.equal(await store.maxInstanceId(7), more - 1);
      await store.close();

      const reopened = await openStore({ directory, segmentBytes: SEGMENT });
      assert.equal(reopened.recovery.truncatedTail, null);
      for (let i = 0; i < more; i++) assertRecord(await reopened.get(7, i), fill(i), 'after reopen');
      assert.equal(await reopened.maxInstanceId(7), more - 1);
      assert.equal(Buffer.from((await reopened.systemVariables(7)) ?? []).toString(), 'system');
      assert.equal(Buffer.from((await reopened.masterVariables(7)) ?? []).toString(), 'master');
      assert.deepEqual(await temporaryFiles(directory), []);
    });
  });

test('EROFS: resume() fails while read-only and succeeds after remount rw', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  await withTmpfs(t, '8m', async (mount, openStore) => {
    const directory = join(mount.path, 'store');
    const writer = await openStore({ directory, segmentBytes: SEGMENT });
    for (let i = 0; i < 10; i++) await writer.put(3, [fill(i)], { sync: true });
    await writer.close();
    const store = await openStore({ directory, segmentBytes: SEGMENT });
    mount.remount('ro');
    try {
      assertUnavailable(await rejection(store.put(3, [fill(10)], { sync: true })), /EROFS|read-only/i);
      assert.equal(store.storageFailure()?.reason, 'EROFS');
      assertUnavailable(await rejection(store.resume()), /EROFS|read-only/i);
    } finally {
      mount.remount('rw');
    }
    await store.resume();
    await store.put(3, [fill(10)], { sync: true });
    for (let i = 0; i <= 10; i++) assertRecord(await store.get(3, i), fill(i), 'after rw');
    await store.close();
    const reopened = await openStore({ directory, segmentBytes: SEGMENT });
    for (let i = 0; i <= 10; i++) assertRecord(await reopened.get(3, i), fill(i), 'after reopen');
    assert.equal(await reopened.maxInstanceId(3), 10);
  });
});

/**
 * The real file system, except that while `failing` is set a log write puts half of its bytes on
 * disk and then fails with EIO (as a failed write or fsync leaves something unknown behind), on
 * every write path: plain, durable through the thread pool, and durable on the loop's thread.
 */
class HalfWritingFileSystem extends DelegatingFileSystem {
  failing = false;
  failures = 0;
  /** How each failed write was made. */
  readonly failedPaths: ('plain' | 'threadPool' | 'inline')[] = [];

  override async open(path: string, readOnly: boolean): Promise<FileHandle> {
    return this.wrap(await this.real.open(path, readOnly), path);
  }

  override async create(path: string): Promise<FileHandle> {
    return this.wrap(await this.real.create(path), path);
  }


  private wrap(handle: FileHandle, path: string): FileHandle {
    const isLog = /\d{10}\.log$/.test(path);
    const halfThenFail = async (data: Uint8Array, position: number, path: 'plain' | 'threadPool'): Promise<void> => {
      await handle.write(data.subarray(0, Math.floor(data.length / 2)), position);
      await handle.datasync();
      this.failures++;
      this.failedPaths.push(path);
      throw eio();
    };
    const writeDurablySync = handle.writeDurablySync?.bind(handle);
    return {
      write: (data, position) => isLog && this.failing ? halfThenFail(data, position, 'plain')
        : handle.write(data, position),
      writeDurably: (data, position) => isLog && this.failing ? halfThenFail(data, position, 'threadPool')
        : handle.writeDurably?.(data, position) ?? handle.write(data, position),
      ...(writeDurablySync === undefined ? {} : {
        writeDurablySync: (data: Uint8Array, position: number): void => {
          if (!(isLog && this.failing)) return writeDurablySync(data, position);
          writeDurablySync(data.subarray(0, Math.floor(data.length / 2)), position);
          this.failures++;
          this.failedPaths.push('inline');
          throw eio();
        },
      }),
      read: (length, position) => handle.read(length, position),
      datasync: () => handle.datasync(),
      size: () => handle.size(),
      close: () => handle.close(),
    };
  }
}

function eio(): Error {
  return Object.assign(new Error('EIO: i/o error, write'), { code: 'EIO' });
}

// Once with the durable write on the loop's thread (the default for a write this small; never
// paused for slowness here, so a busy machine's disk cannot change the path), once on the pool.
for (const [path, inlineWriteBytes] of [['inline', undefined], ['threadPool', 0]] as const) {
  test(`EIO after half a write (${path}): resume() zeroes what the failed write left; the log reads back clean`,
    { timeout: TEST_TIMEOUT_MS }, async () => {
      await halfWriteThenResume(path, inlineWriteBytes);
    });
}

async function halfWriteThenResume(path: 'inline' | 'threadPool', inlineWriteBytes: number | undefined): Promise<void> {
  const { path: directory, remove } = await tempDirectory('disk-resume-eio-');
  try {
    const fileSystem = new HalfWritingFileSystem();
    const store = await FileLogStore.open({ directory, segmentBytes: SEGMENT, fileSystem,
      slowInlineWriteMs: Number.MAX_VALUE, ...(inlineWriteBytes === undefined ? {} : { inlineWriteBytes }) });
    for (let i = 0; i < 5; i++) await store.put(1, [fill(i)], { sync: true });
    fileSystem.failing = true;
    // Two records in one write: half of it (the first record whole) reaches the disk.
    assertUnavailable(await rejection(store.put(1, [fill(5), fill(6)], { sync: true })), /EIO/);
    assert.equal(fileSystem.failures, 1);
    assert.deepEqual(fileSystem.failedPaths, [path]);
    assert.equal(store.storageFailure()?.reason, 'EIO');
    assertUnavailable(await rejection(store.resume()), /EIO/);
    fileSystem.failing = false;
    await store.resume();
    assert.equal(await store.get(1, 5), undefined, 'the failed write was never acknowledged: it is not there');
    assert.equal(await store.maxInstanceId(1), 4);
    await store.put(1, [record(5, 'after'), fill(6)], { sync: true });
    assertRecord(await store.get(1, 5), record(5, 'after'), 'rewritten after resume');
    await store.close();

    const reopened = await FileLogStore.open({ directory, segmentBytes: SEGMENT });
    assert.equal(reopened.recovery.truncatedTail, null, 'nothing of the failed write is left to truncate');
    for (let i = 0; i < 5; i++) assertRecord(await reopened.get(1, i), fill(i), 'after reopen');
    assertRecord(await reopened.get(1, 5), record(5, 'after'), 'after reopen');
    assertRecord(await reopened.get(1, 6), fill(6), 'after reopen');
    await reopened.close();
  } finally {
    await remove();
  }
}

test('a store that has no room to start says so in one line and leaves no temporary file',
  { timeout: TEST_TIMEOUT_MS }, async (t) => {
    await withTmpfs(t, '1m', async (mount) => {
      const directory = join(mount.path, 'store');
      const error = await rejection(FileLogStore.open({ directory }));
      assertUnavailable(error, NO_SPACE);
      const message = (error as Error).message;
      assert.doesNotMatch(message, /\n/);
      assert.match(message, /cannot start in .*needs about 16 MiB free/);
      assert.deepEqual(await temporaryFiles(directory), []);
    });
  });
