/**
 * Log segments: files named by a sequence number, pre-allocated with zeros (so an append never
 * changes the file's size and fdatasync has no metadata to flush), written by appending frames.
 * Scanning a segment yields its records and where its data ends; a damaged frame is either a torn
 * tail (nothing valid follows it) or corruption (something valid does).
 */
import { join } from 'node:path';
import { decodeFrame, FRAME_HEADER_BYTES, type StoredRecord } from './record-codec.js';
import type { FileHandle, FileSystem } from './file-system.js';

const SEGMENT_PATTERN = /^(\d{10})\.log$/;
const ZERO_CHUNK = Buffer.alloc(1024 * 1024);

export function segmentName(sequence: number): string {
  return `${String(sequence).padStart(10, '0')}.log`;
}

export function parseSegmentName(name: string): number | undefined {
  const match = SEGMENT_PATTERN.exec(name);
  return match === null ? undefined : Number(match[1]);
}

export async function listSegments(fs: FileSystem, directory: string): Promise<number[]> {
  const sequences: number[] = [];
  for (const name of await fs.readdir(directory)) {
    const sequence = parseSegmentName(name);
    if (sequence !== undefined) sequences.push(sequence);
  }
  return sequences.sort((a, b) => a - b);
}

/**
 * Create segment `sequence` of `bytes` zeros durably: written under a temporary name, synced,
 * renamed, and the directory synced, so a crash never leaves a half-made segment under its name.
 */
export async function createSegment(fs: FileSystem, directory: string, sequence: number, bytes: number): Promise<void> {
  const path = join(directory, segmentName(sequence));
  const temporary = `${path}.tmp`;
  if (await fs.exists(temporary)) await fs.unlink(temporary);
  const handle = await fs.create(temporary);
  try {
    for (let offset = 0; offset < bytes; offset += ZERO_CHUNK.length) {
      await handle.write(ZERO_CHUNK.subarray(0, Math.min(ZERO_CHUNK.length, bytes - offset)), offset);
    }
    await handle.datasync();
  } finally {
    await handle.close();
  }
  await fs.rename(temporary, path);
  await fs.syncDirectory(directory);
}

export interface ScanResult {
  readonly records: StoredRecord[];
  /** Offsets of the records, parallel to `records`. */
  readonly offsets: number[];
  /** Where the valid data ends (the next append goes here). */
  readonly dataEnd: number;
  /** Set when the data ends in a damaged frame. */
  readonly damage: SegmentDamage | null;
  readonly fileBytes: number;
}

export interface SegmentDamage {
  readonly offset: number;
  readonly reason: string;
  /** True when no valid frame follows the damaged one: the tail of an interrupted write. */
  readonly isTail: boolean;
  /** The last non-zero byte after the damage + 1 (what a repair must zero). */
  readonly dirtyEnd: number;
}

export function scanSegment(data: Buffer): ScanResult {
  const records: StoredRecord[] = [];
  const offsets: number[] = [];
  let offset = 0;
  for (;;) {
    const frame = decodeFrame(data, offset);
    if (frame.kind === 'end') return { records, offsets, dataEnd: offset, damage: null, fileBytes: data.length };
    if (frame.kind === 'bad') {
      const isTail = !hasValidFrameAfter(data, offset + 1);
      const damage = { offset, reason: frame.reason, isTail, dirtyEnd: lastNonZero(data, offset) + 1 };
      return { records, offsets, dataEnd: offset, damage, fileBytes: data.length };
    }
    records.push(frame.stored);
    offsets.push(offset);
    offset = frame.end;
  }
}

/** Does any position at or after `from` hold a frame that decodes (length plausible, CRC right)? */
function hasValidFrameAfter(data: Buffer, from: number): boolean {
  for (let position = from; position + FRAME_HEADER_BYTES <= data.length; position++) {
    if (data[position] === 0 && data[position + 1] === 0 && data[position + 2] === 0 && data[position + 3] === 0) {
      continue;
    }
    if (decodeFrame(data, position).kind === 'record') return true;
  }
  return false;
}

function lastNonZero(data: Buffer, from: number): number {
  for (let position = data.length - 1; position >= from; position--) if (data[position] !== 0) return position;
  return from - 1;
}

/** An open segment and what the store knows about it. */
export interface Segment {
  readonly sequence: number;
  readonly path: string;
  handle: FileHandle | null;
  capacity: number;
  writeOffset: number;
  /** group → epoch → highest instance with a record here (decides when the segment may go). */
  readonly highest: Map<number, Map<number, number>>;
}

export function noteRecord(segment: Segment, groupIndex: number, epoch: number, instanceId: number): void {
  let byEpoch = segment.highest.get(groupIndex);
  if (byEpoch === undefined) {
    byEpoch = new Map();
    segment.highest.set(groupIndex, byEpoch);
  }
  const current = byEpoch.get(epoch);
  if (current === undefined || instanceId > current) byEpoch.set(epoch, instanceId);
}
