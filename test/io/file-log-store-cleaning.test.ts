// Log cleaning in the file store: under a steady write load with deleteBelow following behind,
// dead segments are unlinked and the number of segment files (and the disk used) stays bounded;
// the low-water mark survives a reopen and the records above it are intact.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { FileLogStore } from '../../src/io/file-log-store.js';
import { NODE_FILE_SYSTEM, type FileSystem } from '../../src/io/file-system.js';
import { record } from '../contract/log-store-contract.js';
import { tempDirectory } from './file-store-fixtures.js';

const SEGMENT = 8 * 1024;
const LAG = 100;

async function segmentFiles(dir: string): Promise<number> {
  return (await readdir(join(dir, 'log'))).filter((name) => name.endsWith('.log')).length;
}

test('steady writes to two groups, cleaned behind: segment files and disk bytes stay bounded', async () => {
  const dir = await tempDirectory('multipaxos-cleaning');
  try {
    const store = await FileLogStore.open({ directory: dir.path, segmentBytes: SEGMENT });
    const value = 'x'.repeat(100);
    let mostFiles = 0;
    let mostBytes = 0;
    for (let instanceId = 0; instanceId < 3_000; instanceId++) {
      await Promise.all([0, 1].map((group) => store.put(group, [record(instanceId, value)], { sync: false })));
      if (instanceId % 50 === 49 && instanceId > LAG) {
        await Promise.all([0, 1].map((group) => store.deleteBelow(group, instanceId - LAG)));
        mostFiles = Math.max(mostFiles, await segmentFiles(dir.path));
        mostBytes = Math.max(mostBytes, store.diskBytes());
      }
    }
    // Live data: 2 groups × (LAG + 50) records of ~160 bytes ≈ 48 KiB ≈ 6 segments, plus the
    // partly dead segment at each end, the active one and the spare.
    const bound = 12;
    assert.ok(mostFiles <= bound, `at most ${bound} segment files at any time (saw ${mostFiles})`);
    assert.ok(mostBytes <= bound * SEGMENT, `diskBytes stays bounded (saw ${mostBytes})`);
    assert.equal(store.diskBytes(), (await segmentFiles(dir.path)) * SEGMENT, 'diskBytes counts the segment files');
    assert.ok(store.stats.bytes > 8 * mostBytes, `far more was written (${store.stats.bytes}) than is kept (${mostBytes}, ${mostFiles} files)`);
    await store.close();

    const reopened = await FileLogStore.open({ directory: dir.path, segmentBytes: SEGMENT });
    assert.equal(await reopened.minChosenInstanceId(0), 2_999 - LAG);
    assert.equal(await reopened.get(0, 2_999 - LAG - 1), undefined, 'below the mark: gone');
    for (let instanceId = 2_999 - LAG; instanceId < 3_000; instanceId++) {
      assert.equal((await reopened.get(1, instanceId))?.instanceId, instanceId, `instance ${instanceId} kept`);
    }
    assert.equal(await reopened.maxInstanceId(0), 2_999);
    await reopened.close();
  } finally {
    await dir.remove();
  }
});

/**
 * The node's file system, except that opening a segment file whose name is in `held` waits until
 * `release()` (once armed, after the store opened): a read that found its segment then waits there
 * while cleaning unlinks it.
 */
function heldOpens(held: Set<string>): {
  fileSystem: FileSystem; arm: () => void; release: () => void; waiting: () => number;
} {
  let armed = false;
  let release!: () => void;
  const released = new Promise<void>((resolve) => { release = resolve; });
  let waiting = 0;
  const fileSystem: FileSystem = {
    ...NODE_FILE_SYSTEM,
    async open(path, readOnly) {
      if (armed && held.has(basename(path))) {
        waiting++;
        await released;
      }
      return NODE_FILE_SYSTEM.open(path, readOnly);
    },
  };
  return { fileSystem, arm: () => { armed = true; }, release, waiting: () => waiting };
}

test('a read racing with the cleaning that unlinks its segment answers "not in the log", not an error', async () => {
  // Simulator seed 130: a teacher's read of a segment that log cleaning unlinked under it failed
  // with ENOENT, and the group halted for good on a healthy node.
  const dir = await tempDirectory('multipaxos-cleaning-race');
  try {
    const writer = await FileLogStore.open({ directory: dir.path, segmentBytes: SEGMENT });
    for (let instanceId = 0; instanceId < 300; instanceId++) {
      await writer.put(0, [record(instanceId, 'v'.repeat(100))], { sync: false });
    }
    await writer.close();
    const names = (await readdir(join(dir.path, 'log'))).filter((name) => name.endsWith('.log')).sort();
    const first = names[0] as string;
    const held = heldOpens(new Set([first]));
    // Reopened: no segment file is open yet, so the reads below open the first one.
    const store = await FileLogStore.open({ directory: dir.path, segmentBytes: SEGMENT, fileSystem: held.fileSystem });
    held.arm();
    const one = store.get(0, 1);
    const run = store.getMany(0, [2, 3, 4]);
    while (held.waiting() === 0) await new Promise((resolve) => setImmediate(resolve));
    await store.deleteBelow(0, 250);
    assert.ok(!(await readdir(join(dir.path, 'log'))).includes(first), 'the first segment was unlinked');
    held.release();
    assert.equal(await one, undefined);
    assert.deepEqual(await run, [undefined, undefined, undefined]);
    assert.equal((await store.get(0, 299))?.instanceId, 299, 'what cleaning kept still reads');
    await store.close();
  } finally {
    await dir.remove();
  }
});

test('a read that fails on a segment still in use is still an error', async () => {
  const dir = await tempDirectory('multipaxos-cleaning-read-error');
  try {
    const writer = await FileLogStore.open({ directory: dir.path, segmentBytes: SEGMENT });
    for (let instanceId = 0; instanceId < 100; instanceId++) {
      await writer.put(0, [record(instanceId, 'v'.repeat(100))], { sync: false });
    }
    await writer.close();
    let failOpens = false;
    const failing: FileSystem = {
      ...NODE_FILE_SYSTEM,
      open: (path, readOnly) => failOpens && path.endsWith('.log')
        ? Promise.reject(Object.assign(new Error(`EIO: i/o error, open '${path}'`), { code: 'EIO' }))
        : NODE_FILE_SYSTEM.open(path, readOnly),
    };
    const store = await FileLogStore.open({ directory: dir.path, segmentBytes: SEGMENT, fileSystem: failing });
    failOpens = true;
    await assert.rejects(store.get(0, 1), /EIO/);
    await store.close();
  } finally {
    await dir.remove();
  }
});
