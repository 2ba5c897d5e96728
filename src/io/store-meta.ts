/**
 * The log store's small metadata file: per group, the clear epoch, the min chosen instance (the
 * low-water mark below which records are deleted), and the system and master variables. It is
 * rewritten whole and replaced atomically (write a temporary file, fsync it, rename, fsync the
 * directory), and carries a CRC so a damaged file is refused rather than misread.
 */
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { NOT_CHOSEN, PaxosError } from '../errors.js';
import type { FileSystem } from './file-system.js';
import type { PendingCheckpoint } from '../runtime/interfaces.js';

export interface GroupMeta {
  /** Incremented by `clear`: records written under an older epoch are dead. */
  epoch: number;
  minChosenInstanceId: number;
  systemVariables: Uint8Array | undefined;
  masterVariables: Uint8Array | undefined;
  /** A checkpoint install under way (see LogStore.pendingCheckpoint). */
  pendingCheckpoint: PendingCheckpoint | undefined;
}

export const META_FILE = 'meta';
const META_VERSION = 1;

interface MetaJson {
  version: number;
  groups: Record<string, {
    epoch: number;
    minChosenInstanceId: number;
    systemVariables?: string;
    masterVariables?: string;
    pendingCheckpoint?: number;
    pendingSystemVariables?: string;
    pendingMasterVariables?: string;
  }>;
}

export function emptyGroupMeta(): GroupMeta {
  return {
    epoch: 0, minChosenInstanceId: 0, systemVariables: undefined, masterVariables: undefined,
    pendingCheckpoint: undefined,
  };
}

export async function readMeta(fs: FileSystem, directory: string): Promise<Map<number, GroupMeta>> {
  const path = join(directory, META_FILE);
  const groups = new Map<number, GroupMeta>();
  if (!(await fs.exists(path))) return groups;
  const bytes = await fs.readFile(path);
  if (bytes.length < 8) throw corrupt(path, 'file is shorter than its header');
  const length = bytes.readUInt32LE(0);
  if (length !== bytes.length - 8) throw corrupt(path, `header says ${length} bytes, file holds ${bytes.length - 8}`);
  const body = bytes.subarray(8);
  if (crc32(body) !== bytes.readUInt32LE(4)) throw corrupt(path, 'CRC mismatch');
  let parsed: MetaJson;
  try {
    parsed = JSON.parse(body.toString('utf8')) as MetaJson;
  } catch (error) {
    throw corrupt(path, `unreadable JSON: ${String(error)}`);
  }
  if (parsed.version !== META_VERSION) throw corrupt(path, `unsupported version ${parsed.version}`);
  for (const [key, value] of Object.entries(parsed.groups)) {
    groups.set(Number(key), {
      epoch: value.epoch,
      minChosenInstanceId: value.minChosenInstanceId,
      systemVariables: value.systemVariables === undefined ? undefined : Buffer.from(value.systemVariables, 'base64'),
      masterVariables: value.masterVariables === undefined ? undefined : Buffer.from(value.masterVariables, 'base64'),
      pendingCheckpoint: value.pendingCheckpoint === undefined ? undefined : {
        instanceId: value.pendingCheckpoint,
        systemVariables: fromBase64(value.pendingSystemVariables),
        masterVariables: fromBase64(value.pendingMasterVariables),
      },
    });
  }
  return groups;
}

export async function writeMeta(
  fs: FileSystem, directory: string, groups: ReadonlyMap<number, GroupMeta>,
): Promise<void> {
  const json: MetaJson = { version: META_VERSION, groups: {} };
  for (const [groupIndex, meta] of groups) {
    json.groups[String(groupIndex)] = {
      epoch: meta.epoch,
      minChosenInstanceId: meta.minChosenInstanceId,
      ...(meta.systemVariables === undefined ? {} : { systemVariables: Buffer.from(meta.systemVariables).toString('base64') }),
      ...(meta.masterVariables === undefined ? {} : { masterVariables: Buffer.from(meta.masterVariables).toString('base64') }),
      ...(meta.pendingCheckpoint === undefined ? {} : { pendingCheckpoint: meta.pendingCheckpoint.instanceId }),
      ...(meta.pendingCheckpoint?.systemVariables === undefined ? {} : {
        pendingSystemVariables: Buffer.from(meta.pendingCheckpoint.systemVariables).toString('base64'),
      }),
      ...(meta.pendingCheckpoint?.masterVariables === undefined ? {} : {
        pendingMasterVariables: Buffer.from(meta.pendingCheckpoint.masterVariables).toString('base64'),
      }),
    };
  }
  const body = Buffer.from(JSON.stringify(json), 'utf8');
  const bytes = Buffer.allocUnsafe(8 + body.length);
  bytes.writeUInt32LE(body.length, 0);
  bytes.writeUInt32LE(crc32(body), 4);
  body.copy(bytes, 8);
  const path = join(directory, META_FILE);
  const temporary = `${path}.tmp`;
  if (await fs.exists(temporary)) await fs.unlink(temporary);
  const handle = await fs.create(temporary);
  let written = false;
  try {
    await handle.write(bytes, 0);
    await handle.datasync();
    written = true;
  } finally {
    try {
      await handle.close();
    } finally {
      // A failed write (a full disk) leaves no temporary file behind.
      if (!written) await fs.unlink(temporary).catch(() => undefined);
    }
  }
  await fs.rename(temporary, path);
  await fs.syncDirectory(directory);
}

function fromBase64(value: string | undefined): Uint8Array | undefined {
  return value === undefined ? undefined : Buffer.from(value, 'base64');
}

function corrupt(path: string, detail: string): PaxosError {
  return new PaxosError('STORAGE_CORRUPT', `${path}: ${detail}`, NOT_CHOSEN);
}
