/**
 * A bid for (or renewal of) a group's master lease, as agreed on the log (PhxPaxos MasterOperator):
 * who bids, the master version it saw (the instance of the last accepted bid, -1 for none), and the
 * lease it asks for, plus a random nonce. Layout: u32 node id | u64 version + 1 | u32 lease ms |
 * u32 nonce (little-endian).
 *
 * The nonce once made every bid's bytes unique, when a proposer recognised its value by its bytes:
 * a restarted node still catching up could propose the same bytes as a bid of an earlier life, see
 * that old bid chosen, take it for the new one, and believe it held a lease long superseded (the
 * simulator found this). A proposer now recognises its value by the proposal identity the core
 * wraps around it (core/proposal-identity.ts), whose incarnation differs between lives; the nonce
 * stays in the layout so that logs keep one format.
 */
import { readUint64, writeUint64 } from '../../util/uint64.js';

export interface MasterBid {
  readonly nodeId: number;
  readonly version: number;
  readonly leaseMs: number;
  readonly nonce: number;
}

const BID_BYTES = 20;

export function encodeMasterBid(bid: MasterBid): Uint8Array {
  const out = new Uint8Array(BID_BYTES);
  const view = new DataView(out.buffer);
  view.setUint32(0, bid.nodeId, true);
  writeUint64(view, 4, bid.version + 1);
  view.setUint32(12, bid.leaseMs, true);
  view.setUint32(16, bid.nonce >>> 0, true);
  return out;
}

/** Throws on anything `encodeMasterBid` cannot have written. */
export function decodeMasterBid(payload: Uint8Array): MasterBid {
  if (payload.length !== BID_BYTES) throw new Error(`a master bid has ${BID_BYTES} bytes, not ${payload.length}`);
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const stored = readUint64(view, 4);
  if (stored < 0) throw new Error('a master bid carries a version that is not a safe integer');
  return {
    nodeId: view.getUint32(0, true), version: stored - 1, leaseMs: view.getUint32(12, true),
    nonce: view.getUint32(16, true),
  };
}

/** What each node persists of the master state (PhxPaxos MasterVariables), the same layout. */
export const encodeMasterVariables = encodeMasterBid;
export const decodeMasterVariables = decodeMasterBid;
