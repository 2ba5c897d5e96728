/**
 * The proposals of one group waiting for the core, which decides one instance at a time. Bounded
 * in count and in bytes: a full queue rejects at once with OVERLOADED instead of growing. Whatever
 * waits when the core becomes free is taken together as the next batch (natural batching), up to
 * a count and a byte limit. A batch that loses its instance to another value is retried, at most
 * three attempts in all (PhxPaxos Committer), before its proposals fail with CONFLICT.
 */
import { PaxosError } from '../errors.js';

export const MAX_PROPOSE_ATTEMPTS = 3;
const BATCH_ENTRY_OVERHEAD_BYTES = 4;

export interface ProposeSuccess {
  readonly instanceId: number;
  /** The proposal's position in the batch its instance carried (0 when it went alone). */
  readonly batchIndex: number;
  readonly result: unknown;
}

export interface PendingProposal {
  /** The framed value (state machine id and payload). */
  readonly value: Uint8Array;
  readonly context: unknown;
  /** Absolute clock reading after which the caller gets TIMEOUT. */
  readonly deadline: number;
  attempts: number;
  /**
   * A value for one of the library's own state machines (a master bid, a membership change) is
   * never batched: start-up replays from the user state machines' checkpoints, which could
   * otherwise cover an instance whose system entry was not yet applied durably.
   */
  readonly alone?: boolean;
  /** Set once the caller has its answer (a timeout or an abort can come before the outcome). */
  settled: boolean;
  readonly resolve: (success: ProposeSuccess) => void;
  readonly reject: (error: PaxosError) => void;
}

export interface QueueLimits {
  readonly maxCount: number;
  readonly maxBytes: number;
}

export interface BatchLimits {
  readonly maxCount: number;
  readonly maxBytes: number;
}

export class ProposalQueue {
  private waiting: PendingProposal[] = [];
  private waitingBytes = 0;
  private readonly limits: QueueLimits;

  constructor(limits: QueueLimits) {
    this.limits = limits;
  }

  get length(): number {
    return this.waiting.length;
  }

  get bytes(): number {
    return this.waitingBytes;
  }

  /** Returns a reason when the queue cannot take the proposal, undefined when it did. */
  push(proposal: PendingProposal): string | undefined {
    if (this.waiting.length >= this.limits.maxCount) return `${this.waiting.length} proposals are waiting`;
    if (this.waitingBytes + proposal.value.length > this.limits.maxBytes && this.waiting.length > 0) {
      return `${this.waitingBytes} bytes of proposals are waiting`;
    }
    this.waiting.push(proposal);
    this.waitingBytes += proposal.value.length;
    return undefined;
  }

  /** Retried proposals go first, in their order: they have waited longest. Limits do not apply. */
  pushFront(proposals: readonly PendingProposal[]): void {
    if (proposals.length === 0) return;
    this.waiting = [...proposals, ...this.waiting];
    for (const proposal of proposals) this.waitingBytes += proposal.value.length;
  }

  /**
   * Take the next batch in arrival order: as many proposals as fit the limits, and always at
   * least one (a value larger than the byte limit goes alone).
   */
  takeBatch(limits: BatchLimits): PendingProposal[] {
    let count = 0;
    let bytes = 0;
    let taken = 0;
    while (count < this.waiting.length && count < limits.maxCount) {
      const next = this.waiting[count] as PendingProposal;
      if (count > 0 && (next.alone === true || (this.waiting[0] as PendingProposal).alone === true)) break;
      const size = next.value.length;
      // Each entry of a batch also carries its length.
      if (count > 0 && bytes + size + BATCH_ENTRY_OVERHEAD_BYTES > limits.maxBytes) break;
      bytes += size + BATCH_ENTRY_OVERHEAD_BYTES;
      taken += size;
      count++;
    }
    this.waitingBytes -= taken;
    return this.waiting.splice(0, count);
  }

  /** Remove one proposal (its caller gave up); returns whether it was waiting. */
  remove(proposal: PendingProposal): boolean {
    const index = this.waiting.indexOf(proposal);
    if (index < 0) return false;
    this.waiting.splice(index, 1);
    this.waitingBytes -= proposal.value.length;
    return true;
  }

  /** Fail every waiting proposal whose deadline passed; none of them was ever sent. */
  expire(nowMs: number): void {
    if (this.waiting.every((proposal) => proposal.deadline > nowMs)) return;
    const kept: PendingProposal[] = [];
    for (const proposal of this.waiting) {
      if (proposal.deadline > nowMs) {
        kept.push(proposal);
        continue;
      }
      this.waitingBytes -= proposal.value.length;
      settle(proposal, new PaxosError('TIMEOUT', 'the proposal timed out before it could be proposed',
        { mayBeChosen: false }));
    }
    this.waiting = kept;
  }

  earliestDeadline(): number | undefined {
    let earliest: number | undefined;
    for (const proposal of this.waiting) {
      if (earliest === undefined || proposal.deadline < earliest) earliest = proposal.deadline;
    }
    return earliest;
  }

  rejectAll(error: () => PaxosError): void {
    const all = this.waiting;
    this.waiting = [];
    this.waitingBytes = 0;
    for (const proposal of all) settle(proposal, error());
  }
}

/** Give a proposal its one answer; later answers are ignored. */
export function settle(proposal: PendingProposal, outcome: PaxosError | ProposeSuccess): void {
  if (proposal.settled) return;
  proposal.settled = true;
  if (outcome instanceof PaxosError) proposal.reject(outcome);
  else proposal.resolve(outcome);
}
