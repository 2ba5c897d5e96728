// Log cleaning in the file store: under a steady write load with deleteBelow following behind,
// dead segments are unlinked and the number of segment files (and the disk used) stays bounded;
// the low-water mark survives a reopen and the records above it are intact.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { FileLogStore } from '../../src/io/file-log-store.js';
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
