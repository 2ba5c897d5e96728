/**
 * A ballot is (proposalId, nodeId), compared lexicographically. Node ids are unique in a cluster,
 * so two proposers never share a ballot. proposalId 0 is the null ballot: "nothing promised or
 * accepted yet".
 */
export interface Ballot {
  readonly proposalId: number;
  readonly nodeId: number;
}

export const NULL_BALLOT: Ballot = Object.freeze({ proposalId: 0, nodeId: 0 });

export function compareBallots(a: Ballot, b: Ballot): number {
  if (a.proposalId !== b.proposalId) return a.proposalId < b.proposalId ? -1 : 1;
  if (a.nodeId !== b.nodeId) return a.nodeId < b.nodeId ? -1 : 1;
  return 0;
}

export function ballotsEqual(a: Ballot, b: Ballot): boolean {
  return a.proposalId === b.proposalId && a.nodeId === b.nodeId;
}

export function isNullBallot(ballot: Ballot): boolean {
  return ballot.proposalId === 0;
}

export function maxBallot(a: Ballot, b: Ballot): Ballot {
  return compareBallots(a, b) >= 0 ? a : b;
}

export function formatBallot(ballot: Ballot): string {
  return `${ballot.proposalId}.${ballot.nodeId}`;
}
