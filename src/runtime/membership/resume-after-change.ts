/**
 * Start-up resumes at the newest logged instance and decides it again (PhxPaxos does the same). If
 * that instance is a membership change this node already executed (its membership version says so),
 * deciding it again would count votes over the *new* members for the instance that was decided
 * under the old ones; with a replaced member their majorities need not intersect, and a proposer
 * could choose another value there. The change was alone in its instance and is applied durably,
 * so the node resumes after it instead, keeping its promise, as after a checkpoint.
 */
import { NULL_BALLOT } from '../../core/ballot.js';
import type { RestoredGroupState } from '../../core/group-core.js';
import { EMPTY_BYTES } from '../../util/bytes.js';
import type { LogStore } from '../interfaces.js';

export async function resumeAfterMembershipChange(
  store: LogStore, groupIndex: number, restored: RestoredGroupState, membershipVersion: number,
): Promise<RestoredGroupState> {
  if (membershipVersion < 0 || membershipVersion !== restored.nowInstanceId) return restored;
  const record = await store.get(groupIndex, membershipVersion);
  return {
    ...restored,
    nowInstanceId: membershipVersion + 1,
    acceptor: { promised: restored.acceptor.promised, accepted: NULL_BALLOT, value: EMPTY_BYTES, checksum: 0 },
    lastChecksum: record?.checksum ?? 0,
  };
}
