/**
 * KV snapshot files of one group: `<dataDir>/kv-snapshots/g<N>/snapshot-<C>.kvs`, C being the
 * instance covered (zero-padded, so names sort by it).
 *
 * Writing is crash-safe: a temporary file is written, fsynced, renamed into place, and the
 * directory fsynced; only then is the snapshot durable and may its instance be reported as a
 * checkpoint. The newest KEEP snapshots are kept, so a damaged newest one has an intact fallback.
 *
 * Loading takes the newest snapshot that decodes. A damaged newer one is renamed `*.corrupt` (kept
 * for inspection, ignored from then on) and the next older one is used: replay then starts lower,
 * which is safe as long as the log still holds the instances above the older snapshot (this version
 * relies on log cleaning keeping a hold of two snapshot intervals below the newest checkpoint). When
 * snapshots exist but none is intact, start-up is refused rather than silently replaying from
 * scratch: damaged files point at a disk problem the operator must see.
 */
import { mkdir, open, readdir, readFile, rename, rm, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { NOT_CHOSEN, PaxosError } from '../errors.js';
import { NODE_FILE_SYSTEM } from '../io/file-system.js';
import type { Logger } from '../runtime/interfaces.js';
import {
  decodeKvSnapshot, encodeKvSnapshotChunks, KvSnapshotError, type DecodedKvSnapshot, type KvSnapshot,
} from './kv-snapshot-codec.js';

/** Snapshots kept per group: the newest and one fallback. */
export const KEEP_SNAPSHOTS = 2;
const NAME = /^snapshot-(\d{16})\.kvs$/;
export const TEMPORARY_SUFFIX = '.tmp';

export function snapshotDirectory(dataDir: string, group: number): string {
  return join(dataDir, 'kv-snapshots', `g${group}`);
}

export function snapshotFileName(instanceId: number): string {
  return `snapshot-${String(instanceId).padStart(16, '0')}.kvs`;
}

export interface WrittenSnapshot {
  readonly path: string;
  readonly bytes: number;
}

/**
 * Write the snapshot durably and drop all but the newest KEEP. `shouldStop` is asked between chunks:
 * when it says so, the temporary file is removed and the write rejects.
 */
export async function writeSnapshotFile(
  directory: string, snapshot: KvSnapshot, shouldStop: () => boolean = () => false,
): Promise<WrittenSnapshot> {
  await makeDurableDirectory(directory);
  const path = join(directory, snapshotFileName(snapshot.instanceId));
  const temporary = path + TEMPORARY_SUFFIX;
  let bytes = 0;
  const file = await open(temporary, 'w');
  try {
    for (const chunk of encodeKvSnapshotChunks(snapshot)) {
      if (shouldStop()) throw new Error('the snapshot was abandoned: the service is stopping');
      await writeFully(file, chunk);
      bytes += chunk.length;
    }
    await file.sync();
  } catch (error) {
    await file.close().catch(() => {});
    await rm(temporary, { force: true });
    throw error;
  }
  await file.close();
  await rename(temporary, path);
  await NODE_FILE_SYSTEM.syncDirectory(directory);
  await pruneSnapshots(directory);
  return { path, bytes };
}

/**
 * The newest intact snapshot of the group, or undefined when it has none. Leftover temporary files
 * (a crash mid-write) are removed. Throws STARTUP_FAILED when snapshots exist but none is intact.
 */
export async function loadNewestSnapshot(
  directory: string, expected: { group: number; groups: number }, logger: Logger,
): Promise<DecodedKvSnapshot | undefined> {
  const names = await listDirectory(directory);
  for (const name of names.filter((entry) => entry.endsWith(TEMPORARY_SUFFIX))) {
    await rm(join(directory, name), { force: true });
  }
  const failures: { name: string; reason: string }[] = [];
  for (const name of snapshotNames(names).reverse()) {
    const path = join(directory, name);
    let contents: Buffer;
    try {
      contents = await readFile(path);
    } catch (error) {
      // Not damage (a transient I/O error, a file too large to read at once): never set it aside.
      throw new PaxosError('STARTUP_FAILED', `group ${expected.group}: cannot read the KV snapshot ${path}: ` +
        String(error), { ...NOT_CHOSEN, cause: error });
    }
    try {
      const snapshot = decodeKvSnapshot(contents, expected);
      if (snapshotFileName(snapshot.instanceId) !== name) {
        throw new KvSnapshotError(`it covers instance ${snapshot.instanceId}, not the one its name says`);
      }
      for (const failed of failures) {
        await rename(join(directory, failed.name), join(directory, `${failed.name}.corrupt`));
        logger.warn('a damaged KV snapshot was set aside; an older one is used', {
          group: expected.group, file: `${failed.name}.corrupt`, reason: failed.reason, using: name,
        });
      }
      return snapshot;
    } catch (error) {
      if (!(error instanceof KvSnapshotError)) throw error;
      failures.push({ name, reason: error.message });
    }
  }
  if (failures.length === 0) return undefined;
  throw new PaxosError('STARTUP_FAILED', `group ${expected.group}: no intact KV snapshot in ${directory} (` +
    `${failures.map((failure) => `${failure.name}: ${failure.reason}`).join('; ')}). Refusing to start from ` +
    'them. If the log was never cleaned (multipaxos log inspect shows it), moving the directory aside rebuilds ' +
    'the state from the whole log; otherwise replace the node (remove it from the members and add a fresh one ' +
    'under a new id: it receives a checkpoint from its peers). Never wipe the log of a node that voted', NOT_CHOSEN);
}

/**
 * Write all of `chunk`: a write may take fewer bytes than asked (a signal, a nearly full disk), and
 * a snapshot missing the rest would be found only by its CRC, at the next start.
 */
export async function writeFully(file: FileHandle, chunk: Uint8Array): Promise<void> {
  for (let offset = 0; offset < chunk.length;) {
    const { bytesWritten } = await file.write(chunk, offset, chunk.length - offset);
    if (bytesWritten <= 0) throw new Error(`a write took ${bytesWritten} bytes`);
    offset += bytesWritten;
  }
}

/** The group's snapshot files with the instance each name says it covers, oldest first. */
export async function listSnapshotFiles(directory: string): Promise<{ name: string; instanceId: number }[]> {
  return snapshotNames(await listDirectory(directory)).map((name) => ({ name, instanceId: instanceOfName(name) }));
}

function instanceOfName(name: string): number {
  return Number((NAME.exec(name) as RegExpExecArray)[1]);
}

/**
 * Create the directory and make its creation durable: a snapshot in a directory whose entry a power
 * cut loses is lost with it, though its checkpoint was reported.
 */
export async function makeDurableDirectory(directory: string): Promise<void> {
  const first = await mkdir(directory, { recursive: true });
  if (first === undefined) return;
  for (let created = directory; ; created = dirname(created)) {
    await NODE_FILE_SYSTEM.syncDirectory(dirname(created));
    if (created === first) return;
  }
}

/** Remove all but the newest KEEP snapshots (files set aside as corrupt are left alone). */
export async function pruneSnapshots(directory: string): Promise<void> {
  const names = snapshotNames(await listDirectory(directory));
  for (const name of names.slice(0, Math.max(0, names.length - KEEP_SNAPSHOTS))) {
    await rm(join(directory, name), { force: true });
  }
}

/** Snapshot file names, oldest first. */
function snapshotNames(names: readonly string[]): string[] {
  return names.filter((name) => NAME.test(name)).sort();
}

async function listDirectory(directory: string): Promise<string[]> {
  try {
    return await readdir(directory);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
}
