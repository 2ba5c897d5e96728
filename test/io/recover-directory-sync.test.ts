// Start-up and resume fsync the log directory after listing it and before writing into any segment
// it lists: a segment renamed into place whose directory fsync failed (the disk filled or failed
// right then) is on the list, but its name is not durable; appending acknowledged records to it
// without syncing the directory first could lose them, name and all, at a power cut.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { FileLogStore } from '../../src/io/file-log-store.js';
import type { FileHandle } from '../../src/io/file-system.js';
import { record } from '../contract/log-store-contract.js';
import { tempDirectory } from './file-store-fixtures.js';
import { rejection } from './tmpfs-fixtures.js';
import { DelegatingFileSystem } from '../support/delegating-file-system.js';

/** The real file system, recording directory listings and syncs and segment writes in order. */
class RecordingFileSystem extends DelegatingFileSystem {
  readonly operations: string[] = [];
  failSegmentWrites = false;

  override async open(path: string, readOnly: boolean): Promise<FileHandle> {
    return this.wrap(await this.real.open(path, readOnly), path);
  }

  override async create(path: string): Promise<FileHandle> {
    return this.wrap(await this.real.create(path), path);
  }

  override readdir(path: string): Promise<string[]> {
    this.operations.push(`readdir ${path}`);
    return this.real.readdir(path);
  }

  override syncDirectory(path: string): Promise<void> {
    this.operations.push(`sync ${path}`);
    return this.real.syncDirectory(path);
  }

  private wrap(handle: FileHandle, path: string): FileHandle {
    const segment = /\d{10}\.log$/.test(path);
    const note = (): void => {
      if (segment) {
        this.operations.push(`write ${path}`);
        if (this.failSegmentWrites) throw Object.assign(new Error('EIO: i/o error, write'), { code: 'EIO' });
      }
    };
    const write = async (data: Uint8Array, position: number, durably: boolean): Promise<void> => {
      note();
      await (durably ? handle.writeDurably?.(data, position) ?? handle.write(data, position)
        : handle.write(data, position));
    };
    const writeDurablySync = handle.writeDurablySync?.bind(handle);
    return {
      write: (data, position) => write(data, position, false),
      writeDurably: (data, position) => write(data, position, true),
      // The store's usual path for a small durable write, noted and failed alike.
      ...(writeDurablySync === undefined ? {} : {
        writeDurablySync: (data: Uint8Array, position: number): void => {
          note();
          writeDurablySync(data, position);
        },
      }),
      read: (length, position) => handle.read(length, position),
      datasync: () => handle.datasync(),
      size: () => handle.size(),
      close: () => handle.close(),
    };
  }
}

/** The log directory is synced after it is listed and before the first segment write after that. */
function assertSyncedBeforeWriting(operations: readonly string[], logDirectory: string, when: string): void {
  const listed = operations.lastIndexOf(`readdir ${logDirectory}`);
  assert.ok(listed >= 0, `${when}: the log directory was listed`);
  const firstWrite = operations.findIndex((operation, index) => index > listed && operation.startsWith('write '));
  assert.ok(firstWrite > listed, `${when}: a segment was written after the listing`);
  const synced = operations.slice(listed + 1, firstWrite).includes(`sync ${logDirectory}`);
  assert.ok(synced, `${when}: the log directory is fsynced between listing it and writing: ` +
    JSON.stringify(operations.slice(listed)));
}

test('start-up and resume fsync the listed log directory before writing into its segments', { timeout: 30_000 },
  async () => {
    const { path: directory, remove } = await tempDirectory('recover-sync-');
    try {
      const logDirectory = join(directory, 'log');
      const first = await FileLogStore.open({ directory, segmentBytes: 64 * 1024 });
      await first.put(0, [record(0, 'a')], { sync: true });
      await first.close();

      const fileSystem = new RecordingFileSystem();
      const store = await FileLogStore.open({ directory, segmentBytes: 64 * 1024, fileSystem });
      await store.put(0, [record(1, 'b')], { sync: true });
      assertSyncedBeforeWriting(fileSystem.operations, logDirectory, 'start-up');

      fileSystem.failSegmentWrites = true;
      await rejection(store.put(0, [record(2, 'c')], { sync: true }));
      fileSystem.failSegmentWrites = false;
      fileSystem.operations.length = 0;
      await store.resume();
      await store.put(0, [record(2, 'c')], { sync: true });
      assertSyncedBeforeWriting(fileSystem.operations.filter((operation) => !operation.endsWith('.tmp')),
        logDirectory, 'resume');
      await store.close();
    } finally {
      await remove();
    }
  });
