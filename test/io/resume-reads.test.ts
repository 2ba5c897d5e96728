// Reads while FileLogStore.resume rebuilds the store from disk: they wait for it and then see the
// whole rebuilt store, never an index rebuilt half way (a max instance that went back would have a
// rebuilt group restore an older promise); a read already under way when the resume begins
// finishes on its file before the resume closes it. And a resume that fails part way leaves the
// store answering reads from the index it had.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { basename } from 'node:path';
import type { AcceptorRecord } from '../../src/core/ready.js';
import { FileLogStore, recordBytesOnDisk } from '../../src/io/file-log-store.js';
import type { FileHandle } from '../../src/io/file-system.js';
import { assertRecord, patternBytes, record } from '../contract/log-store-contract.js';
import { tempDirectory } from './file-store-fixtures.js';
import { rejection } from './tmpfs-fixtures.js';
import { DelegatingFileSystem } from '../support/delegating-file-system.js';

const SEGMENT = 64 * 1024;
const VALUE = 1024 - recordBytesOnDisk(0);
/** Enough 1 KiB records to fill more than two segments. */
const RECORDS = 150;

function fill(instanceId: number): AcceptorRecord {
  return record(instanceId, patternBytes(VALUE, instanceId + 1));
}

/** A gate that holds operations until opened. */
class Gate {
  waiting = 0;
  private promise: Promise<void> | null = null;
  private release: () => void = () => {};

  close(): void {
    this.promise = new Promise((resolve) => { this.release = resolve; });
  }

  open(): void {
    this.promise = null;
    this.release();
  }

  async pass(): Promise<void> {
    const promise = this.promise;
    if (promise === null) return;
    this.waiting++;
    await promise;
    this.waiting--;
  }
}

/**
 * The real file system, except: while `failLogWrites`, log writes fail with EIO; reading a segment
 * file whole (as start-up and resume do) waits at `scanGate` from segment 2 on; a read of an open
 * file waits at `readGate`; `failScans` makes whole-file reads of segments fail with EIO.
 */
class GatedFileSystem extends DelegatingFileSystem {
  failLogWrites = false;
  failScans = false;
  readonly scanGate = new Gate();
  readonly readGate = new Gate();

  override async open(path: string, readOnly: boolean): Promise<FileHandle> {
    return this.wrap(await this.real.open(path, readOnly), path);
  }

  override async create(path: string): Promise<FileHandle> {
    return this.wrap(await this.real.create(path), path);
  }

  override async readFile(path: string): Promise<Buffer> {
    const name = basename(path);
    if (/^\d{10}\.log$/.test(name)) {
      if (this.failScans) throw eio('read');
      if (Number(name.slice(0, 10)) >= 2) await this.scanGate.pass();
    }
    return await this.real.readFile(path);
  }


  private wrap(handle: FileHandle, path: string): FileHandle {
    const isLog = /\d{10}\.log$/.test(path);
    const refuse = (): void => {
      if (isLog && this.failLogWrites) throw eio('write');
    };
    const writeDurablySync = handle.writeDurablySync?.bind(handle);
    return {
      write: async (data, position) => { refuse(); await handle.write(data, position); },
      writeDurably: async (data, position) => {
        refuse();
        await (handle.writeDurably?.(data, position) ?? handle.write(data, position));
      },
      // The store's usual path for a small durable write: it fails alike.
      ...(writeDurablySync === undefined ? {} : {
        writeDurablySync: (data: Uint8Array, position: number): void => {
          refuse();
          writeDurablySync(data, position);
        },
      }),
      read: async (length, position) => {
        await this.readGate.pass();
        return await handle.read(length, position);
      },
      datasync: () => handle.datasync(),
      size: () => handle.size(),
      close: () => handle.close(),
    };
  }
}

function eio(operation: string): Error {
  return Object.assign(new Error(`EIO: i/o error, ${operation}`), { code: 'EIO' });
}

async function until(check: () => boolean, what: string): Promise<void> {
  const deadline = performance.now() + 10_000;
  while (!check()) {
    if (performance.now() > deadline) assert.fail(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** A store holding RECORDS records of group 1 over three segments, whose last write failed. */
async function failedStore(directory: string, fileSystem: GatedFileSystem): Promise<FileLogStore> {
  const store = await FileLogStore.open({ directory, segmentBytes: SEGMENT, fileSystem });
  for (let i = 0; i < RECORDS; i++) await store.put(1, [fill(i)], { sync: true });
  await store.setSystemVariables(1, Buffer.from('system'));
  fileSystem.failLogWrites = true;
  await assert.rejects(store.put(1, [fill(RECORDS)], { sync: true }), /STORAGE_UNAVAILABLE|EIO/);
  fileSystem.failLogWrites = false;
  return store;
}

test('reads during a resume wait for it and see the whole rebuilt index', { timeout: 30_000 }, async () => {
  const { path: directory, remove } = await tempDirectory('resume-reads-');
  try {
    const fileSystem = new GatedFileSystem();
    const store = await failedStore(directory, fileSystem);
    const diskBytes = store.diskBytes();
    fileSystem.scanGate.close();
    const resuming = store.resume();
    // The resume has read segment 1 and waits to read segment 2: the index is half rebuilt.
    await until(() => fileSystem.scanGate.waiting > 0, 'the resume scans segment 2');
    assert.equal(store.diskBytes(), diskBytes, 'what cannot wait is answered from the store as it was');
    const reads = Promise.all([
      store.maxInstanceId(1), store.minChosenInstanceId(1), store.get(1, RECORDS - 1),
      store.getMany(1, [0, 1, RECORDS - 1]), store.systemVariables(1), store.pendingCheckpoint(1),
    ]);
    await new Promise((resolve) => setTimeout(resolve, 50));
    fileSystem.scanGate.open();
    await resuming;
    const [max, min, newest, many, system, pending] = await reads;
    assert.equal(max, RECORDS - 1, 'the newest instance, not the newest of the segments scanned so far');
    assert.equal(min, 0);
    assertRecord(newest, fill(RECORDS - 1), 'get');
    assert.equal(many.length, 3);
    assertRecord(many[2], fill(RECORDS - 1), 'getMany');
    assert.equal(Buffer.from(system ?? []).toString(), 'system');
    assert.equal(pending, undefined);
    const all: number[] = [];
    for await (const found of store.records(1)) all.push(found.instanceId);
    assert.equal(all.length, RECORDS);
    await store.close();
  } finally {
    await remove();
  }
});

test('a read under way when a resume begins finishes on its file', { timeout: 30_000 }, async () => {
  const { path: directory, remove } = await tempDirectory('resume-reads-');
  try {
    const fileSystem = new GatedFileSystem();
    const store = await failedStore(directory, fileSystem);
    fileSystem.readGate.close();
    const reading = store.get(1, 5);
    await until(() => fileSystem.readGate.waiting > 0, 'the read reaches its file');
    const resuming = store.resume();
    await new Promise((resolve) => setTimeout(resolve, 50));
    fileSystem.readGate.open();
    assertRecord(await reading, fill(5), 'the read that began before the resume');
    await resuming;
    assertRecord(await store.get(1, 6), fill(6), 'after the resume');
    await store.put(1, [fill(RECORDS)], { sync: true });
    await store.close();
  } finally {
    await remove();
  }
});

test('a read that begins in the same turn as a resume is waited for too', { timeout: 30_000 }, async () => {
  // The read counted itself in flight one step after it checked for a resume: a resume begun in
  // between closed the read's file under it, and the read came back empty for a record the log holds.
  const { path: directory, remove } = await tempDirectory('resume-reads-');
  try {
    const fileSystem = new GatedFileSystem();
    const store = await failedStore(directory, fileSystem);
    fileSystem.readGate.close();
    const reading = store.get(1, 10);
    const many = store.getMany(1, [11, 12]);
    const resuming = store.resume();
    await until(() => fileSystem.readGate.waiting > 0, 'a read reaches its file');
    await new Promise((resolve) => setTimeout(resolve, 50));
    fileSystem.readGate.open();
    assertRecord(await reading, fill(10), 'get');
    const [eleven, twelve] = await many;
    assertRecord(eleven, fill(11), 'getMany');
    assertRecord(twelve, fill(12), 'getMany');
    await resuming;
    await store.close();
  } finally {
    await remove();
  }
});

test('a resume that fails part way leaves the store reading from the index it had', { timeout: 30_000 },
  async () => {
    const { path: directory, remove } = await tempDirectory('resume-reads-');
    try {
      const fileSystem = new GatedFileSystem();
      const store = await failedStore(directory, fileSystem);
      fileSystem.failScans = true;
      await rejection(store.resume());
      assert.notEqual(store.storageFailure(), undefined, 'still refusing writes');
      assert.equal(await store.maxInstanceId(1), RECORDS - 1);
      assertRecord(await store.get(1, RECORDS - 1), fill(RECORDS - 1), 'after the failed resume');
      fileSystem.failScans = false;
      await store.resume();
      assert.equal(store.storageFailure(), undefined);
      assert.equal(await store.maxInstanceId(1), RECORDS - 1);
      await store.put(1, [fill(RECORDS)], { sync: true });
      await store.close();
    } finally {
      await remove();
    }
  });
