/**
 * The membership of a group (PhxPaxos SystemVariables) and the proposals that change it, as bytes.
 * Members carry their address: node ids are not addresses, and a node learns how to reach a new
 * member from the change that added it.
 *
 * Layout (little-endian): u64 gid | u64 version + 1 | u32 nonce | u16 member count | per member:
 * u32 id | u16 port | u16 host length | host (UTF-8). A change proposal names the gid and version it
 * was made against; the persisted variables use the same layout with the version they are at.
 */
import { readUint64, writeUint64 } from '../../util/uint64.js';

export interface Member {
  readonly id: number;
  readonly host: string;
  readonly port: number;
}

export interface Membership {
  /** The group's identity, chosen at random by the change that created it (0: none yet). */
  readonly gid: number;
  /** The instance of the change that set this membership (-1: the configured one, never changed). */
  readonly version: number;
  readonly members: readonly Member[];
  /**
   * Random; kept in the layout from when a proposer recognised its value by its bytes. The
   * proposal identity (core/proposal-identity.ts) now decides that.
   */
  readonly nonce: number;
}

const HEADER_BYTES = 22;
const MEMBER_FIXED_BYTES = 8;
export const MAX_MEMBERS = 1_000;

/** Longest host name a member may have, in UTF-8 bytes (DNS names are at most 253). */
export const MAX_HOST_BYTES = 255;

/** Throws on a membership this codec cannot represent exactly (it would decode as something else). */
export function encodeMembership(membership: Membership): Uint8Array {
  if (membership.members.length === 0 || membership.members.length > MAX_MEMBERS) {
    throw new RangeError(`a membership has 1 to ${MAX_MEMBERS} members, not ${membership.members.length}`);
  }
  const hosts = membership.members.map((member) => Buffer.from(member.host, 'utf8'));
  membership.members.forEach((member, index) => {
    if (!Number.isInteger(member.id) || member.id < 1 || member.id > 0xffff_ffff) {
      throw new RangeError(`member id ${member.id} is not in [1, 2^32 - 1]`);
    }
    if (!Number.isInteger(member.port) || member.port < 0 || member.port > 65_535) {
      throw new RangeError(`member ${member.id} has port ${member.port}`);
    }
    if ((hosts[index] as Buffer).length > MAX_HOST_BYTES) {
      throw new RangeError(`member ${member.id}'s host has more than ${MAX_HOST_BYTES} bytes`);
    }
  });
  const size = HEADER_BYTES + hosts.reduce((sum, host) => sum + MEMBER_FIXED_BYTES + host.length, 0);
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  writeUint64(view, 0, membership.gid);
  writeUint64(view, 8, membership.version + 1);
  view.setUint32(16, membership.nonce >>> 0, true);
  view.setUint16(20, membership.members.length, true);
  let offset = HEADER_BYTES;
  membership.members.forEach((member, index) => {
    const host = hosts[index] as Buffer;
    view.setUint32(offset, member.id, true);
    view.setUint16(offset + 4, member.port, true);
    view.setUint16(offset + 6, host.length, true);
    out.set(host, offset + MEMBER_FIXED_BYTES);
    offset += MEMBER_FIXED_BYTES + host.length;
  });
  return out;
}

/** Throws on anything `encodeMembership` cannot have written. */
export function decodeMembership(bytes: Uint8Array): Membership {
  if (bytes.length < HEADER_BYTES) throw new Error('a membership record is shorter than its header');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const gid = readUint64(view, 0);
  const storedVersion = readUint64(view, 8);
  if (gid < 0 || storedVersion < 0) throw new Error('a membership record carries an unsafe integer');
  const count = view.getUint16(20, true);
  if (count === 0 || count > MAX_MEMBERS) throw new Error(`a membership record lists ${count} members`);
  const members: Member[] = [];
  let offset = HEADER_BYTES;
  for (let i = 0; i < count; i++) {
    if (offset + MEMBER_FIXED_BYTES > bytes.length) throw new Error(`membership member ${i} is truncated`);
    const hostLength = view.getUint16(offset + 6, true);
    const end = offset + MEMBER_FIXED_BYTES + hostLength;
    if (end > bytes.length) throw new Error(`membership member ${i} runs past the end`);
    const host = Buffer.from(bytes.subarray(offset + MEMBER_FIXED_BYTES, end)).toString('utf8');
    members.push({ id: view.getUint32(offset, true), port: view.getUint16(offset + 4, true), host });
    offset = end;
  }
  if (offset !== bytes.length) throw new Error(`a membership record has ${bytes.length - offset} trailing bytes`);
  if (new Set(members.map((member) => member.id)).size !== members.length) {
    throw new Error('a membership record lists a node twice');
  }
  return { gid, version: storedVersion - 1, members, nonce: view.getUint32(16, true) };
}
