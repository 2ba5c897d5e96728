/**
 * The bytes the group agrees on: a 4-byte little-endian state machine id, then the payload
 * (PhxPaxos PackPaxosValue). Id 0 is "no state machine" and executes as a no-op; ids from
 * 100000000 up are reserved for the library's own state machines. The core wraps each proposal in
 * an envelope with another reserved id (core/proposal-identity.ts) around this frame.
 */
import { PROPOSAL_ENVELOPE_ID } from '../core/proposal-identity.js';
import { readUint32LE } from '../util/bytes.js';

export const NO_STATE_MACHINE_ID = 0;
export const SYSTEM_STATE_MACHINE_ID = 100_000_000;
export const MASTER_STATE_MACHINE_ID = 100_000_001;
export const BATCH_STATE_MACHINE_ID = 100_000_002;
export { PROPOSAL_ENVELOPE_ID };
export const FIRST_RESERVED_STATE_MACHINE_ID = 100_000_000;

export interface FramedValue {
  readonly stateMachineId: number;
  readonly payload: Uint8Array;
}

export function isUserStateMachineId(id: number): boolean {
  return Number.isInteger(id) && id >= 1 && id < FIRST_RESERVED_STATE_MACHINE_ID;
}

export function frameValue(stateMachineId: number, payload: Uint8Array): Uint8Array {
  const framed = new Uint8Array(4 + payload.length);
  new DataView(framed.buffer).setUint32(0, stateMachineId, true);
  framed.set(payload, 4);
  return framed;
}

/** Values shorter than the id are agreed on but executed as no-ops, as in PhxPaxos. */
export function unframeValue(value: Uint8Array): FramedValue {
  if (value.length < 4) return { stateMachineId: NO_STATE_MACHINE_ID, payload: value };
  return { stateMachineId: readUint32LE(value, 0), payload: value.subarray(4) };
}
