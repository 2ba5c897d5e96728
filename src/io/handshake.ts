/**
 * The handshake that opens every transport connection, and the checks each side makes.
 *
 * The dialer (always the node with the lower id) sends a handshake frame (kind 0, group 0); the
 * acceptor answers with a handshake-ack frame (kind 1, group 0). Both bodies are
 *
 *   u32 nodeId (the sender) | u32 targetNodeId (who the sender believes it is talking to)
 *   | u8 clusterIdLength | clusterId (UTF-8, at most 128 bytes)
 *
 * and the protocol version is the frame header's. Naming the target lets a node that was reached
 * at a stale address (another node now listens there) refuse instead of talking to the wrong peer;
 * the cluster id is PhxPaxos's gid check, so two clusters sharing hosts never mix messages.
 */
import { bytesEqual, fromUtf8, utf8 } from '../util/bytes.js';
import { WireError } from './wire-error.js';

export const MAX_CLUSTER_ID_BYTES = 128;
const FIXED_BYTES = 9;
/** The largest handshake frame length: what a connection accepts before it is authenticated. */
export const HANDSHAKE_MAX_FRAME_BYTES = 256;

export interface Handshake {
  readonly nodeId: number;
  readonly targetNodeId: number;
  /** The cluster id's UTF-8 bytes (compared as bytes; decoded only for log lines). */
  readonly clusterId: Uint8Array;
}

export function encodeHandshake(handshake: Handshake): Uint8Array {
  const body = new Uint8Array(FIXED_BYTES + handshake.clusterId.length);
  const view = new DataView(body.buffer);
  view.setUint32(0, handshake.nodeId, true);
  view.setUint32(4, handshake.targetNodeId, true);
  view.setUint8(8, handshake.clusterId.length);
  body.set(handshake.clusterId, FIXED_BYTES);
  return body;
}

/** Throws a 'malformed' `WireError` for a body that is not exactly a handshake. */
export function decodeHandshake(body: Uint8Array): Handshake {
  if (body.length < FIXED_BYTES) throw new WireError('malformed', `handshake body is ${body.length} bytes`);
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const clusterIdLength = view.getUint8(8);
  if (clusterIdLength > MAX_CLUSTER_ID_BYTES || body.length !== FIXED_BYTES + clusterIdLength) {
    throw new WireError('malformed', `handshake cluster id of ${clusterIdLength} bytes in a ${body.length}-byte body`);
  }
  return {
    nodeId: view.getUint32(0, true),
    targetNodeId: view.getUint32(4, true),
    clusterId: body.slice(FIXED_BYTES),
  };
}

/** What a node knows about itself when it checks a handshake. */
export interface LocalIdentity {
  readonly nodeId: number;
  readonly clusterId: Uint8Array;
}

/** Why the acceptor refuses a dialer's handshake, or null when it is acceptable. */
export function refuseHandshake(local: LocalIdentity, hello: Handshake, isKnownPeer: (nodeId: number) => boolean):
  string | null {
  if (!bytesEqual(hello.clusterId, local.clusterId)) return `cluster id '${printable(hello.clusterId)}' is not ours`;
  if (hello.nodeId === local.nodeId) return 'the dialer claims our own node id';
  if (!isKnownPeer(hello.nodeId)) return `node ${hello.nodeId} is not a known peer`;
  if (hello.nodeId > local.nodeId) return `node ${hello.nodeId} has a higher id than ours and must not dial us`;
  if (hello.targetNodeId !== local.nodeId) return `the dialer meant to reach node ${hello.targetNodeId}`;
  return null;
}

/** Why the dialer refuses the acceptor's acknowledgement, or null when it is acceptable. */
export function refuseHandshakeAck(local: LocalIdentity, expectedPeer: number, ack: Handshake): string | null {
  if (!bytesEqual(ack.clusterId, local.clusterId)) return `cluster id '${printable(ack.clusterId)}' is not ours`;
  if (ack.nodeId !== expectedPeer) return `node ${ack.nodeId} answered where node ${expectedPeer} was expected`;
  if (ack.targetNodeId !== local.nodeId) return `the acceptor believes it talks to node ${ack.targetNodeId}`;
  return null;
}

export function clusterIdBytes(clusterId: string): Uint8Array {
  return utf8(clusterId);
}

/** A cluster id from the network, made safe for a log line. */
function printable(bytes: Uint8Array): string {
  return fromUtf8(bytes).replace(/[^\x20-\x7e]/g, '?');
}
