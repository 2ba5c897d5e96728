/**
 * PhxPaxos GetInstanceValue: what a chosen instance carried, with the proposal's identity and the
 * state machine id stripped and batches expanded into their entries.
 */
import { proposalBody } from '../core/proposal-identity.js';
import { decodeBatch } from '../runtime/batch-value.js';
import { BATCH_STATE_MACHINE_ID, unframeValue } from '../runtime/value-frame.js';

export interface InstanceValue {
  /** The state machine the value was addressed to (0: none, e.g. a no-op). */
  readonly stateMachineId: number;
  readonly value: Uint8Array;
}

export function expandInstanceValue(chosen: Uint8Array): InstanceValue[] {
  const { stateMachineId, payload } = unframeValue(proposalBody(chosen));
  if (stateMachineId !== BATCH_STATE_MACHINE_ID) return [{ stateMachineId, value: payload }];
  return decodeBatch(payload).map((entry) => {
    const framed = unframeValue(entry);
    return { stateMachineId: framed.stateMachineId, value: framed.payload };
  });
}
