/**
 * The on-disk form of one group's KV state as of an instance (a snapshot). Start-up trusts a
 * snapshot instead of replaying the instances it covers, so decoding is strict: anything
 * `encodeKvSnapshot` cannot have written is refused with a `KvSnapshotError`, never loaded.
 *
 * Layout (little-endian; every u64 holds a safe integer):
 *   magic "MPKVSNAP" | u16 format version (2; 1 is still read) | u16 flags (0)
 *   u32 group | u32 group count | u64 instance covered (C) | u64 last executed KV instance + 1 (0: none)
 *   u64 entry count
 *   fence: u8 present (0|1), when present: u32 node id | u64 master version | u16 length | http address
 *   entry × count: u16 key length | key (UTF-8) | u64 version | u8 kind (0 tombstone, 1 value)
 *                  | value: u32 length | bytes
 *   sessions (format 2 only): u64 next session id | u64 log time | u32 session count
 *     session × count, least recently active first: u64 id | u64 last active (log time) | u32 ttl ms
 *                  | u64 last sequence | u8 reply (0 none, 1 applied, 2 VERSION_CONFLICT, 3 KEY_NOT_FOUND)
 *                  | u64 reply's version
 *   u32 CRC-32 of everything before it
 *
 * Format 1 (before sessions) has no session section; it loads with an empty session table, which is
 * what the group had when it was written.
 *
 * Encoding yields chunks of about CHUNK_BYTES so a writer can interleave them with other work: a
 * million keys are ~120 MB, too much to encode in one turn of the event loop.
 */
import { Buffer } from 'node:buffer';
import { crc32 } from 'node:zlib';
import { groupOfKey } from './key-hash.js';
import { MAX_HTTP_ADDRESS_BYTES, MAX_KEY_BYTES, MAX_KV_VALUE_BYTES } from './kv-command.js';
import type { GroupFence, KvEntry, KvSessionReply } from './kv-state-machine.js';
import { MAX_SESSION_TTL_MS, type SessionRecord, type SessionTableState } from '../runtime/session-table.js';

export const KV_SNAPSHOT_MAGIC = 'MPKVSNAP';
/** The format written. */
export const KV_SNAPSHOT_FORMAT = 2;
/** The format of snapshots written before sessions, still read. */
export const KV_SNAPSHOT_FORMAT_WITHOUT_SESSIONS = 1;
const SESSION_BYTES = 8 + 8 + 4 + 8 + 1 + 8;
const REPLY_NONE = 0;
const REPLY_APPLIED = 1;
const REPLY_VERSION_CONFLICT = 2;
const REPLY_KEY_NOT_FOUND = 3;
const HEADER_BYTES = 44;
const CHUNK_BYTES = 1024 * 1024;
const SLAB_BYTES = 64 * 1024;
const TWO_32 = 0x1_0000_0000;
const KIND_TOMBSTONE = 0;
const KIND_VALUE = 1;

/** One group's state: every instance up to and including `instanceId` is applied, none after it. */
export interface KvSnapshotHeader {
  readonly group: number;
  readonly groups: number;
  readonly instanceId: number;
  /** The last instance that executed a KV command (-1: none); at most `instanceId`. */
  readonly lastExecutedInstanceId: number;
  readonly fence: GroupFence | undefined;
}

/** What is encoded: parallel arrays, ten times cheaper to copy out of a Map than a new Map. */
export interface KvSnapshot extends KvSnapshotHeader {
  /** `entries[i]` is the state of `keys[i]`. */
  readonly keys: readonly string[];
  readonly entries: readonly KvEntry[];
  /**
   * The group's client sessions. Required: a snapshot written with an empty table in place of a
   * forgotten one would hand out session ids again from 1, and a retry of another client's
   * (id, number) could then apply twice.
   */
  readonly sessions: SessionTableState<KvSessionReply>;
}

/** What is decoded: the map the state machine keeps. */
export interface DecodedKvSnapshot extends KvSnapshotHeader {
  readonly entries: Map<string, KvEntry>;
  /** The group's client sessions (undefined: a snapshot of format 1, written before sessions). */
  readonly sessions: SessionTableState<KvSessionReply> | undefined;
}

export class KvSnapshotError extends Error {
  override readonly name = 'KvSnapshotError';
}

/** The snapshot as chunks; their concatenation is the file, CRC included. */
export function* encodeKvSnapshotChunks(snapshot: KvSnapshot): Generator<Uint8Array> {
  // Checked for JavaScript callers too: an empty table in its place would hand out ids again.
  if ((snapshot.sessions as SessionTableState<KvSessionReply> | undefined) === undefined) {
    throw new TypeError('a KV snapshot carries its group\'s session table');
  }
  let crc = 0;
  const emit = (chunk: Uint8Array): Uint8Array => {
    crc = crc32(chunk, crc);
    return chunk;
  };
  yield emit(encodeHeader(snapshot));
  let chunk = Buffer.allocUnsafe(CHUNK_BYTES);
  let offset = 0;
  for (let index = 0; index < snapshot.keys.length; index++) {
    const key = snapshot.keys[index] as string;
    const entry = snapshot.entries[index] as KvEntry;
    const valueBytes = entry.value?.length ?? 0;
    const size = 2 + Buffer.byteLength(key) + 9 + (entry.value === undefined ? 0 : 4 + valueBytes);
    if (offset + size > chunk.length) {
      if (offset > 0) yield emit(chunk.subarray(0, offset));
      chunk = Buffer.allocUnsafe(Math.max(CHUNK_BYTES, size));
      offset = 0;
    }
    offset = encodeEntry(chunk, offset, key, entry);
  }
  if (offset > 0) yield emit(chunk.subarray(0, offset));
  yield emit(encodeSessions(snapshot.sessions));
  const trailer = Buffer.alloc(4);
  trailer.writeUInt32LE(crc >>> 0);
  yield trailer;
}

export function encodeKvSnapshot(snapshot: KvSnapshot): Uint8Array {
  return Buffer.concat([...encodeKvSnapshotChunks(snapshot)]);
}

/**
 * Decode and check a snapshot of group `expected.group` of a service with `expected.groups` groups.
 * Values are copied out of `bytes`: views would keep the whole file's buffer alive for as long as
 * any one value from it lives, keys and all. They are packed into slabs of SLAB_BYTES (a buffer per
 * value costs twice the memory and a third more load time), so a live value pins at most its slab.
 */
export function decodeKvSnapshot(bytes: Uint8Array, expected: { group: number; groups: number }): DecodedKvSnapshot {
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buffer.length < HEADER_BYTES + 1 + 4) fail(`${buffer.length} bytes is too short for a snapshot`);
  const format = checkMagicAndFormat(buffer);
  const body = buffer.length - 4;
  const stored = buffer.readUInt32LE(body);
  const computed = crc32(buffer.subarray(0, body)) >>> 0;
  if (stored !== computed) fail(`CRC mismatch (stored ${hex(stored)}, computed ${hex(computed)}): the file is damaged`);
  const { group, groups, instanceId, lastExecutedInstanceId } = decodeKvSnapshotHeader(buffer);
  if (group !== expected.group || groups !== expected.groups) {
    fail(`it is of group ${group} of ${groups}, not group ${expected.group} of ${expected.groups}`);
  }
  const count = readU64(buffer, 36, 'entry count');
  const reader = new Reader(buffer, HEADER_BYTES, body);
  const fence = decodeFence(reader);
  // Each entry takes at least 12 bytes: a count beyond that is corrupt, and must not size an array.
  if (count > (body - reader.offset) / 12) fail(`entry count ${count} does not fit the file`);
  const entries = new Map<string, KvEntry>();
  const slabs = new Slabs();
  for (let index = 0; index < count; index++) {
    const keyBytes = reader.bytes(reader.u16(), MAX_KEY_BYTES, 'key');
    const key = decodeKey(keyBytes);
    // Hashing the bytes read saves encoding every key again (a third of the decoding time).
    if (groupOfKey(keyBytes, groups) !== group) fail(`key ${JSON.stringify(key)} does not belong to group ${group}`);
    const version = reader.u64('version');
    if (version < 1) fail(`key ${JSON.stringify(key)} has version 0 (only a key never written has it)`);
    const kind = reader.u8();
    if (kind !== KIND_TOMBSTONE && kind !== KIND_VALUE) fail(`unknown entry kind ${kind}`);
    const value = kind === KIND_VALUE ? slabs.copy(reader.bytes(reader.u32(), MAX_KV_VALUE_BYTES, 'value'))
      : undefined;
    entries.set(key, Object.freeze({ value, version }));
    // One lookup instead of has() then set(): a key seen before leaves the size unchanged.
    if (entries.size !== index + 1) fail(`key ${JSON.stringify(key)} appears twice`);
  }
  const sessions = format === KV_SNAPSHOT_FORMAT ? decodeSessions(reader) : undefined;
  if (reader.offset !== body) fail(`${body - reader.offset} unexpected bytes after the ${sessions === undefined ? 'last entry' : 'session table'}`);
  return { group, groups, instanceId, lastExecutedInstanceId, fence, entries, sessions };
}

/**
 * The fixed header alone (the first 44 bytes or more), unchecked by the CRC: for a reader that checks
 * the CRC itself while streaming the file, or that only describes it.
 */
export function decodeKvSnapshotHeader(bytes: Uint8Array): {
  group: number; groups: number; instanceId: number; lastExecutedInstanceId: number;
} {
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buffer.length < HEADER_BYTES) fail(`${buffer.length} bytes is too short for a snapshot header`);
  checkMagicAndFormat(buffer);
  if (buffer.readUInt16LE(10) !== 0) fail('unknown flags');
  const instanceId = readU64(buffer, 20, 'instance');
  const lastExecutedInstanceId = readU64(buffer, 28, 'last executed instance') - 1;
  if (lastExecutedInstanceId > instanceId) fail(`last executed instance ${lastExecutedInstanceId} is after ${instanceId}`);
  return { group: buffer.readUInt32LE(12), groups: buffer.readUInt32LE(16), instanceId, lastExecutedInstanceId };
}

function checkMagicAndFormat(buffer: Buffer): number {
  if (buffer.toString('latin1', 0, 8) !== KV_SNAPSHOT_MAGIC) fail('not a KV snapshot (bad magic)');
  const format = buffer.readUInt16LE(8);
  if (format !== KV_SNAPSHOT_FORMAT && format !== KV_SNAPSHOT_FORMAT_WITHOUT_SESSIONS) {
    fail(`format version ${format} is not supported (this build reads ${KV_SNAPSHOT_FORMAT_WITHOUT_SESSIONS} and ${KV_SNAPSHOT_FORMAT})`);
  }
  return format;
}

function encodeSessions(table: SessionTableState<KvSessionReply>): Uint8Array {
  const out = Buffer.alloc(20 + table.sessions.length * SESSION_BYTES);
  writeU64(out, 0, table.nextId);
  writeU64(out, 8, table.logTime);
  out.writeUInt32LE(table.sessions.length, 16);
  let offset = 20;
  for (const session of table.sessions) {
    writeU64(out, offset, session.id);
    writeU64(out, offset + 8, session.lastActiveAt);
    out.writeUInt32LE(session.ttlMs, offset + 16);
    writeU64(out, offset + 20, session.lastSequence);
    const reply = session.reply;
    const kind = reply === undefined ? REPLY_NONE : reply.ok ? REPLY_APPLIED
      : reply.code === 'VERSION_CONFLICT' ? REPLY_VERSION_CONFLICT : REPLY_KEY_NOT_FOUND;
    out.writeUInt8(kind, offset + 28);
    writeU64(out, offset + 29, reply?.version ?? 0);
    offset += SESSION_BYTES;
  }
  return out;
}

function decodeSessions(reader: Reader): SessionTableState<KvSessionReply> {
  const nextId = reader.u64('next session id');
  if (nextId < 1) fail('next session id 0');
  const logTime = reader.u64('log time');
  const count = reader.u32();
  reader.expect(count * SESSION_BYTES, `${count} sessions`);
  const sessions: SessionRecord<KvSessionReply>[] = [];
  const seen = new Set<number>();
  let previousActivity = 0;
  for (let index = 0; index < count; index++) {
    const id = reader.u64('session id');
    if (id < 1 || id >= nextId || seen.has(id)) fail(`session id ${id} is out of range or appears twice`);
    seen.add(id);
    const lastActiveAt = reader.u64('session activity');
    // Saved least recently active first, none after the log time: the eviction order depends on it.
    if (lastActiveAt < previousActivity || lastActiveAt > logTime) fail(`session ${id} is out of activity order`);
    previousActivity = lastActiveAt;
    const ttlMs = reader.u32();
    if (ttlMs < 1 || ttlMs > MAX_SESSION_TTL_MS) fail(`session ${id} has a time to live of ${ttlMs} ms`);
    const lastSequence = reader.u64('last sequence');
    const kind = reader.u8();
    const version = reader.u64('reply version');
    if ((kind === REPLY_NONE) !== (lastSequence === 0)) fail(`session ${id}: a reply goes with a sequence number`);
    // Canonical: no reply has no version, so one state has one encoding.
    if (kind === REPLY_NONE && version !== 0) fail(`session ${id}: no reply, but a reply version ${version}`);
    let reply: KvSessionReply | undefined;
    if (kind === REPLY_APPLIED) reply = { ok: true, version };
    else if (kind === REPLY_VERSION_CONFLICT) reply = { ok: false, code: 'VERSION_CONFLICT', version };
    else if (kind === REPLY_KEY_NOT_FOUND) reply = { ok: false, code: 'KEY_NOT_FOUND', version };
    else if (kind !== REPLY_NONE) fail(`session ${id} has reply kind ${kind}`);
    sessions.push({ id, lastActiveAt, ttlMs, lastSequence, reply });
  }
  return { nextId, logTime, sessions };
}

function encodeHeader(snapshot: KvSnapshot): Uint8Array {
  const { fence } = snapshot;
  const address = fence === undefined ? undefined : Buffer.from(fence.httpAddress, 'utf8');
  const header = Buffer.alloc(HEADER_BYTES + 1 + (address === undefined ? 0 : 14 + address.length));
  header.write(KV_SNAPSHOT_MAGIC, 0, 'latin1');
  header.writeUInt16LE(KV_SNAPSHOT_FORMAT, 8);
  header.writeUInt32LE(snapshot.group, 12);
  header.writeUInt32LE(snapshot.groups, 16);
  writeU64(header, 20, snapshot.instanceId);
  writeU64(header, 28, snapshot.lastExecutedInstanceId + 1);
  writeU64(header, 36, snapshot.keys.length);
  if (fence !== undefined && address !== undefined) {
    header.writeUInt8(1, HEADER_BYTES);
    header.writeUInt32LE(fence.nodeId, HEADER_BYTES + 1);
    writeU64(header, HEADER_BYTES + 5, fence.masterVersion);
    header.writeUInt16LE(address.length, HEADER_BYTES + 13);
    address.copy(header, HEADER_BYTES + 15);
  }
  return header;
}

function encodeEntry(chunk: Buffer, start: number, key: string, entry: KvEntry): number {
  let offset = start + 2;
  const keyBytes = chunk.write(key, offset, 'utf8');
  chunk.writeUInt16LE(keyBytes, start);
  offset += keyBytes;
  writeU64(chunk, offset, entry.version);
  offset += 8;
  if (entry.value === undefined) {
    chunk.writeUInt8(KIND_TOMBSTONE, offset);
    return offset + 1;
  }
  chunk.writeUInt8(KIND_VALUE, offset);
  chunk.writeUInt32LE(entry.value.length, offset + 1);
  chunk.set(entry.value, offset + 5);
  return offset + 5 + entry.value.length;
}

function decodeFence(reader: Reader): GroupFence | undefined {
  const present = reader.u8();
  if (present === 0) return undefined;
  if (present !== 1) fail(`fence presence byte ${present}`);
  const nodeId = reader.u32();
  if (nodeId < 1) fail('fence node id 0');
  const masterVersion = reader.u64('fence master version');
  const httpAddress = reader.text(reader.u16(), 0, MAX_HTTP_ADDRESS_BYTES, 'fence http address');
  return Object.freeze({ nodeId, masterVersion, httpAddress });
}

// ignoreBOM: a key that starts with U+FEFF must keep it. fatal: bytes that are not UTF-8 are refused.
const strictDecoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * A key from its UTF-8 bytes, strictly. Most keys are ASCII, which decodes as latin1 several times
 * faster than through TextDecoder (whose per-call cost dominates for short strings).
 */
function decodeKey(bytes: Uint8Array): string {
  if (bytes.length === 0) fail('key of 0 bytes is under the minimum of 1');
  let ascii = true;
  for (const byte of bytes) {
    if (byte >= 0x80) {
      ascii = false;
      break;
    }
  }
  if (ascii) return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('latin1');
  try {
    return strictDecoder.decode(bytes);
  } catch {
    fail('key is not valid UTF-8');
  }
}

/** Copies of small values packed into shared slabs; a large value gets a buffer of its own. */
class Slabs {
  private slab = new Uint8Array(0);
  private offset = 0;

  copy(bytes: Uint8Array): Uint8Array {
    if (bytes.length > SLAB_BYTES / 8) return new Uint8Array(bytes);
    if (this.offset + bytes.length > this.slab.length) {
      this.slab = new Uint8Array(SLAB_BYTES);
      this.offset = 0;
    }
    const copy = this.slab.subarray(this.offset, this.offset + bytes.length);
    copy.set(bytes);
    this.offset += bytes.length;
    return copy;
  }
}

/** Bounds-checked reads; each failure names what was being read. */
class Reader {
  constructor(private readonly buffer: Buffer, public offset: number, private readonly end: number) {}

  u8(): number {
    this.need(1, 'a byte');
    return this.buffer.readUInt8(this.offset++);
  }

  u16(): number {
    this.need(2, 'a length');
    const value = this.buffer.readUInt16LE(this.offset);
    this.offset += 2;
    return value;
  }

  u32(): number {
    this.need(4, 'a number');
    const value = this.buffer.readUInt32LE(this.offset);
    this.offset += 4;
    return value;
  }

  u64(what: string): number {
    this.need(8, what);
    const value = readU64(this.buffer, this.offset, what);
    this.offset += 8;
    return value;
  }

  /** Fails unless `bytes` more are there (a count read from the file must not run past it). */
  expect(bytes: number, what: string): void {
    this.need(bytes, what);
  }

  bytes(length: number, max: number, what: string): Uint8Array {
    if (length > max) fail(`${what} of ${length} bytes is over the limit of ${max}`);
    this.need(length, what);
    // A view: keys and text become strings, values are copied by the caller.
    const bytes = new Uint8Array(this.buffer.buffer, this.buffer.byteOffset + this.offset, length);
    this.offset += length;
    return bytes;
  }

  text(length: number, min: number, max: number, what: string): string {
    if (length < min) fail(`${what} of ${length} bytes is under the minimum of ${min}`);
    try {
      return strictDecoder.decode(this.bytes(length, max, what));
    } catch (error) {
      if (error instanceof KvSnapshotError) throw error;
      fail(`${what} is not valid UTF-8`);
    }
  }

  private need(bytes: number, what: string): void {
    if (this.offset + bytes > this.end) fail(`truncated: ${what} runs past the end at offset ${this.offset}`);
  }
}

function writeU64(buffer: Buffer, offset: number, value: number): void {
  buffer.writeUInt32LE(value % TWO_32, offset);
  buffer.writeUInt32LE(Math.floor(value / TWO_32), offset + 4);
}

function readU64(buffer: Buffer, offset: number, what: string): number {
  const high = buffer.readUInt32LE(offset + 4);
  if (high >= 0x20_0000) fail(`${what} is not a safe integer`);
  return high * TWO_32 + buffer.readUInt32LE(offset);
}

function hex(value: number): string {
  return `0x${value.toString(16).padStart(8, '0')}`;
}

function fail(message: string): never {
  throw new KvSnapshotError(`KV snapshot: ${message}`);
}
