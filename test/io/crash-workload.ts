// What the crash test's child writes, derived from (group, instance, ballot) so the parent can
// recompute every byte it expects to find. Shared by test/io/crash-child.ts and crash.test.ts.
import type { AcceptorRecord } from '../../src/core/ready.js';

/** Groups the child writes to. */
export const GROUPS = 4;
/** Small segments, so that the log rolls over many times while the child is being killed. */
export const SEGMENT_BYTES = 64 * 1024;
export const MAX_VALUE_BYTES = 4096;
export const NODE_ID = 1;

/** A 32-bit mix of the inputs (murmur3's finaliser over a running hash). */
function mix(...values: number[]): number {
  let h = 0x9e3779b9;
  for (const value of values) {
    h = Math.imul(h ^ (value >>> 0), 0x85ebca6b);
    h = Math.imul(h ^ Math.floor(value / 0x1_0000_0000), 0xc2b2ae35);
    h ^= h >>> 16;
  }
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** The value written for (group, instance) at `proposalId`: 0–4 KiB of derived bytes. */
export function expectedValue(group: number, instanceId: number, proposalId: number): Uint8Array {
  const seed = mix(group, instanceId, proposalId);
  const value = new Uint8Array(seed % (MAX_VALUE_BYTES + 1));
  let state = seed | 1;
  for (let i = 0; i < value.length; i++) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    value[i] = state & 0xff;
  }
  return value;
}

export function expectedChecksum(group: number, instanceId: number, proposalId: number): number {
  return mix(proposalId, instanceId, group, 7);
}

export function workloadRecord(group: number, instanceId: number, proposalId: number): AcceptorRecord {
  const ballot = { proposalId, nodeId: NODE_ID };
  return {
    instanceId, promised: ballot, accepted: ballot,
    value: expectedValue(group, instanceId, proposalId),
    checksum: expectedChecksum(group, instanceId, proposalId),
  };
}

/** Why `record` is not the intact record for (group, instance) at some ballot ≥ `minProposalId`, or null. */
export function recordProblem(group: number, instanceId: number, minProposalId: number,
  record: AcceptorRecord | undefined): string | null {
  const where = `group ${group} instance ${instanceId}`;
  if (record === undefined) return `${where}: acknowledged at ballot ${minProposalId} but missing`;
  const proposalId = record.accepted.proposalId;
  if (proposalId < minProposalId) return `${where}: ballot ${proposalId} below the acknowledged ${minProposalId}`;
  const expected = workloadRecord(group, instanceId, proposalId);
  if (record.instanceId !== instanceId) return `${where}: read back instance ${record.instanceId}`;
  if (record.promised.proposalId !== proposalId || record.promised.nodeId !== NODE_ID ||
    record.accepted.nodeId !== NODE_ID) {
    return `${where}: ballots ${JSON.stringify([record.promised, record.accepted])} are not the written ones`;
  }
  if (record.checksum !== expected.checksum) return `${where}: checksum ${record.checksum} != ${expected.checksum}`;
  if (Buffer.compare(Buffer.from(record.value), Buffer.from(expected.value)) !== 0) {
    return `${where} ballot ${proposalId}: value of ${record.value.length} bytes differs from the ` +
      `${expected.value.length} written`;
  }
  return null;
}
