/**
 * Group identities on the wire. Each Paxos group of a cluster gets a random identity (its gid,
 * PhxPaxos's) when its membership is first changed through the log. Nodes announce the gids they
 * know to every peer, once a connection is authenticated and whenever one becomes known, in a
 * connection frame of their own (kind 2, the group in the header, the gid as the body). A Paxos
 * message for a group whose gid on both sides is known and differs comes from another cluster that
 * happens to share the cluster name and node ids: it is dropped.
 */
import { readUint64, writeUint64 } from '../util/uint64.js';
import { WireError } from './wire-error.js';

export const FRAME_KIND_GROUP_IDENTITY = 2;
const BODY_BYTES = 8;

export function encodeGroupIdentity(gid: number): Uint8Array {
  const body = new Uint8Array(BODY_BYTES);
  writeUint64(new DataView(body.buffer), 0, gid);
  return body;
}

/** Throws a WireError unless the body is exactly one safe, non-zero gid. */
export function decodeGroupIdentity(body: Uint8Array): number {
  if (body.length !== BODY_BYTES) throw new WireError('malformed', `a group identity has ${BODY_BYTES} bytes`);
  const gid = readUint64(new DataView(body.buffer, body.byteOffset, body.byteLength), 0);
  if (gid <= 0) throw new WireError('malformed', 'a group identity must be a positive safe integer');
  return gid;
}
