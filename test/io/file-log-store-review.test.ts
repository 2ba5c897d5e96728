// Regressions for problems a review of the file store found; each failed before its fix.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AcceptorRecord } from '../../src/core/ready.js';
import { FileLogStore } from '../../src/io/file-log-store.js';
import { NODE_FILE_SYSTEM, type FileSystem, type FileHandle } from '../../src/io/file-system.js';

const rec = (instanceId: number, bytes = 1000, p = 1): AcceptorRecord => ({
  instanceId, promised: { proposalId: p, nodeId: 1 }, accepted: { proposalId: p, nodeId: 1 }, checksum: 0,
  value: new Uint8Array(bytes).fill((instanceId % 250) + 1),
});
const tmp = (n: string) => mkdtemp(join(tmpdir(), `rv2-${n}-`));


test('an unlink decided by another group never acts on a clear that is not yet durable', async () => {
  const dir = await tmp('a');
  let release = (): void => {};
  let renames = 0;
  const fs: FileSystem = {
    ...NODE_FILE_SYSTEM,
    async rename(from, to) {
      // Hold the second metadata replacement (clear(0)'s) until the "crash" copy was taken.
      if (from.endsWith('meta.tmp') && ++renames === 2) await new Promise<void>((resolve) => { release = resolve; });
      return NODE_FILE_SYSTEM.rename(from, to);
    },
  };
  const store = await FileLogStore.open({ directory: dir, segmentBytes: 4096, fileSystem: fs });
  await store.put(0, [rec(0, 1900, 7), rec(1, 1900, 7)], { sync: true });
  for (let i = 0; i < 6; i++) await store.put(1, [rec(i)], { sync: true });
  const deleting = store.deleteBelow(1, 0);
  await new Promise((resolve) => setImmediate(resolve));
  const clearing = store.clear(0);
  await deleting;
  const crashed = await tmp('a-crash');
  await cp(dir, crashed, { recursive: true });
  release();
  await clearing;
  await store.close();
  const after = await FileLogStore.open({ directory: crashed, segmentBytes: 4096 });
  assert.equal(await after.maxInstanceId(0), 1, 'the clear never became durable: group 0 keeps its records');
  assert.equal((await after.get(0, 0))?.promised.proposalId, 7);
  await after.close();
  await rm(dir, { recursive: true, force: true });
  await rm(crashed, { recursive: true, force: true });
});

test('a put issued right after clear, not awaited in between, is kept, now and after a restart', async () => {
  const dir = await tmp('b');
  const store = await FileLogStore.open({ directory: dir, segmentBytes: 65536 });
  await store.put(0, [rec(0)], { sync: true });
  const clearing = store.clear(0);
  const putting = store.put(0, [rec(5)], { sync: true });
  await putting;
  await clearing;
  assert.equal(await store.maxInstanceId(0), 5);
  assert.equal((await store.get(0, 5))?.instanceId, 5);
  assert.equal(await store.get(0, 0), undefined);
  await store.close();
  const again = await FileLogStore.open({ directory: dir, segmentBytes: 65536 });
  assert.equal(await again.maxInstanceId(0), 5);
  assert.equal(await again.get(0, 0), undefined);
  await again.close();
  await rm(dir, { recursive: true, force: true });
});

test('concurrent reads of a segment share one descriptor, and close closes it', async () => {
  const dir = await tmp('c');
  const writer = await FileLogStore.open({ directory: dir, segmentBytes: 65536 });
  await writer.put(0, [rec(0), rec(1), rec(2)], { sync: true });
  await writer.close();
  let opens = 0;
  let closes = 0;
  const fs: FileSystem = {
    ...NODE_FILE_SYSTEM,
    async open(path, readOnly) {
      const handle = await NODE_FILE_SYSTEM.open(path, readOnly);
      opens++;
      const counted: FileHandle = {
        write: (data, position) => handle.write(data, position),
        read: (length, position) => handle.read(length, position),
        datasync: () => handle.datasync(), size: () => handle.size(),
        close: async () => {
          closes++;
          await handle.close();
        },
      };
      return counted;
    },
  };
  const store = await FileLogStore.open({ directory: dir, segmentBytes: 65536, readOnly: true, fileSystem: fs });
  await Promise.all([store.get(0, 0), store.get(0, 1), store.get(0, 2)]);
  await store.close();
  assert.equal(opens, 1);
  assert.equal(closes, 1);
  await rm(dir, { recursive: true, force: true });
});

test('puts stay in call order around a metadata write (a later put never overtakes a waiting one)', async () => {
  const dir = await tmp('d');
  const store = await FileLogStore.open({ directory: dir, segmentBytes: 65536 });
  await store.put(0, [rec(0)], { sync: true });
  const trimming = store.deleteBelow(1, 0);
  const first = store.put(0, [rec(9, 100, 1)], { sync: true });
  await trimming;
  const second = store.put(0, [rec(9, 100, 2)], { sync: true });
  await Promise.all([first, second]);
  assert.equal((await store.get(0, 9))?.promised.proposalId, 2, 'the later put is the newest record');
  await store.close();
  const again = await FileLogStore.open({ directory: dir, segmentBytes: 65536 });
  assert.equal((await again.get(0, 9))?.promised.proposalId, 2);
  await again.close();
  await rm(dir, { recursive: true, force: true });
});
