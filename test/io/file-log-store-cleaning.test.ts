// Log cleaning in the file store: under a steady write load with deleteBelow following behind,
// dead segments are unlinked and the number of segment files (and the disk used) stays bounded;
// the low-water mark survives a reopen and the records above it are intact.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readlink } from 'node:fs/promises';
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
 * The node's file system, except that, once armed (after the store opened), opening the segment file
 * `name` waits until `release()` (`hold: 'open'`, and the file's unlink waits for that open), or
 * reads through its handle do (`hold: 'read'`): a read that found its segment then waits there while
 * log cleaning takes the segment out.
 */
function heldSegment(name: string, hold: 'open' | 'read'): {
  fileSystem: FileSystem; arm: () => void; release: () => void; waiting: () => number; closed: () => boolean;
} {
  let armed = false;
  let closed = false;
  let release!: () => void;
  const released = new Promise<void>((resolve) => { release = resolve; });
  let waiting = 0;
  const gate = async (): Promise<void> => {
    waiting++;
    await released;
  };
  let heldOpenDone: Promise<unknown> = Promise.resolve();
  const fileSystem: FileSystem = {
    ...NODE_FILE_SYSTEM,
    async open(path, readOnly) {
      const held = basename(path) === name;
      if (held && armed && hold === 'open') {
        // The open completes before the file is unlinked (see unlink): its descriptor must not leak.
        const opened = gate().then(() => NODE_FILE_SYSTEM.open(path, readOnly));
        heldOpenDone = opened.catch(() => undefined);
        return opened;
      }
      const handle = await NODE_FILE_SYSTEM.open(path, readOnly);
      if (!held || hold !== 'read') return handle;
      return {
        write: (data, position) => handle.write(data, position),
        async read(length, position) {
          if (armed) await gate();
          return handle.read(length, position);
        },
        datasync: () => handle.datasync(),
        size: () => handle.size(),
        async close() {
          await handle.close();
          // Start-up's scan opens and closes it too, before the store is armed.
          if (armed) closed = true;
        },
      };
    },
  };
  fileSystem.unlink = async (path) => {
    if (basename(path) === name) await heldOpenDone;
    return NODE_FILE_SYSTEM.unlink(path);
  };
  return { fileSystem, arm: () => { armed = true; }, release, waiting: () => waiting, closed: () => closed };
}

/** A store in `directory` holding instances 0 to count - 1 of group 0, closed again. */
async function writeRecords(directory: string, count: number): Promise<void> {
  const writer = await FileLogStore.open({ directory, segmentBytes: SEGMENT });
  for (let instanceId = 0; instanceId < count; instanceId++) {
    await writer.put(0, [record(instanceId, 'v'.repeat(100))], { sync: false });
  }
  await writer.close();
}

/** The files under `directory` this process holds open (Linux: /proc/self/fd). */
async function openFilesUnder(directory: string): Promise<string[]> {
  const open: string[] = [];
  for (const fd of await readdir('/proc/self/fd')) {
    const target = await readlink(`/proc/self/fd/${fd}`).catch(() => '');
    if (target.startsWith(directory)) open.push(target);
  }
  return open;
}

for (const hold of ['open', 'read'] as const) {
  test(`a read racing with the cleaning that unlinks its segment (held in ${hold}) answers "not in the log" ` +
    'or the record, never an error', async () => {
    // Simulator seed 130: a teacher's read of a segment that log cleaning unlinked under it failed
    // with ENOENT, and the group halted for good on a healthy node.
    const dir = await tempDirectory('multipaxos-cleaning-race');
    try {
      await writeRecords(dir.path, 300);
      const first = (await readdir(join(dir.path, 'log'))).filter((name) => name.endsWith('.log')).sort()[0] as string;
      const held = heldSegment(first, hold);
      // Reopened: the reads below open the first segment (held: in the open, or in the reads after it).
      const store = await FileLogStore.open({
        directory: dir.path, segmentBytes: SEGMENT, fileSystem: held.fileSystem,
      });
      held.arm();
      const one = store.get(0, 1);
      const run = store.getMany(0, [2, 3, 4]);
      while (held.waiting() < (hold === 'open' ? 1 : 2)) await new Promise((resolve) => setImmediate(resolve));
      const cleaning = store.deleteBelow(0, 250);
      // Held in its reads, the segment's handle gets closed under them; held in its open, cleaning
      // waits for that open (whose descriptor it then closes), so give it time to get there.
      if (hold === 'read') while (!held.closed()) await new Promise((resolve) => setTimeout(resolve, 1));
      else await new Promise((resolve) => setTimeout(resolve, 50));
      held.release();
      await cleaning;
      assert.ok(!(await readdir(join(dir.path, 'log'))).includes(first), 'the first segment was unlinked');
      const answers = [await one, ...await run];
      for (const [index, answer] of answers.entries()) {
        assert.ok(answer === undefined || answer.instanceId === index + 1, `instance ${index + 1}: ${String(answer)}`);
      }
      if (hold === 'read') assert.deepEqual(answers, [undefined, undefined, undefined, undefined], 'the handle was closed');
      assert.equal((await store.get(0, 299))?.instanceId, 299, 'what cleaning kept still reads');
      await store.close();
      assert.deepEqual(await openFilesUnder(dir.path), [], 'no descriptor of the unlinked segment is left open');
    } finally {
      await dir.remove();
    }
  });
}

test('a read that fails on a segment still in use is still an error', async () => {
  const dir = await tempDirectory('multipaxos-cleaning-read-error');
  try {
    await writeRecords(dir.path, 100);
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
