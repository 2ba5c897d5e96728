// LazyFileSystem: unsynced data lives in memory (visible to the writer, invisible to anyone reading
// the real file) until datasync writes it back; a crash loses exactly what was never synced.
import { afterEach, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AcceptorRecord } from '../../src/core/ready.js';
import { FileLogStore } from '../../src/io/file-log-store.js';
import { NODE_FILE_SYSTEM, type FileHandle, type FileSystem } from '../../src/io/file-system.js';
import { LazyFileSystem } from '../../src/testing/index.js';

let directory = '';
beforeEach(async () => {
  directory = await mkdtemp(join(tmpdir(), 'lazy-fs-'));
});
afterEach(async () => {
  await rm(directory, { recursive: true, force: true });
});

const bytes = (text: string): Buffer => Buffer.from(text, 'latin1');

async function readReal(path: string): Promise<string> {
  return (await NODE_FILE_SYSTEM.readFile(path)).toString('latin1');
}

describe('LazyFileSystem', () => {
  test('unsynced data is invisible to a plain reader; datasync makes it visible', async () => {
    const lazy = new LazyFileSystem();
    const path = join(directory, 'f');
    const handle = await lazy.create(path);
    await handle.write(bytes('hello'), 0);
    assert.equal(await NODE_FILE_SYSTEM.exists(path), true, 'creation is eager');
    assert.equal(await readReal(path), '', 'data is lazy');
    const plain = await NODE_FILE_SYSTEM.open(path, true);
    assert.equal(await plain.size(), 0);
    assert.equal((await plain.read(5, 0)).length, 0);
    assert.equal(lazy.unsyncedBytes(path), 5);

    await handle.datasync();
    assert.equal(await readReal(path), 'hello');
    assert.equal((await plain.read(5, 0)).toString('latin1'), 'hello');
    assert.equal(lazy.unsyncedBytes(), 0);

    await handle.write(bytes('J'), 0);
    assert.equal(await readReal(path), 'hello', 'a later write is lazy again');
    await plain.close();
    await handle.close();
  });

  test('the writer reads its own writes: read, size and readFile see the overlay', async () => {
    const lazy = new LazyFileSystem();
    const path = join(directory, 'f');
    const handle = await lazy.create(path);
    await handle.write(bytes('abcdef'), 0);
    await handle.datasync();
    await handle.write(bytes('XY'), 2);
    await handle.write(bytes('tail'), 10);
    assert.equal(await handle.size(), 14);
    assert.equal((await handle.read(100, 0)).toString('latin1'), 'abXYef\0\0\0\0tail');
    assert.equal((await handle.read(3, 1)).toString('latin1'), 'bXY');
    assert.equal((await handle.read(4, 20)).length, 0, 'nothing past the end');
    assert.equal((await lazy.readFile(path)).toString('latin1'), 'abXYef\0\0\0\0tail');
    assert.equal(await readReal(path), 'abcdef');
    await handle.close();
  });

  test('partially overlapping writes combine, newest bytes winning, and write back exactly', async () => {
    const lazy = new LazyFileSystem({ pageBytes: 4 });
    const path = join(directory, 'f');
    const handle = await lazy.create(path);
    const expected = Buffer.alloc(20);
    let size = 0;
    const writes: Array<[string, number]> = [
      ['AAAAAAAAAA', 0], ['BBBBBBBBBB', 5], ['cc', 2], ['DDDDDDDDDDDDDDDDDD', 1], ['e', 19], ['ff', 8], ['', 3],
    ];
    for (const [text, offset] of writes) {
      await handle.write(bytes(text), offset);
      bytes(text).copy(expected, offset);
      if (text.length > 0) size = Math.max(size, offset + text.length);
      assert.deepEqual(await handle.read(20, 0), expected.subarray(0, size));
    }
    assert.equal(await readReal(path), '');
    await handle.datasync();
    assert.equal(size, 20);
    assert.deepEqual(await NODE_FILE_SYSTEM.readFile(path), expected);
    assert.equal(lazy.unsyncedBytes(), 0);
    await handle.close();
  });

  test('the caller may reuse its buffer after write', async () => {
    const lazy = new LazyFileSystem();
    const handle = await lazy.create(join(directory, 'f'));
    const buffer = bytes('1234');
    await handle.write(buffer, 0);
    buffer.fill(0);
    assert.equal((await handle.read(4, 0)).toString('latin1'), '1234');
    await handle.close();
  });

  test('crash() drops exactly the unsynced writes', async () => {
    const lazy = new LazyFileSystem();
    const path = join(directory, 'f');
    const handle = await lazy.create(path);
    await handle.write(bytes('synced'), 0);
    await handle.datasync();
    await handle.write(bytes('LOST'), 0);
    await handle.write(bytes('lost too'), 6);
    lazy.crash();
    assert.equal((await handle.read(100, 0)).toString('latin1'), 'synced');
    assert.equal(await handle.size(), 6);
    assert.equal(await readReal(path), 'synced');
    await handle.close();
  });

  test('writeDurablySync bypasses the page cache: on disk at once, replacing the unsynced bytes it covers', async () => {
    const lazy = new LazyFileSystem();
    const path = join(directory, 'f');
    const handle = await lazy.create(path);
    await handle.write(bytes('0123456789'), 0);
    await handle.datasync();
    await handle.write(bytes('abcdef'), 2);
    assert.ok(handle.writeDurablySync !== undefined, 'the real file offers it, so the lazy handle does');
    handle.writeDurablySync(bytes('XYZ'), 3);
    assert.equal(await readReal(path), '012XYZ6789', 'durable at once');
    assert.equal((await handle.read(100, 0)).toString('latin1'), '01aXYZef89', 'unsynced bytes outside it stay');
    assert.equal(lazy.unsyncedBytes(path), 3);
    lazy.crash();
    assert.equal((await handle.read(100, 0)).toString('latin1'), '012XYZ6789', 'a crash keeps it, drops the rest');
    await handle.close();
    const readOnly = await lazy.open(path, true);
    assert.throws(() => readOnly.writeDurablySync?.(bytes('no'), 0), /EBADF/);
    await readOnly.close();
    // Over a file system without it (a FileLogStore then writes and fdatasyncs), the lazy handle has none.
    const plain: FileSystem = {
      ...NODE_FILE_SYSTEM, create: async (file) => withoutSyncWrites(await NODE_FILE_SYSTEM.create(file)),
    };
    const withoutInner = await new LazyFileSystem({ inner: plain }).create(join(directory, 'g'));
    assert.equal(withoutInner.writeDurablySync, undefined);
    await withoutInner.close();
  });

  test('the overlay belongs to the file: shared by handles, kept by close, moved by rename, dropped by unlink',
    async () => {
      const lazy = new LazyFileSystem();
      const path = join(directory, 'f');
      const first = await lazy.create(path);
      await first.write(bytes('data'), 0);
      await first.close();
      const second = await lazy.open(path, false);
      assert.equal((await second.read(4, 0)).toString('latin1'), 'data', 'close keeps unsynced data');
      await second.write(bytes('D'), 0);

      const renamed = join(directory, 'g');
      await lazy.rename(path, renamed);
      assert.equal((await lazy.readFile(renamed)).toString('latin1'), 'Data');
      assert.equal(await readReal(renamed), '');
      await second.datasync();
      assert.equal(await readReal(renamed), 'Data', 'datasync through any handle writes the file back');
      await second.close();

      const third = await lazy.open(renamed, false);
      await third.write(bytes('gone'), 0);
      await third.close();
      await lazy.unlink(renamed);
      const again = await lazy.create(renamed);
      assert.equal(await again.size(), 0, 'a new file under the name starts empty');
      await again.close();
    });

  test('a read-only handle refuses writes', async () => {
    const lazy = new LazyFileSystem();
    const path = join(directory, 'f');
    await (await lazy.create(path)).close();
    const handle = await lazy.open(path, true);
    await assert.rejects(handle.write(bytes('x'), 0), /read-only/);
    await handle.close();
  });

  test('write-back goes page by page in file order, so a crash during datasync keeps a prefix of the pages',
    async () => {
      const dying = new DyingFileSystem(3);
      const lazy = new LazyFileSystem({ inner: dying, pageBytes: 4 });
      const path = join(directory, 'f');
      const handle = await lazy.create(path);
      await handle.write(bytes('0123456789abcdefghij'), 2);
      await assert.rejects(handle.datasync(), /power cut/);
      assert.deepEqual(dying.writes, [[2, 2], [4, 4], [8, 4]]);
      assert.equal(await readReal(path), '\0\x000123456789');
      await handle.close();
    });

  test("with writeback: 'reverse' a crash during datasync keeps a suffix of the pages", async () => {
    const dying = new DyingFileSystem(2);
    const lazy = new LazyFileSystem({ inner: dying, pageBytes: 4, writeback: 'reverse' });
    const path = join(directory, 'f');
    const handle = await lazy.create(path);
    await handle.write(bytes('0123456789'), 2);
    await assert.rejects(handle.datasync(), /power cut/);
    assert.deepEqual(dying.writes, [[8, 4], [4, 4]]);
    assert.equal(await readReal(path), '\0\0\0\x0023456789');
    await handle.close();
  });

  test('a FileLogStore over it: a synced put survives a crash; with the skipDatasync fault it does not', async () => {
    for (const skipDatasync of [false, true]) {
      const storeDirectory = join(directory, String(skipDatasync));
      const lazy = new LazyFileSystem();
      const store = await FileLogStore.open({
        directory: storeDirectory, segmentBytes: 4096, fileSystem: lazy, faults: { skipDatasync },
      });
      const record: AcceptorRecord = {
        instanceId: 7, promised: { proposalId: 3, nodeId: 1 }, accepted: { proposalId: 3, nodeId: 1 },
        value: bytes('value'), checksum: 42,
      };
      await store.put(0, [record], { sync: true });
      assert.deepEqual(await store.get(0, 7), record, 'the writer sees its record either way');
      lazy.crash();
      const reader = await FileLogStore.open({ directory: storeDirectory, segmentBytes: 4096, readOnly: true });
      assert.deepEqual(await reader.get(0, 7), skipDatasync ? undefined : record);
      await reader.close();
      await store.close();
    }
  });
});

/** A real file system whose file writes fail (a power cut) after a number of them. */
class DyingFileSystem implements FileSystem {
  readonly writes: Array<[number, number]> = [];
  private remaining: number;

  constructor(writesBeforeDeath: number) {
    this.remaining = writesBeforeDeath;
  }

  open = async (path: string, readOnly: boolean): Promise<FileHandle> =>
    this.wrap(await NODE_FILE_SYSTEM.open(path, readOnly));

  create = async (path: string): Promise<FileHandle> => this.wrap(await NODE_FILE_SYSTEM.create(path));
  readFile = NODE_FILE_SYSTEM.readFile;
  readdir = NODE_FILE_SYSTEM.readdir;
  mkdir = NODE_FILE_SYSTEM.mkdir;
  unlink = NODE_FILE_SYSTEM.unlink;
  rename = NODE_FILE_SYSTEM.rename;
  exists = NODE_FILE_SYSTEM.exists;
  syncDirectory = NODE_FILE_SYSTEM.syncDirectory;

  private wrap(handle: FileHandle): FileHandle {
    return {
      write: async (data, position) => {
        if (this.remaining-- <= 0) throw new Error('power cut');
        this.writes.push([position, data.length]);
        await handle.write(data, position);
      },
      read: (length, position) => handle.read(length, position),
      datasync: () => handle.datasync(),
      size: () => handle.size(),
      close: () => handle.close(),
    };
  }
}

/** A handle without the optional durable writes. */
function withoutSyncWrites(handle: FileHandle): FileHandle {
  return {
    write: (data, position) => handle.write(data, position), read: (length, position) => handle.read(length, position),
    datasync: () => handle.datasync(), size: () => handle.size(), close: () => handle.close(),
  };
}
