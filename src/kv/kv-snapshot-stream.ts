/**
 * Sending a KV snapshot file to a peer that fell behind: the file is checked whole (CRC and header)
 * before it is offered, so a damaged file is never sent, then streamed in chunks from the one open
 * handle. Reading through the handle, never the path, is what keeps the stream intact when the
 * snapshotter prunes the file meanwhile: an unlinked file stays readable while it is open.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { crc32 } from 'node:zlib';
import type { StateMachineSnapshot } from '../runtime/interfaces.js';
import { decodeKvSnapshotHeader, KvSnapshotError } from './kv-snapshot-codec.js';

const CHUNK_BYTES = 1024 * 1024;

/**
 * The snapshot at `path` as a stream, once its CRC and header (group, group count and the instance
 * its name says) check out; undefined when they do not (the caller tries an older file).
 */
export async function openSnapshotStream(
  path: string, expected: { group: number; groups: number; instanceId: number },
): Promise<StateMachineSnapshot | undefined> {
  const file = await open(path, 'r');
  try {
    if (!(await isIntact(file, expected))) {
      await file.close();
      return undefined;
    }
  } catch (error) {
    await file.close();
    throw error;
  }
  let closed = false;
  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    await file.close();
  };
  return { instanceId: expected.instanceId, chunks: readChunks(file, close), close };
}

async function* readChunks(file: FileHandle, close: () => Promise<void>): AsyncGenerator<Uint8Array> {
  try {
    for (let position = 0; ;) {
      // A fresh buffer per chunk: the receiver may keep what it was given.
      const buffer = new Uint8Array(CHUNK_BYTES);
      const { bytesRead } = await file.read(buffer, 0, buffer.length, position);
      if (bytesRead === 0) return;
      position += bytesRead;
      yield buffer.subarray(0, bytesRead);
    }
  } finally {
    await close();
  }
}

/** Read the file once through: its CRC must match and its header must be the expected one's. */
async function isIntact(
  file: FileHandle, expected: { group: number; groups: number; instanceId: number },
): Promise<boolean> {
  const size = (await file.stat()).size;
  if (size < 4) return false;
  const buffer = new Uint8Array(CHUNK_BYTES);
  let crc = 0;
  let header: Uint8Array | undefined;
  const body = size - 4;
  for (let position = 0; position < body;) {
    const { bytesRead } = await file.read(buffer, 0, Math.min(buffer.length, body - position), position);
    if (bytesRead === 0) return false;
    if (position === 0) header = buffer.slice(0, bytesRead);
    crc = crc32(buffer.subarray(0, bytesRead), crc);
    position += bytesRead;
  }
  const trailer = new Uint8Array(4);
  const { bytesRead } = await file.read(trailer, 0, 4, body);
  if (bytesRead !== 4 || header === undefined) return false;
  if (Buffer.from(trailer).readUInt32LE(0) !== crc >>> 0) return false;
  try {
    const decoded = decodeKvSnapshotHeader(header);
    return decoded.group === expected.group && decoded.groups === expected.groups &&
      decoded.instanceId === expected.instanceId;
  } catch (error) {
    if (error instanceof KvSnapshotError) return false;
    throw error;
  }
}
