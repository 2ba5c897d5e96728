/**
 * The commands the KV service proposes through Paxos, as bytes. Every node decodes the same bytes,
 * so decoding is strict: anything `encodeKvCommand` cannot have written is refused (the state machine
 * then refuses the command identically on every node), and a decoded command re-encodes to the very
 * same bytes.
 *
 * Layout (big-endian):
 *   u8 format (0x4b) | u8 kind (1 put, 2 legacy delete, 3 fence, 4 delete) | u32 fence node id
 *   | u64 fence master version
 *   put:    | expected version | u32 key length | key (UTF-8) | u32 value length | value
 *   delete: | expected version | u32 key length | key (UTF-8)     (kinds 2 and 4)
 *   fence:  | u32 http address length | http address (UTF-8)
 * An expected version is a presence byte (0 absent, 1 present) followed, when present, by a u64.
 * Every u64 holds a safe integer (0 .. 2^53 - 1), so numbers never need BigInt.
 *
 * Kinds 5 to 7 carry a client session (kv-sessions in the state machine, src/runtime/session-table.ts):
 *   register (5):       | u64 stamp (the master's wall clock, ms) | u32 time to live (ms)
 *   session put (6):    | u64 session id | u64 sequence number | u64 stamp | then as a put
 *   session delete (7): | u64 session id | u64 sequence number | u64 stamp | then as a delete (kind 4)
 *
 * Kinds 2 and 4 differ only in what a delete of an absent key (never written, or deleted) does: kind 4
 * (every delete proposed now) changes nothing and answers KEY_NOT_FOUND; kind 2 (the only delete
 * written before that rule) stores a tombstone at the next version, as it always did. Keeping kind 2's
 * meaning is what lets logs written before the change replay to the very state they produced.
 */

import { MAX_SESSION_TTL_MS } from '../runtime/session-table.js';

/** With the u flag a surrogate pair is one code point, so this matches only unpaired halves (not UTF-8). */
export const LONE_SURROGATE = /\p{Cs}/u;

/** Which master's term a write belongs to: the node that fenced the group and the master version it held. */
export interface Fence {
  readonly nodeId: number;
  readonly masterVersion: number;
}

/** A write's place in a client session: which session, its number there, and the proposer's clock. */
export interface SessionStamp {
  readonly id: number;
  /** 1, 2, ... */
  readonly sequence: number;
  /** The proposing master's wall clock (ms since 1970): the log time it brings. */
  readonly at: number;
}

export type KvCommand =
  | {
    readonly kind: 'put'; readonly key: string; readonly value: Uint8Array;
    readonly expectedVersion: number | undefined; readonly fence: Fence; readonly session?: SessionStamp;
  }
  | {
    readonly kind: 'delete'; readonly key: string; readonly expectedVersion: number | undefined; readonly fence: Fence;
    readonly session?: SessionStamp;
    /**
     * Set only on a delete decoded from kind 2 (a log written before deletes of absent keys became
     * no-ops): a delete of an absent key then still stores a tombstone at the next version.
     */
    readonly tombstoneIfAbsent?: true;
  }
  | { readonly kind: 'fence'; readonly fence: Fence; readonly httpAddress: string }
  /** Open a session; `ttlMs`: how long of log time it may stay idle before it expires. */
  | { readonly kind: 'register'; readonly fence: Fence; readonly at: number; readonly ttlMs: number };

/** UTF-8 bytes of a key (at least 1). */
export const MAX_KEY_BYTES = 4096;
export const MAX_KV_VALUE_BYTES = 1024 * 1024;
export const MAX_HTTP_ADDRESS_BYTES = 255;

export class KvCommandError extends Error {
  override readonly name = 'KvCommandError';
}

const FORMAT = 0x4b;
const KIND_PUT = 1;
const KIND_LEGACY_DELETE = 2;
const KIND_FENCE = 3;
const KIND_DELETE = 4;
const KIND_REGISTER = 5;
const KIND_SESSION_PUT = 6;
const KIND_SESSION_DELETE = 7;
const TWO_32 = 0x1_0000_0000;
/** Above this, the high word of a u64 makes it exceed Number.MAX_SAFE_INTEGER. */
const MAX_SAFE_HIGH_WORD = 0x1f_ffff;

// ignoreBOM: a key that starts with U+FEFF must keep it, or it would decode to a different key.
const strictDecoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export function encodeKvCommand(command: KvCommand): Uint8Array {
  const kind = kindByte(command);
  const nodeId = checkNodeId(command.fence.nodeId);
  const masterVersion = checkVersion(command.fence.masterVersion, 'master version');
  // Checked and sized first, then written into one buffer: the servers encode a command per write.
  let size = 14;
  let address: Uint8Array | undefined;
  let key: Uint8Array | undefined;
  let value: Uint8Array | undefined;
  if (command.kind === 'fence') {
    address = text(command.httpAddress, 'http address', 0, MAX_HTTP_ADDRESS_BYTES);
    size += 4 + address.length;
  } else if (command.kind === 'register') {
    checkVersion(command.at, 'stamp');
    checkTtl(command.ttlMs);
    size += 12;
  } else {
    if (command.session !== undefined) {
      checkPositive(command.session.id, 'session id');
      checkPositive(command.session.sequence, 'sequence number');
      checkVersion(command.session.at, 'stamp');
      size += 24;
    }
    if (command.expectedVersion !== undefined) checkVersion(command.expectedVersion, 'expected version');
    size += command.expectedVersion === undefined ? 1 : 9;
    key = text(command.key, 'key', 1, MAX_KEY_BYTES);
    size += 4 + key.length;
    if (command.kind === 'put') {
      if (!(command.value instanceof Uint8Array) || command.value.length > MAX_KV_VALUE_BYTES) {
        throw new KvCommandError(`a value is a Uint8Array of at most ${MAX_KV_VALUE_BYTES} bytes`);
      }
      value = command.value;
      size += 4 + value.length;
    }
  }
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  view.setUint8(0, FORMAT);
  view.setUint8(1, kind);
  view.setUint32(2, nodeId);
  setUint64(view, 6, masterVersion);
  let offset = 14;
  const putBytes = (bytes: Uint8Array): void => {
    view.setUint32(offset, bytes.length);
    out.set(bytes, offset + 4);
    offset += 4 + bytes.length;
  };
  if (command.kind === 'register') {
    setUint64(view, offset, command.at);
    view.setUint32(offset + 8, command.ttlMs);
  } else if (address !== undefined) {
    putBytes(address);
  } else if (command.kind !== 'fence') {
    if (command.session !== undefined) {
      setUint64(view, offset, command.session.id);
      setUint64(view, offset + 8, command.session.sequence);
      setUint64(view, offset + 16, command.session.at);
      offset += 24;
    }
    if (command.expectedVersion === undefined) {
      view.setUint8(offset, 0);
      offset += 1;
    } else {
      view.setUint8(offset, 1);
      setUint64(view, offset + 1, command.expectedVersion);
      offset += 9;
    }
    putBytes(key as Uint8Array);
    if (value !== undefined) putBytes(value);
  }
  return out;
}

export function decodeKvCommand(bytes: Uint8Array): KvCommand {
  const reader = new Reader(bytes);
  const format = reader.uint8();
  if (format !== FORMAT) throw new KvCommandError(`unknown KV command format 0x${format.toString(16)}`);
  const kind = reader.uint8();
  if (kind < KIND_PUT || kind > KIND_SESSION_DELETE) throw new KvCommandError(`unknown KV command kind ${kind}`);
  const nodeId = reader.uint32();
  if (nodeId === 0) throw new KvCommandError('a fence names node 0');
  const fence: Fence = { nodeId, masterVersion: reader.uint64('master version') };
  let command: KvCommand;
  if (kind === KIND_FENCE) {
    command = { kind: 'fence', fence, httpAddress: reader.text('http address', 0, MAX_HTTP_ADDRESS_BYTES) };
  } else if (kind === KIND_REGISTER) {
    const at = reader.uint64('stamp');
    const ttlMs = reader.uint32();
    if (ttlMs < 1 || ttlMs > MAX_SESSION_TTL_MS) throw new KvCommandError(`time to live ${ttlMs} ms is out of range`);
    command = { kind: 'register', fence, at, ttlMs };
  } else {
    const session = kind === KIND_SESSION_PUT || kind === KIND_SESSION_DELETE ? readSession(reader) : undefined;
    const expectedVersion = reader.optionalUint64('expected version');
    const key = reader.text('key', 1, MAX_KEY_BYTES);
    const withSession = session === undefined ? {} : { session };
    command = kind === KIND_DELETE || kind === KIND_SESSION_DELETE ? { kind: 'delete', key, expectedVersion, fence, ...withSession }
      : kind === KIND_LEGACY_DELETE ? { kind: 'delete', key, expectedVersion, fence, tombstoneIfAbsent: true }
      // A copy: the input is usually a view into a whole batch, which must not stay alive (or change) under us.
      : { kind: 'put', key, value: new Uint8Array(reader.lengthPrefixed('value', 0, MAX_KV_VALUE_BYTES)),
        expectedVersion, fence, ...withSession };
  }
  reader.end();
  return command;
}

function kindByte(command: KvCommand): number {
  switch (command.kind) {
    case 'put': return command.session === undefined ? KIND_PUT : KIND_SESSION_PUT;
    case 'delete':
      if (command.session !== undefined) {
        if (command.tombstoneIfAbsent === true) throw new KvCommandError('a legacy delete has no session');
        return KIND_SESSION_DELETE;
      }
      return command.tombstoneIfAbsent === true ? KIND_LEGACY_DELETE : KIND_DELETE;
    case 'fence': return KIND_FENCE;
    case 'register': return KIND_REGISTER;
    default: throw new KvCommandError(`unknown KV command kind ${String((command as { kind: unknown }).kind)}`);
  }
}

function checkNodeId(nodeId: number): number {
  if (!Number.isInteger(nodeId) || nodeId < 1 || nodeId >= TWO_32) {
    throw new KvCommandError(`node id ${nodeId} is not in [1, 2^32 - 1]`);
  }
  return nodeId;
}

function checkVersion(version: number, what: string): number {
  if (!Number.isSafeInteger(version) || version < 0) {
    throw new KvCommandError(`${what} ${version} is not a safe integer in [0, 2^53 - 1]`);
  }
  return version;
}

function checkTtl(ttlMs: number): number {
  if (!Number.isInteger(ttlMs) || ttlMs < 1 || ttlMs > MAX_SESSION_TTL_MS) {
    throw new KvCommandError(`a session's time to live is 1 to ${MAX_SESSION_TTL_MS} ms, not ${ttlMs}`);
  }
  return ttlMs;
}

function readSession(reader: Reader): SessionStamp {
  const id = reader.uint64('session id');
  const sequence = reader.uint64('sequence number');
  const at = reader.uint64('stamp');
  if (id < 1 || sequence < 1) throw new KvCommandError('a session id and a sequence number start at 1');
  return { id, sequence, at };
}

function checkPositive(value: number, what: string): number {
  if (checkVersion(value, what) < 1) throw new KvCommandError(`${what} ${value} is not at least 1`);
  return value;
}

function setUint64(view: DataView, offset: number, value: number): void {
  view.setUint32(offset, Math.floor(value / TWO_32));
  view.setUint32(offset + 4, value % TWO_32);
}

function text(value: string, what: string, minBytes: number, maxBytes: number): Uint8Array {
  // UTF-8 encoding would silently turn a lone surrogate into U+FFFD, which decodes as a different string.
  if (typeof value !== 'string' || LONE_SURROGATE.test(value)) {
    throw new KvCommandError(`${what} is not a well-formed string`);
  }
  // Buffer's encoder, several times faster than TextEncoder on short strings (the same bytes for a
  // well-formed string); the bytes are copied into the command, so its pooled memory is not kept.
  const bytes = Buffer.from(value, 'utf8');
  if (bytes.length < minBytes || bytes.length > maxBytes) {
    throw new KvCommandError(`${what} has ${bytes.length} UTF-8 bytes, not ${minBytes} to ${maxBytes}`);
  }
  return bytes;
}

/** Reads fields in order; every read checks the buffer's bounds first. */
class Reader {
  private readonly view: DataView;
  private offset = 0;

  constructor(private readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  uint8(): number {
    this.need(1, 'a byte');
    return this.view.getUint8(this.offset++);
  }

  uint32(): number {
    this.need(4, 'a u32');
    const value = this.view.getUint32(this.offset);
    this.offset += 4;
    return value;
  }

  uint64(what: string): number {
    this.need(8, what);
    const high = this.view.getUint32(this.offset);
    const low = this.view.getUint32(this.offset + 4);
    if (high > MAX_SAFE_HIGH_WORD) throw new KvCommandError(`${what} is not a safe integer`);
    this.offset += 8;
    return high * TWO_32 + low;
  }

  optionalUint64(what: string): number | undefined {
    const presence = this.uint8();
    if (presence === 0) return undefined;
    if (presence !== 1) throw new KvCommandError(`${what} has presence byte ${presence}`);
    return this.uint64(what);
  }

  /** A view into the input: callers copy or decode it. */
  lengthPrefixed(what: string, minBytes: number, maxBytes: number): Uint8Array {
    const length = this.uint32();
    if (length < minBytes || length > maxBytes) {
      throw new KvCommandError(`${what} has ${length} bytes, not ${minBytes} to ${maxBytes}`);
    }
    this.need(length, what);
    const field = this.bytes.subarray(this.offset, this.offset + length);
    this.offset += length;
    return field;
  }

  text(what: string, minBytes: number, maxBytes: number): string {
    const field = this.lengthPrefixed(what, minBytes, maxBytes);
    try {
      return strictDecoder.decode(field);
    } catch {
      throw new KvCommandError(`${what} is not valid UTF-8`);
    }
  }

  end(): void {
    const trailing = this.bytes.length - this.offset;
    if (trailing !== 0) throw new KvCommandError(`a KV command has ${trailing} trailing bytes`);
  }

  private need(count: number, what: string): void {
    if (this.offset + count > this.bytes.length) throw new KvCommandError(`a KV command is truncated in ${what}`);
  }
}
