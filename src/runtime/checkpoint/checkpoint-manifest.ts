/**
 * The two small documents of a checkpoint transfer, carried in its `begin` and `end` pieces.
 *
 *   manifest: u32 version | u32 count | count × (u32 stateMachineId | u64 instanceId)
 *             | u8 hasSystem | [u32 length | systemVariables] | u8 hasMaster | [u32 length | masterVariables]
 *   totals:   u32 count | count × (u32 stateMachineId | u64 bytes | u32 crc32)
 *
 * The manifest names, in sending order, the state machines whose snapshots follow and the instance
 * each covers, with the group's system and master variables (membership, gid, master) as the
 * sender's store holds them, so the receiver knows the group's members once it installs. The totals
 * let the receiver verify each snapshot whole, beyond the CRC of every piece. Both are decoded
 * strictly: anything but the exact shape is refused (CheckpointFormatError), never half-trusted.
 */
import { readUint64, writeUint64 } from '../../util/uint64.js';

export const MANIFEST_VERSION = 1;

export interface ManifestEntry {
  readonly stateMachineId: number;
  readonly instanceId: number;
}

export interface CheckpointManifest {
  readonly entries: readonly ManifestEntry[];
  readonly systemVariables: Uint8Array | undefined;
  readonly masterVariables: Uint8Array | undefined;
}

export interface SnapshotTotal {
  readonly stateMachineId: number;
  readonly bytes: number;
  readonly crc32: number;
}

export class CheckpointFormatError extends Error {
  override readonly name = 'CheckpointFormatError';
}

/** The instance a checkpoint restores the group to: its lowest state machine's. */
export function manifestInstanceId(manifest: CheckpointManifest): number {
  let lowest = Infinity;
  for (const entry of manifest.entries) lowest = Math.min(lowest, entry.instanceId);
  return lowest === Infinity ? -1 : lowest;
}

export function encodeManifest(manifest: CheckpointManifest): Uint8Array {
  const optional = (bytes: Uint8Array | undefined): number => (bytes === undefined ? 1 : 5 + bytes.length);
  const size = 8 + manifest.entries.length * 12 + optional(manifest.systemVariables) +
    optional(manifest.masterVariables);
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  view.setUint32(0, MANIFEST_VERSION, true);
  view.setUint32(4, manifest.entries.length, true);
  let at = 8;
  for (const entry of manifest.entries) {
    view.setUint32(at, entry.stateMachineId, true);
    writeUint64(view, at + 4, entry.instanceId);
    at += 12;
  }
  at = writeOptional(out, view, at, manifest.systemVariables);
  writeOptional(out, view, at, manifest.masterVariables);
  return out;
}

export function decodeManifest(bytes: Uint8Array): CheckpointManifest {
  const reader = new Reader(bytes);
  const version = reader.u32();
  if (version !== MANIFEST_VERSION) throw new CheckpointFormatError(`manifest version ${version} is not supported`);
  const count = reader.u32();
  if (count === 0 || count > 1024) throw new CheckpointFormatError(`a manifest of ${count} state machines`);
  const entries: ManifestEntry[] = [];
  const seen = new Set<number>();
  for (let index = 0; index < count; index++) {
    const stateMachineId = reader.u32();
    const instanceId = reader.u64();
    if (seen.has(stateMachineId)) throw new CheckpointFormatError(`state machine ${stateMachineId} is listed twice`);
    seen.add(stateMachineId);
    entries.push({ stateMachineId, instanceId });
  }
  const systemVariables = reader.optional();
  const masterVariables = reader.optional();
  reader.end();
  return { entries, systemVariables, masterVariables };
}

export function encodeTotals(totals: readonly SnapshotTotal[]): Uint8Array {
  const out = new Uint8Array(4 + totals.length * 16);
  const view = new DataView(out.buffer);
  view.setUint32(0, totals.length, true);
  let at = 4;
  for (const total of totals) {
    view.setUint32(at, total.stateMachineId, true);
    writeUint64(view, at + 4, total.bytes);
    view.setUint32(at + 12, total.crc32 >>> 0, true);
    at += 16;
  }
  return out;
}

export function decodeTotals(bytes: Uint8Array): SnapshotTotal[] {
  const reader = new Reader(bytes);
  const count = reader.u32();
  if (count > 1024) throw new CheckpointFormatError(`totals of ${count} state machines`);
  const totals: SnapshotTotal[] = [];
  for (let index = 0; index < count; index++) {
    totals.push({ stateMachineId: reader.u32(), bytes: reader.u64(), crc32: reader.u32() });
  }
  reader.end();
  return totals;
}

function writeOptional(out: Uint8Array, view: DataView, at: number, bytes: Uint8Array | undefined): number {
  if (bytes === undefined) {
    view.setUint8(at, 0);
    return at + 1;
  }
  view.setUint8(at, 1);
  view.setUint32(at + 1, bytes.length, true);
  out.set(bytes, at + 5);
  return at + 5 + bytes.length;
}

class Reader {
  private readonly bytes: Uint8Array;
  private readonly view: DataView;
  private at = 0;

  constructor(bytes: Uint8Array) {
    this.bytes = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  u32(): number {
    this.need(4);
    const value = this.view.getUint32(this.at, true);
    this.at += 4;
    return value;
  }

  u64(): number {
    this.need(8);
    const value = readUint64(this.view, this.at);
    if (value < 0) throw new CheckpointFormatError('a 64-bit field is not a safe integer');
    this.at += 8;
    return value;
  }

  optional(): Uint8Array | undefined {
    this.need(1);
    const flag = this.view.getUint8(this.at++);
    if (flag === 0) return undefined;
    if (flag !== 1) throw new CheckpointFormatError(`a presence flag of ${flag}`);
    const length = this.u32();
    this.need(length);
    const copy = this.bytes.slice(this.at, this.at + length);
    this.at += length;
    return copy;
  }

  end(): void {
    if (this.at !== this.bytes.byteLength) {
      throw new CheckpointFormatError(`${this.bytes.byteLength - this.at} bytes after the end`);
    }
  }

  private need(count: number): void {
    if (this.at + count > this.bytes.byteLength) throw new CheckpointFormatError('truncated');
  }
}
