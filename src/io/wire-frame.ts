/**
 * The frame every byte on a transport connection belongs to:
 *
 *   u32 length | u8 version | u8 kind | u32 group | u32 crc32 | body
 *
 * Little-endian. `length` counts everything after itself (10 + body bytes), so the smallest frame
 * has length 10 and a frame occupies 4 + length bytes. `version` is PROTOCOL_VERSION. `kind` 0 is
 * the handshake, 1 the handshake acknowledgement, 2–15 are reserved for the connection and 16 up
 * are Paxos messages (message-codec.ts). `group` is the Paxos group index (0 on handshake frames).
 * `crc32` is zlib's CRC-32 over length, version, kind, group and body: every byte of the frame but
 * the CRC field itself, so a damaged length is caught too.
 *
 * `FrameDecoder` cuts a byte stream into frames without trusting it: a length that is too small or
 * above the limit, or a wrong version, fails as soon as those bytes arrive (before any body is
 * waited for or allocated), and a frame's memory is allocated once, at its exact size, after its
 * length is checked. Frames wholly inside one chunk are returned as views without copying.
 */
import { crc32 } from 'node:zlib';
import type { PaxosMessage } from '../core/messages.js';
import { encodedSize, writeMessage, MESSAGE_KIND_CODES } from './message-codec.js';
import { WireError } from './wire-error.js';

/**
 * 2: every proposed value travels in its proposal's identity envelope (core/proposal-identity.ts),
 * which a version-1 node cannot execute; the two refuse each other rather than stall a group.
 */
export const PROTOCOL_VERSION = 2;
/** length, version, kind, group, crc32. */
export const FRAME_HEADER_BYTES = 14;
/** The smallest value of the length field: a frame with an empty body. */
export const MIN_FRAME_LENGTH = FRAME_HEADER_BYTES - 4;
export const DEFAULT_MAX_FRAME_BYTES = 16 * 1024 * 1024;
export const FRAME_KIND_HANDSHAKE = 0;
export const FRAME_KIND_HANDSHAKE_ACK = 1;

const VERSION_OFFSET = 4;
const KIND_OFFSET = 5;
const GROUP_OFFSET = 6;
const CRC_OFFSET = 10;
/** length + version: what the decoder checks before it commits to a frame. */
const PREFIX_BYTES = 5;

/** The bytes a frame with this many body bytes occupies on the wire. */
export function frameBytes(bodyBytes: number): number {
  return FRAME_HEADER_BYTES + bodyBytes;
}

/** The bytes the frame of this message occupies on the wire. */
export function messageFrameBytes(message: PaxosMessage): number {
  return FRAME_HEADER_BYTES + encodedSize(message);
}

/**
 * Fill in the header of the frame at `offset` whose body (`bodyBytes` long) is already written
 * after it, CRC included; returns the offset after the frame.
 */
export function sealFrame(target: Buffer, view: DataView, offset: number, kind: number, group: number,
  bodyBytes: number): number {
  const end = offset + FRAME_HEADER_BYTES + bodyBytes;
  view.setUint32(offset, MIN_FRAME_LENGTH + bodyBytes, true);
  view.setUint8(offset + VERSION_OFFSET, PROTOCOL_VERSION);
  view.setUint8(offset + KIND_OFFSET, kind);
  view.setUint32(offset + GROUP_OFFSET, group, true);
  const headCrc = crc32(target.subarray(offset, offset + CRC_OFFSET));
  view.setUint32(offset + CRC_OFFSET, crc32(target.subarray(offset + FRAME_HEADER_BYTES, end), headCrc), true);
  return end;
}

/** One frame with an arbitrary body, in a buffer of its own. */
export function encodeFrame(kind: number, group: number, body: Uint8Array): Buffer {
  const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + body.length);
  frame.set(body, FRAME_HEADER_BYTES);
  sealFrame(frame, viewOf(frame), 0, kind, group, body.length);
  return frame;
}

/**
 * Write the frame of `message` for `group` into `target` at `offset`; returns the offset after it.
 * `view` must be a DataView over exactly `target`.
 */
export function writeMessageFrame(target: Buffer, view: DataView, offset: number, group: number,
  message: PaxosMessage): number {
  const bodyEnd = writeMessage(target, view, offset + FRAME_HEADER_BYTES, message);
  const bodyBytes = bodyEnd - offset - FRAME_HEADER_BYTES;
  return sealFrame(target, view, offset, MESSAGE_KIND_CODES[message.kind], group, bodyBytes);
}

/** The frame of one message in a buffer of its own. */
export function encodeMessageFrame(group: number, message: PaxosMessage): Buffer {
  return encodeMessageFrames([group], [message]);
}

/** The frames of many messages back to back in one exactly sized buffer (one socket write). */
export function encodeMessageFrames(groups: readonly number[], messages: readonly PaxosMessage[]): Buffer {
  let total = 0;
  for (const message of messages) total += messageFrameBytes(message);
  const target = Buffer.allocUnsafe(total);
  const view = viewOf(target);
  let offset = 0;
  for (let i = 0; i < messages.length; i++) {
    offset = writeMessageFrame(target, view, offset, groups[i] ?? 0, messages[i] as PaxosMessage);
  }
  return target;
}

export function viewOf(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** A frame whose length, version and CRC checked out. `body` is valid until the next `push`. */
export interface DecodedFrame {
  readonly kind: number;
  readonly group: number;
  readonly body: Buffer;
}

const NO_BYTES = Buffer.alloc(0);

/**
 * Cuts a byte stream into frames. Call `push` with each chunk, then `next` until it returns
 * undefined (every byte of the chunk is then consumed or buffered); only then `push` again.
 * A bad frame makes `next` throw a `WireError`, and every later call throws it again: a stream
 * that lost its framing cannot be trusted past that point.
 *
 * Memory: at most one partial frame is held, allocated at its exact size once its length passed
 * the limit; the limit can be raised later (a connection accepts small frames until its peer is
 * authenticated).
 */
export class FrameDecoder {
  private limit: number;
  private chunk: Buffer = NO_BYTES;
  private chunkOffset = 0;
  /** The first bytes of a frame split before its prefix was complete. */
  private readonly prefix = Buffer.alloc(PREFIX_BYTES);
  private prefixFill = 0;
  /** A frame being assembled across chunks, at its full size, and how much of it has arrived. */
  private partial: Buffer | null = null;
  private partialFill = 0;
  private failure: WireError | null = null;
  private partialStartedAt = -1;
  private lastPush = -1;

  constructor(maxFrameBytes: number = DEFAULT_MAX_FRAME_BYTES) {
    this.limit = maxFrameBytes;
  }

  /** The largest length field accepted (the frame then occupies 4 more bytes). */
  get maxFrameBytes(): number {
    return this.limit;
  }

  set maxFrameBytes(value: number) {
    this.limit = value;
  }

  /** Bytes of an incomplete frame held (not counting the chunk being consumed). */
  get bufferedBytes(): number {
    return this.prefixFill + this.partialFill;
  }

  /** Bytes allocated for the incomplete frame (its full size once its length is known). */
  get allocatedBytes(): number {
    return this.partial === null ? 0 : this.partial.length;
  }

  /** The `now` of the push that began the incomplete frame, or -1 when none is held. */
  get partialSince(): number {
    return this.bufferedBytes > 0 ? this.partialStartedAt : -1;
  }

  /** The `now` of the latest push that brought bytes. */
  get lastPushAt(): number {
    return this.lastPush;
  }

  get failed(): WireError | null {
    return this.failure;
  }

  /** Hand over the next chunk; `now` (any clock) only feeds `partialSince` and `lastPushAt`. */
  push(chunk: Buffer, now = 0): void {
    if (this.chunkOffset < this.chunk.length) {
      throw new RangeError('FrameDecoder.push before next() consumed the previous chunk');
    }
    this.chunk = chunk;
    this.chunkOffset = 0;
    if (chunk.length > 0) this.lastPush = now;
  }

  /** The next complete frame, or undefined when more bytes are needed. */
  next(): DecodedFrame | undefined {
    if (this.failure !== null) throw this.failure;
    for (;;) {
      const available = this.chunk.length - this.chunkOffset;
      if (this.partial !== null) {
        if (available === 0) return undefined;
        const partial = this.partial;
        const copied = this.chunk.copy(partial, this.partialFill, this.chunkOffset,
          this.chunkOffset + Math.min(available, partial.length - this.partialFill));
        this.chunkOffset += copied;
        this.partialFill += copied;
        if (this.partialFill < partial.length) return undefined;
        this.partial = null;
        this.partialFill = 0;
        return this.complete(partial, 0);
      }
      if (this.prefixFill > 0 || (available > 0 && available < PREFIX_BYTES)) {
        if (available === 0) return undefined;
        if (this.prefixFill === 0) this.partialStartedAt = this.lastPush;
        const copied = this.chunk.copy(this.prefix, this.prefixFill, this.chunkOffset,
          this.chunkOffset + Math.min(available, PREFIX_BYTES - this.prefixFill));
        this.chunkOffset += copied;
        this.prefixFill += copied;
        if (this.prefixFill >= 4) this.checkLength(this.prefix.readUInt32LE(0));
        if (this.prefixFill < PREFIX_BYTES) return undefined;
        this.checkVersion(this.prefix[VERSION_OFFSET] as number);
        this.partial = Buffer.allocUnsafe(4 + this.prefix.readUInt32LE(0));
        this.prefix.copy(this.partial, 0, 0, PREFIX_BYTES);
        this.partialFill = PREFIX_BYTES;
        this.prefixFill = 0;
        continue;
      }
      if (available === 0) return undefined;
      // At a frame boundary with at least the prefix in this chunk.
      const at = this.chunkOffset;
      const length = this.chunk.readUInt32LE(at);
      this.checkLength(length);
      this.checkVersion(this.chunk[at + VERSION_OFFSET] as number);
      const total = 4 + length;
      if (available >= total) {
        this.chunkOffset = at + total;
        return this.complete(this.chunk, at);
      }
      this.partial = Buffer.allocUnsafe(total);
      this.partialFill = this.chunk.copy(this.partial, 0, at);
      this.partialStartedAt = this.lastPush;
      this.chunkOffset = this.chunk.length;
      return undefined;
    }
  }

  private checkLength(length: number): void {
    if (length < MIN_FRAME_LENGTH) this.fail('bad-length', `frame length ${length} is below ${MIN_FRAME_LENGTH}`);
    if (length > this.limit) this.fail('oversized', `frame length ${length} exceeds the limit of ${this.limit}`);
  }

  private checkVersion(version: number): void {
    if (version !== PROTOCOL_VERSION) this.fail('bad-version', `protocol version ${version}, expected ${PROTOCOL_VERSION}`);
  }

  /** Verify the CRC of the whole frame at `offset` of `source` and return its view. */
  private complete(source: Buffer, offset: number): DecodedFrame {
    const end = offset + 4 + source.readUInt32LE(offset);
    const headCrc = crc32(source.subarray(offset, offset + CRC_OFFSET));
    const computed = crc32(source.subarray(offset + FRAME_HEADER_BYTES, end), headCrc);
    const stored = source.readUInt32LE(offset + CRC_OFFSET);
    if (computed !== stored) this.fail('bad-crc', `frame CRC ${hex(stored)} does not match its bytes (${hex(computed)})`);
    return {
      kind: source[offset + KIND_OFFSET] as number,
      group: source.readUInt32LE(offset + GROUP_OFFSET),
      body: source.subarray(offset + FRAME_HEADER_BYTES, end),
    };
  }

  private fail(reason: WireError['reason'], message: string): never {
    this.failure = new WireError(reason, message);
    this.partial = null;
    this.partialFill = 0;
    this.prefixFill = 0;
    this.chunk = NO_BYTES;
    this.chunkOffset = 0;
    throw this.failure;
  }
}

function hex(value: number): string {
  return `0x${value.toString(16).padStart(8, '0')}`;
}
