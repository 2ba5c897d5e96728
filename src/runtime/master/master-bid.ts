/**
 * A bid for (or renewal of) a group's master lease, as agreed on the log (PhxPaxos MasterOperator):
 * who bids, the master version it saw (the instance of the last accepted bid, -1 for none), and the
 * lease it asks for. Layout: u32 node id | u64 version + 1 | u32 lease ms (little-endian).
 */
import { readUint64, writeUint64 } from '../../util/uint64.js';

export interface MasterBid {
  readonly nodeId: number;
  readonly version: number;
  readonly leaseMs: number;
}

const BID_BYTES = 16;

export function encodeMasterBid(bid: MasterBid): Uint8Array {
  const out = new Uint8Array(BID_BYTES);
  const view = new DataView(out.buffer);
  view.setUint32(0, bid.nodeId, true);
  writeUint64(view, 4, bid.version + 1);
  view.setUint32(12, bid.leaseMs, true);
  return out;
}

/** Throws on anything `encodeMasterBid` cannot have written. */
export function decodeMasterBid(payload: Uint8Array): MasterBid {
  if (payload.length !== BID_BYTES) throw new Error(`a master bid has ${BID_BYTES} bytes, not ${payload.length}`);
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const stored = readUint64(view, 4);
  if (stored < 0) throw new Error('a master bid carries a version that is not a safe integer');
  return { nodeId: view.getUint32(0, true), version: stored - 1, leaseMs: view.getUint32(12, true) };
}

/** What each node persists of the master state (PhxPaxos MasterVariables), the same layout. */
export const encodeMasterVariables = encodeMasterBid;
export const decodeMasterVariables = decodeMasterBid;
