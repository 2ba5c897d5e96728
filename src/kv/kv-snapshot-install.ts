/**
 * Installing a KV snapshot received from a peer as the group's newest snapshot file, crash-safely.
 *
 * The bytes go to a temporary file, which is fsynced, read back and decoded in full (CRC, group,
 * group count, the instance the sender announced): what is committed is exactly what was verified.
 * The rename into place, made durable by the directory fsync, is the commit point; until then every
 * failure removes the temporary file and leaves the old files alone (and a crash leaves only a
 * `.tmp` file, which start-up removes). A snapshot file of a higher instance than the installed one
 * would win at the next start and bring the old state back, so any is deleted after the commit and
 * before the install counts as done; a crash in between leaves that old state standing whole.
 */
import { open, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { NODE_FILE_SYSTEM } from '../io/file-system.js';
import type { ReceivedSnapshot } from '../runtime/interfaces.js';
import { decodeKvSnapshot, KvSnapshotError, type DecodedKvSnapshot } from './kv-snapshot-codec.js';
import {
  listSnapshotFiles, makeDurableDirectory, snapshotFileName, TEMPORARY_SUFFIX, writeFully,
} from './kv-snapshot-files.js';

/** For tests: run right before and right after the rename (a throw there is a failure, not a crash). */
export interface InstallHooks {
  readonly beforeCommit?: () => void | Promise<void>;
  readonly afterRename?: () => void | Promise<void>;
}

/**
 * Write, verify and commit the snapshot; resolves with its decoded state once the file is durably
 * the group's newest. Rejects with everything as it was when anything fails before the commit.
 */
export async function installSnapshotFile(
  directory: string, received: ReceivedSnapshot, expected: { group: number; groups: number }, hooks: InstallHooks = {},
): Promise<DecodedKvSnapshot> {
  if (!Number.isSafeInteger(received.instanceId) || received.instanceId < 0) {
    throw new KvSnapshotError(`KV snapshot: cannot install one at instance ${received.instanceId}`);
  }
  await makeDurableDirectory(directory);
  const name = snapshotFileName(received.instanceId);
  const path = join(directory, name);
  const temporary = `${path}.install${TEMPORARY_SUFFIX}`;
  let decoded: DecodedKvSnapshot;
  let replaced: boolean;
  try {
    await writeTemporary(temporary, received);
    decoded = decodeKvSnapshot(await readFile(temporary), expected);
    if (decoded.instanceId !== received.instanceId) {
      throw new KvSnapshotError(`KV snapshot: it covers instance ${decoded.instanceId}, not ${received.instanceId} as announced`);
    }
    replaced = (await listSnapshotFiles(directory)).some((file) => file.name === name);
    await hooks.beforeCommit?.();
    await rename(temporary, path);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
  try {
    await hooks.afterRename?.();
    await NODE_FILE_SYSTEM.syncDirectory(directory);
    await removeHigher(directory, received.instanceId);
  } catch (error) {
    // Not known to be durable, so the install fails; taking the file back keeps memory and disk in
    // step. (A file it replaced held the same instance's state, which is the same on every node.)
    if (!replaced) {
      await rm(path, { force: true }).then(() => NODE_FILE_SYSTEM.syncDirectory(directory)).catch(() => {});
    }
    throw error;
  }
  return decoded;
}

async function writeTemporary(temporary: string, received: ReceivedSnapshot): Promise<void> {
  const file = await open(temporary, 'w');
  try {
    let bytes = 0;
    for await (const chunk of received.chunks) {
      await writeFully(file, chunk);
      bytes += chunk.length;
    }
    if (bytes !== received.bytes) {
      throw new KvSnapshotError(`KV snapshot: received ${bytes} bytes, ${received.bytes} were announced`);
    }
    await file.sync();
  } finally {
    await file.close();
  }
}

/** Delete the group's snapshot files above `instanceId`, durably (none exist unless time went backwards). */
async function removeHigher(directory: string, instanceId: number): Promise<void> {
  const higher = (await listSnapshotFiles(directory)).filter((file) => file.instanceId > instanceId);
  if (higher.length === 0) return;
  for (const file of higher) await rm(join(directory, file.name), { force: true });
  await NODE_FILE_SYSTEM.syncDirectory(directory);
}
