/**
 * The on-disk frame of one acceptor record:
 *
 *   u32 bodyLength | u32 crc32(body) | body
 *   body = u8 kind (1) | u32 group | u32 epoch | u64 write | u32 writeStart | u64 instanceId
 *        | u64 promised.proposalId | u32 promised.nodeId
 *        | u64 accepted.proposalId | u32 accepted.nodeId
 *        | u32 checksum | value bytes (the rest)
 *
 * All integers little-endian. A zero length marks the end of the data in a pre-allocated segment.
 * `write` numbers the group-commit write the frame belongs to (increasing across the log and across
 * process lives) and `writeStart` is the segment offset where that write begins: together they let
 * start-up tell the remains of one interrupted write from corruption.
 * Decoding never trusts its input: every failure is a typed result naming what is wrong.
 */
import type { AcceptorRecord } from '../core/ready.js';
import { readUint64, writeUint64 } from '../util/uint64.js';
import { crc32 } from 'node:zlib';

export const FRAME_HEADER_BYTES = 8;
export const RECORD_FIXED_BYTES = 1 + 4 + 4 + 8 + 4 + 8 + 8 + 4 + 8 + 4 + 4;
export const RECORD_KIND_ACCEPTOR = 1;
/** No single record may exceed this (a bound on what a corrupt length can make us allocate). */
export const MAX_RECORD_BYTES = 64 * 1024 * 1024;

export interface StoredRecord {
  readonly groupIndex: number;
  readonly epoch: number;
  /** The group-commit write that stored it, and the segment offset where that write begins. */
  readonly write: number;
  readonly writeStart: number;
  readonly record: AcceptorRecord;
}

export function frameBytes(record: AcceptorRecord): number {
  return FRAME_HEADER_BYTES + RECORD_FIXED_BYTES + record.value.length;
}

/** Encode into `target` at `offset`; returns the offset after the frame. */
export interface WriteTag {
  readonly write: number;
  /** Segment offset of the write's first frame. */
  readonly start: number;
}

export function encodeRecord(target: Buffer, offset: number, groupIndex: number, epoch: number, tag: WriteTag,
  record: AcceptorRecord, targetView?: DataView): number {
  const bodyLength = RECORD_FIXED_BYTES + record.value.length;
  const view = targetView ?? new DataView(target.buffer, target.byteOffset, target.byteLength);
  const body = offset + FRAME_HEADER_BYTES;
  view.setUint8(body, RECORD_KIND_ACCEPTOR);
  view.setUint32(body + 1, groupIndex, true);
  view.setUint32(body + 5, epoch, true);
  writeUint64(view, body + 9, tag.write);
  view.setUint32(body + 17, tag.start, true);
  writeUint64(view, body + 21, record.instanceId);
  writeUint64(view, body + 29, record.promised.proposalId);
  view.setUint32(body + 37, record.promised.nodeId, true);
  writeUint64(view, body + 41, record.accepted.proposalId);
  view.setUint32(body + 49, record.accepted.nodeId, true);
  view.setUint32(body + 53, record.checksum >>> 0, true);
  target.set(record.value, body + RECORD_FIXED_BYTES);
  view.setUint32(offset, bodyLength, true);
  view.setUint32(offset + 4, crc32(target.subarray(body, body + bodyLength)), true);
  return body + bodyLength;
}

export type FrameResult =
  | { readonly kind: 'record'; readonly stored: StoredRecord; readonly end: number }
  /** Zero length: no more data in this segment. */
  | { readonly kind: 'end' }
  | { readonly kind: 'bad'; readonly reason: string };

/**
 * Decode the frame at `offset` of `source` (which may end before the frame does). With `copyValue`
 * false the value is a view into `source` (for scans that only index).
 */
export function decodeFrame(source: Buffer, offset: number, copyValue = true): FrameResult {
  if (offset + FRAME_HEADER_BYTES > source.length) {
    // No frame fits in what is left, so the writer never starts one here: zeros are the unused end of
    // a segment filled to within a header of its size, anything else is damage.
    const rest = source.subarray(offset);
    return rest.every((byte) => byte === 0) ? { kind: 'end' } : { kind: 'bad', reason: 'truncated frame header' };
  }
  const view = new DataView(source.buffer, source.byteOffset, source.byteLength);
  const bodyLength = view.getUint32(offset, true);
  if (bodyLength === 0) return { kind: 'end' };
  if (bodyLength < RECORD_FIXED_BYTES || bodyLength > MAX_RECORD_BYTES) {
    return { kind: 'bad', reason: `implausible record length ${bodyLength}` };
  }
  const body = offset + FRAME_HEADER_BYTES;
  if (body + bodyLength > source.length) return { kind: 'bad', reason: 'record runs past the end of the file' };
  const expected = view.getUint32(offset + 4, true);
  if (crc32(source.subarray(body, body + bodyLength)) !== expected) return { kind: 'bad', reason: 'CRC mismatch' };
  return decodeBody(source, view, body, bodyLength, copyValue);
}

function decodeBody(source: Buffer, view: DataView, body: number, bodyLength: number, copyValue: boolean):
  FrameResult {
  if (view.getUint8(body) !== RECORD_KIND_ACCEPTOR) return { kind: 'bad', reason: `unknown record kind ${view.getUint8(body)}` };
  const write = readUint64(view, body + 9);
  const instanceId = readUint64(view, body + 21);
  const promisedId = readUint64(view, body + 29);
  const acceptedId = readUint64(view, body + 41);
  if (write < 0 || instanceId < 0 || promisedId < 0 || acceptedId < 0) {
    return { kind: 'bad', reason: 'integer out of range' };
  }
  const record: AcceptorRecord = {
    instanceId,
    promised: { proposalId: promisedId, nodeId: view.getUint32(body + 37, true) },
    accepted: { proposalId: acceptedId, nodeId: view.getUint32(body + 49, true) },
    checksum: view.getUint32(body + 53, true),
    value: copyValue ? Uint8Array.prototype.slice.call(source, body + RECORD_FIXED_BYTES, body + bodyLength)
      : source.subarray(body + RECORD_FIXED_BYTES, body + bodyLength),
  };
  return {
    kind: 'record',
    stored: {
      groupIndex: view.getUint32(body + 1, true), epoch: view.getUint32(body + 5, true), write,
      writeStart: view.getUint32(body + 17, true), record,
    },
    end: body + bodyLength,
  };
}
