// The KV settings file is the first thing a fresh node writes. On a disk without room for it (a
// real tmpfs filled to the last byte; needs root, skipped otherwise) start-up fails with one
// STORAGE_UNAVAILABLE line naming the directory and what is missing, and leaves no temporary file;
// with room again it is written and read back.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { open, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { PaxosError } from '../../src/errors.js';
import { checkGroupCount } from '../../src/kv/kv-settings.js';
import { rejection, withTmpfs } from '../io/tmpfs-fixtures.js';

/** Fill the file system to the last byte: large writes, then single bytes until it refuses. */
async function fillToTheBrim(path: string): Promise<void> {
  const handle = await open(path, 'w');
  try {
    for (const size of [64 * 1024, 1]) {
      const chunk = Buffer.alloc(size, 1);
      try {
        for (;;) await handle.write(chunk);
      } catch (error) {
        assert.equal((error as NodeJS.ErrnoException).code, 'ENOSPC', String(error));
      }
    }
  } finally {
    await handle.close();
  }
}

test('no room for the KV settings file: one line naming the directory, no temporary file left', { timeout: 30_000 },
  async (t) => {
    await withTmpfs(t, '256k', async (mount) => {
      const dataDir = join(mount.path, 'node-1');
      const filler = join(mount.path, 'filler');
      await fillToTheBrim(filler);
      const error = await rejection(checkGroupCount(dataDir, 4));
      assert.ok(error instanceof PaxosError, String(error));
      assert.equal(error.code, 'STORAGE_UNAVAILABLE');
      assert.match(error.message, new RegExp(`cannot start in ${dataDir}: writing kv-settings\\.json failed: .*ENOSPC`));
      assert.match(error.message, /the disk is full/);
      assert.doesNotMatch(error.message, /\n/);
      assert.deepEqual((await readdir(dataDir)).filter((name) => name.endsWith('.tmp')), [],
        'the failed write leaves no temporary file');

      await rm(filler);
      await checkGroupCount(dataDir, 4);
      assert.deepEqual(JSON.parse(await readFile(join(dataDir, 'kv-settings.json'), 'utf8')), { groups: 4 });
      await checkGroupCount(dataDir, 4);
    });
  });
