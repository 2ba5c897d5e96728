/**
 * The proposals of one group waiting for the core, which decides one at a time. Bounded: a full
 * queue rejects at once with OVERLOADED. A proposal that loses its instance to another value is
 * retried, at most three attempts in all (PhxPaxos Committer), before it fails with CONFLICT.
 */
import { PaxosError } from '../errors.js';

export const MAX_PROPOSE_ATTEMPTS = 3;

export interface ProposeSuccess {
  readonly instanceId: number;
  readonly result: unknown;
}

export interface PendingProposal {
  readonly value: Uint8Array;
  readonly context: unknown;
  /** Absolute clock reading after which the caller gets TIMEOUT. */
  readonly deadline: number;
  attempts: number;
  readonly resolve: (success: ProposeSuccess) => void;
  readonly reject: (error: PaxosError) => void;
}

export class ProposalQueue {
  private readonly waiting: PendingProposal[] = [];
  private readonly capacity: number;

  constructor(capacity: number) {
    this.capacity = capacity;
  }

  get length(): number {
    return this.waiting.length;
  }

  /** Returns false when the queue is full. */
  push(proposal: PendingProposal): boolean {
    if (this.waiting.length >= this.capacity) return false;
    this.waiting.push(proposal);
    return true;
  }

  /** A retried proposal goes first: it has waited longest. */
  pushFront(proposal: PendingProposal): void {
    this.waiting.unshift(proposal);
  }

  shift(): PendingProposal | undefined {
    return this.waiting.shift();
  }

  /** Fail every waiting proposal whose deadline passed; none of them was ever sent. */
  expire(nowMs: number): void {
    for (let i = this.waiting.length - 1; i >= 0; i--) {
      const proposal = this.waiting[i] as PendingProposal;
      if (proposal.deadline > nowMs) continue;
      this.waiting.splice(i, 1);
      const message = 'the proposal timed out before it could be proposed';
      proposal.reject(new PaxosError('TIMEOUT', message, { mayBeChosen: false }));
    }
  }

  earliestDeadline(): number | undefined {
    let earliest: number | undefined;
    for (const proposal of this.waiting) {
      if (earliest === undefined || proposal.deadline < earliest) earliest = proposal.deadline;
    }
    return earliest;
  }

  rejectAll(error: () => PaxosError): void {
    for (const proposal of this.waiting.splice(0)) proposal.reject(error());
  }
}
