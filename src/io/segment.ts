/**
 * Log segments: files named by a sequence number, pre-allocated with zeros (so an append never
 * changes the file's size and fdatasync has no metadata to flush), written by appending frames.
 * Scanning a segment yields its records and where its data ends; a damaged frame is either a torn
 * tail (nothing valid follows it) or corruption (something valid does).
 */
import { join } from 'node:path';
import {
  decodeFrame, FRAME_HEADER_BYTES, RECORD_FIXED_BYTES, RECORD_KIND_ACCEPTOR, type StoredRecord,
} from './record-codec.js';
import type { FileHandle, FileSystem } from './file-system.js';

const SEGMENT_PATTERN = /^(\d{10})\.log$/;
const ZERO_CHUNK = Buffer.alloc(256 * 1024);

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
  let made = false;
  try {
    // Each chunk is written durably as it goes (O_DSYNC): one large flush at the end would hold the
    // disk and the file system's journal for tens of milliseconds while commits wait behind it.
    for (let offset = 0; offset < bytes; offset += ZERO_CHUNK.length) {
      const chunk = ZERO_CHUNK.subarray(0, Math.min(ZERO_CHUNK.length, bytes - offset));
      if (handle.writeDurably !== undefined) await handle.writeDurably(chunk, offset);
      else await handle.write(chunk, offset);
    }
    await handle.datasync();
    made = true;
  } finally {
    try {
      await handle.close();
    } finally {
      // A pre-allocation that failed (a full disk) leaves nothing behind: the space goes back at once.
      if (!made) await fs.unlink(temporary).catch(() => undefined);
    }
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
  /** Set when something other than zeros follows the end of the data. */
  readonly tail: SegmentTail | null;
  /** The highest write number seen, residue included. */
  readonly highestWrite: number;
  readonly fileBytes: number;
}

export interface SegmentTail {
  readonly offset: number;
  readonly reason: string;
  /**
   * 'torn': what follows is the remains of the newest write, interrupted (its pages may reach the
   * disk in any order, so some of its frames can be intact); safe to cut. 'corrupt': anything else,
   * for instance valid frames of a later write behind a damaged one.
   */
  readonly kind: 'torn' | 'corrupt';
  /** The last non-zero byte after the data + 1 (what a repair must zero). */
  readonly dirtyEnd: number;
  readonly detail?: string;
}

/**
 * Scan a segment's frames in order. `writesBefore` is the highest write number in earlier segments
 * (-1 if none). The data ends at a zero length, at a damaged frame, or at a frame whose write number
 * goes backwards (residue of an earlier life). Whatever follows the end is classified.
 */
export function scanSegment(data: Buffer, writesBefore: number, copyValues = true): ScanResult {
  const records: StoredRecord[] = [];
  const offsets: number[] = [];
  let offset = 0;
  let highest = writesBefore;
  let lastHere = -1;
  for (;;) {
    const frame = decodeFrame(data, offset, copyValues);
    if (frame.kind === 'record' && frame.stored.write >= highest) {
      highest = frame.stored.write;
      lastHere = highest;
      records.push(frame.stored);
      offsets.push(offset);
      offset = frame.end;
      continue;
    }
    const reason = frame.kind === 'bad' ? frame.reason : frame.kind === 'record' ? 'a write number goes backwards' : '';
    const tail = classifyTail(data, offset, reason, highest, lastHere);
    const highestWrite = Math.max(highest, tail?.residueWrite ?? -1);
    return { records, offsets, dataEnd: offset, tail: tail?.tail ?? null, highestWrite, fileBytes: data.length };
  }
}

/**
 * After the data ends at `offset`: nothing but zeros is a clean end, and damage that nothing valid
 * follows is the tail of an interrupted write. Valid frames after the damage may still be the
 * remains of the one write that was in flight at a crash, whose pages can reach the disk in any
 * order. Then they all carry one write number and say where that write began: either the write is
 * the next one and began exactly where the data ends, or it is the newest one, already begun before
 * the damage in this segment. And the gap before them shows what never reached the pre-allocated,
 * zero-filled segment (which then keeps its old content): zeros from the end of the data through
 * the first frame's header to a sector boundary, or a whole page of zeros (see hasLostPage).
 * Anything else (frames of several writes, of an older one, or a gap with no lost page, like a
 * flipped bit) is damage to the log itself.
 */
function classifyTail(data: Buffer, offset: number, reason: string, highestWrite: number, lastHere: number):
  { tail: SegmentTail; residueWrite: number } | null {
  const firstDirty = nextNonZero(data, offset);
  if (firstDirty === -1) return null;
  const dirtyEnd = lastNonZero(data, offset) + 1;
  const writes = new Set<number>();
  const starts = new Set<number>();
  let firstValid = -1;
  for (let position = firstDirty; position + FRAME_HEADER_BYTES <= dirtyEnd; position++) {
    if (!looksLikeFrame(data, position, highestWrite)) continue;
    const frame = decodeFrame(data, position, false);
    if (frame.kind !== 'record') continue;
    if (firstValid === -1) firstValid = position;
    writes.add(frame.stored.write);
    starts.add(frame.stored.writeStart);
  }
  const why = reason === '' ? 'data after the end of the log' : reason;
  if (writes.size === 0) return { tail: { offset, reason: why, kind: 'torn', dirtyEnd }, residueWrite: -1 };
  const write = writes.size === 1 && starts.size === 1 ? [...writes][0] as number : -1;
  const start = [...starts][0] ?? -1;
  const isNext = write !== -1 && write === highestWrite + 1 && start === offset;
  const isNewestHere = write !== -1 && write === highestWrite && write === lastHere && start < offset;
  if ((isNext || isNewestHere) && hasLostPage(data, offset, firstValid)) {
    return { tail: { offset, reason: why, kind: 'torn', dirtyEnd }, residueWrite: write };
  }
  const found = [...writes].sort((a, b) => a - b).join(', ');
  return {
    tail: { offset, reason: why, kind: 'corrupt', dirtyEnd,
      detail: `valid records follow it, of writes ${found}; the newest write before it is ${highestWrite}` },
    residueWrite: -1,
  };
}

/**
 * A cheap look at the header fields before paying for a CRC: inside random value bytes about one
 * offset in 70 has a plausible length, and a CRC over megabytes at each would take minutes.
 */
function looksLikeFrame(data: Buffer, position: number, highestWrite: number): boolean {
  if (position + FRAME_HEADER_BYTES + RECORD_FIXED_BYTES > data.length) return false;
  const bodyLength = data.readUInt32LE(position);
  if (bodyLength < RECORD_FIXED_BYTES || position + FRAME_HEADER_BYTES + bodyLength > data.length) return false;
  const body = position + FRAME_HEADER_BYTES;
  if (data[body] !== RECORD_KIND_ACCEPTOR) return false;
  const writeHigh = data.readUInt32LE(body + 13);
  const write = writeHigh * 0x1_0000_0000 + data.readUInt32LE(body + 9);
  if (writeHigh >= 0x20_0000 || write > highestWrite + PLAUSIBLE_WRITES_AHEAD) return false;
  return data.readUInt32LE(body + 17) <= position;
}

/** Frames of writes further ahead than this are not looked for (none can exist without corruption). */
const PLAUSIBLE_WRITES_AHEAD = 1 << 20;

/** The unit in which a write's pages reach the disk (the page size). */
const BLOCK_BYTES = 4096;

/**
 * The smallest unit a device writes whole (a 512-byte sector; NVMe formatted with 512-byte blocks
 * and AWUPF = 0 guarantees no more). A page written to such a device can land in part: some of its
 * sectors and not others.
 */
const SECTOR_BYTES = 512;

/**
 * Does the gap [from, to) show a page, or the sectors holding the write's first frame header, that
 * never reached the disk? Either everything from `from` to the end of the sector holding the first
 * frame's kind byte is zeros (the write's first sectors kept their old content: data up to `from`,
 * zeros after), or a whole page inside the gap is zeros.
 *
 * Sectors may be that small a unit there because those zeros cannot be damage to a frame that
 * landed: `from` is where the data ends, and a frame that had landed there would have a non-zero
 * length and a kind byte of 1. All of the header and the kind byte must be zeros, not just the
 * bytes left in `from`'s sector: a write starting 1-3 bytes before a sector's end would otherwise
 * show only the low bytes of its length, which are zero for a body length that is a multiple of
 * 256, and a bit flipped anywhere in that frame would have an acknowledged write cut as a tear.
 * A lost sector further into the gap is not taken as a tear, only a lost page: a zero sector there
 * could also be a value's own zeros inside a frame damaged some other way. So a device that keeps a
 * write's first sector and loses a later one, with frames of the write intact after it, still stops
 * start-up (docs/architecture.md).
 */
function hasLostPage(data: Buffer, from: number, to: number): boolean {
  const kindByte = from + FRAME_HEADER_BYTES;
  const headerSectorsEnd = Math.floor(kindByte / SECTOR_BYTES) * SECTOR_BYTES + SECTOR_BYTES;
  if (headerSectorsEnd <= to && isZero(data, from, headerSectorsEnd)) return true;
  const firstBoundary = Math.ceil(from / BLOCK_BYTES) * BLOCK_BYTES;
  for (let block = firstBoundary; block + BLOCK_BYTES <= to; block += BLOCK_BYTES) {
    if (isZero(data, block, block + BLOCK_BYTES)) return true;
  }
  return false;
}

function isZero(data: Buffer, from: number, to: number): boolean {
  return data.compare(ZERO_PROBE, 0, to - from, from, to) === 0;
}

const ZERO_PROBE = Buffer.alloc(64 * 1024);

/** The first non-zero byte at or after `from`, or -1. Compares 64 KiB at a time natively. */
function nextNonZero(data: Buffer, from: number): number {
  let position = from;
  while (position < data.length) {
    const end = Math.min(position + ZERO_PROBE.length, data.length);
    if (data.compare(ZERO_PROBE, 0, end - position, position, end) !== 0) {
      for (let i = position; i < end; i++) if (data[i] !== 0) return i;
    }
    position = end;
  }
  return -1;
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
  /** An open in progress, so concurrent readers share one descriptor. */
  opening: Promise<FileHandle> | null;
  /** Log cleaning took it out to unlink it: every record in it is below its group's durable mark. */
  unlinked: boolean;
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
