/**
 * What `log inspect` says of a group's KV snapshots (`<data>/kv-snapshots/g<N>/`): each file, the
 * instance its name says it covers, its size, and whether it decodes in full. Read-only, like the
 * rest of the inspection: a damaged file is reported, never set aside.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { decodeKvSnapshot, decodeKvSnapshotHeader } from '../kv/kv-snapshot-codec.js';
import { snapshotDirectory } from '../kv/kv-snapshot-files.js';

export interface KvSnapshotReport {
  readonly file: string;
  readonly instanceId: number;
  readonly bytes: number;
  readonly decodes: boolean;
  /** Why it does not decode (null when it does). */
  readonly error: string | null;
}

/** Snapshot files, and those set aside as damaged (`.corrupt`). */
const NAME = /^snapshot-(\d{16})\.kvs(\.corrupt)?$/;

/** The group's snapshot files, oldest first; none when the directory has no KV snapshots. */
export async function reportKvSnapshots(dataDir: string, group: number): Promise<KvSnapshotReport[]> {
  const directory = snapshotDirectory(dataDir, group);
  let names: string[];
  try {
    names = await readdir(directory);
  } catch {
    return [];
  }
  const reports: KvSnapshotReport[] = [];
  for (const file of names.filter((name) => NAME.test(name)).sort()) {
    const path = join(directory, file);
    const instanceId = Number((NAME.exec(file) as RegExpExecArray)[1]);
    const bytes = (await stat(path)).size;
    let error: string | null = null;
    try {
      const contents = await readFile(path);
      // The group count is the one the file says; whether it is the node's, start-up checks.
      const { groups } = decodeKvSnapshotHeader(contents);
      const decoded = decodeKvSnapshot(contents, { group, groups });
      if (decoded.instanceId !== instanceId) error = `it covers instance ${decoded.instanceId}, not the one its name says`;
    } catch (failure) {
      error = failure instanceof Error ? failure.message : String(failure);
    }
    reports.push({ file, instanceId, bytes, decodes: error === null, error });
  }
  return reports;
}
