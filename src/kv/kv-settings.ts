/**
 * The settings a KV node must keep for the life of its data: the number of groups. Keys map to
 * groups by hash, and replay refuses a write whose key hashes elsewhere; started again with another
 * count, a node would silently drop acknowledged writes (and nodes with different counts would
 * diverge). So the count is written down at first start and a different one is refused.
 */
import { mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { NOT_CHOSEN, PaxosError } from '../errors.js';

const FILE = 'kv-settings.json';

export async function checkGroupCount(dataDir: string, groups: number): Promise<void> {
  const path = join(dataDir, FILE);
  let text: string | undefined;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  if (text === undefined) {
    await mkdir(dataDir, { recursive: true });
    try {
      await writeDurably(path, `${JSON.stringify({ groups })}\n`);
    } catch (error) {
      throw startFailure(dataDir, error);
    }
    return;
  }
  let saved: unknown;
  try {
    saved = (JSON.parse(text) as { groups?: unknown }).groups;
  } catch {
    throw new PaxosError('BAD_OPTIONS', `${path} is not valid JSON; it records the node's group count`, NOT_CHOSEN);
  }
  if (saved !== groups) {
    throw new PaxosError('BAD_OPTIONS', `the data in ${dataDir} was written with ${String(saved)} groups; this node was ` +
      `started with ${groups}. Keys map to groups by hash: start it with ${String(saved)} groups`, NOT_CHOSEN);
  }
}

/** Written under a temporary name, synced, renamed, directory synced; a failure leaves no temporary file. */
async function writeDurably(path: string, text: string): Promise<void> {
  const temporary = `${path}.tmp`;
  try {
    const file = await open(temporary, 'w');
    try {
      await file.writeFile(text);
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(temporary, path);
  } catch (error) {
    await unlink(temporary).catch(() => undefined);
    throw error;
  }
  const directory = await open(join(path, '..'), 'r');
  try {
    await directory.sync();
  } finally {
    await directory.close();
  }
}

/**
 * The disk refused the settings file (it is the first thing a fresh node writes): the node cannot
 * start there, which is said in one line naming the directory and what it needs. Other errors
 * pass as they are.
 */
function startFailure(dataDir: string, error: unknown): unknown {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (code === undefined || !/^E[A-Z0-9]+$/.test(code) || code === 'EACCES' || code === 'EPERM') return error;
  const need = code === 'ENOSPC' || code === 'EDQUOT'
    ? ' (the disk is full: a node needs room for this small file and for its log, two segments of 8 MiB by ' +
      'default)'
    : '';
  return new PaxosError('STORAGE_UNAVAILABLE', `cannot start in ${dataDir}: writing ${FILE} failed: ` +
    `${error instanceof Error ? error.message : String(error)}${need}`, { ...NOT_CHOSEN, cause: error });
}
