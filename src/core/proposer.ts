/**
 * The proposer (PhxPaxos proposer.cpp). One value per instance, sticky until the instance is
 * decided; a ballot is reused across instances while no acceptor rejected it, which lets the
 * proposer skip phase 1 ("multi-Paxos leader"). The proposal id is never persisted on its own: at
 * start-up it resumes above the local acceptor's promise, which every ballot this node used passed
 * through first (a prepare leaves only after the local promise is durable).
 */
import { compareBallots, isNullBallot, NULL_BALLOT, type Ballot } from './ballot.js';
import type { GroupContext } from './group-context.js';
import type { AcceptMessage, AcceptReplyMessage, PrepareMessage, PrepareReplyMessage } from './messages.js';
import { VoteCounter } from './vote-counter.js';
import { assert } from '../util/assert.js';

export interface ProposerHost {
  /** Hand a message to this node's own acceptor, synchronously. */
  deliverToLocalAcceptor(message: PrepareMessage | AcceptMessage): void;
  /** A majority accepted `value` under `ballot` in the current instance: it is chosen. */
  onChosenByMajority(ballot: Ballot, value: Uint8Array): void;
}

export type ProposerPhase = 'idle' | 'preparing' | 'accepting';

/**
 * A round an acceptor rejected, still short of both a majority of grants and a majority of
 * rejections, fails this many retry delays after that rejection (156 ms with the default timing,
 * about one round trip of the simulator's slowest network) plus a random retry delay, instead of
 * at its phase timeout. It can now succeed only through members that have not answered: alive,
 * they answer within a round trip; down, they never do. With exactly a majority up (one of three
 * members down, two of five), one rejection used to leave the round waiting out the full timeout
 * (1 s for an accept, 2 s for a prepare, doubling up to 8 s), and two proposers duelling for an
 * instance (a master election after the master died) took seconds to settle (the nemesis suite:
 * writes stopped for 3.4 s after a kill of two of five nodes; simulator seed 312: 9.7 s).
 * Each round of an instance ended so waits twice as long as the last, up to the phase timeout:
 * the backoff the doubling timeouts gave a duel, and room for members slower than the first wait.
 */
export const REJECTED_ROUND_WAIT_RETRY_DELAYS = 4;

interface PhaseTimer {
  readonly at: number;
  readonly instanceId: number;
}

export class Proposer {
  private readonly context: GroupContext;
  private readonly host: ProposerHost;
  proposalId: number;
  private highestOtherProposalId = 0;
  /** The value being proposed in this instance (own or adopted); null when idle. */
  value: Uint8Array | null = null;
  private highestOtherPreAccepted: Ballot = NULL_BALLOT;
  phase: ProposerPhase = 'idle';
  canSkipPrepare = false;
  wasRejected = false;
  private readonly votes = new VoteCounter();
  private prepareTimeoutMs: number;
  private acceptTimeoutMs: number;
  /** How long the next rejected round waits for the members that have not answered (see above). */
  private rejectedRoundWaitMs: number;
  private timer: PhaseTimer | null = null;
  /** The ballot and value sent in accept messages in this instance, to assert one value per ballot. */
  private sentAccept: { ballot: Ballot; value: Uint8Array } | null = null;

  constructor(context: GroupContext, host: ProposerHost, promised: Ballot) {
    this.context = context;
    this.host = host;
    this.proposalId = promised.proposalId + 1;
    this.prepareTimeoutMs = context.config.timing.prepareTimeoutStartMs;
    this.acceptTimeoutMs = context.config.timing.acceptTimeoutStartMs;
    this.rejectedRoundWaitMs = this.firstRejectedRoundWaitMs();
  }

  get ballot(): Ballot {
    return { proposalId: this.proposalId, nodeId: this.context.nodeId };
  }

  get isProposing(): boolean {
    return this.phase !== 'idle';
  }

  /** True once any accept for this instance left this node: its value may be chosen. */
  get hasSentAccept(): boolean {
    return this.sentAccept !== null;
  }

  /** Start (or restart) proposing. The first value of an instance sticks until it is decided. */
  newValue(value: Uint8Array): void {
    if (this.value === null) this.value = value;
    const timing = this.context.config.timing;
    this.prepareTimeoutMs = timing.prepareTimeoutStartMs;
    this.acceptTimeoutMs = timing.acceptTimeoutStartMs;
    this.rejectedRoundWaitMs = this.firstRejectedRoundWaitMs();
    if (this.canSkipPrepare && !this.wasRejected) this.accept();
    else this.prepare(this.wasRejected);
  }

  /**
   * Finish an instance that holds an accepted value nobody learned: run phase 1 with a new ballot,
   * which adopts the highest accepted value, and propose `noop` only if no value was accepted by
   * the majority that answers.
   */
  completeInstance(noop: Uint8Array): void {
    if (this.value === null) this.value = noop;
    this.prepare(true);
  }

  prepare(newBallot: boolean): void {
    this.phase = 'preparing';
    this.canSkipPrepare = false;
    this.wasRejected = false;
    this.highestOtherPreAccepted = NULL_BALLOT;
    // A ballot that already carried an accept in this instance is never prepared again: the new
    // round could adopt another value, and one ballot must never name two values.
    const reusesAcceptedBallot = this.sentAccept !== null && this.sentAccept.ballot.proposalId === this.proposalId;
    if (newBallot || reusesAcceptedBallot) this.proposalId = Math.max(this.proposalId, this.highestOtherProposalId) + 1;
    this.votes.reset();
    this.armTimer(this.prepareTimeoutMs);
    this.prepareTimeoutMs = Math.min(this.prepareTimeoutMs * 2, this.context.config.timing.prepareTimeoutMaxMs);
    const message: PrepareMessage = {
      kind: 'prepare', from: this.context.nodeId, instanceId: this.context.instanceId, ballot: this.ballot,
    };
    // The local acceptor promises first; the others hear of this ballot only once that promise is
    // durable, so a restarted node can never reuse it.
    this.host.deliverToLocalAcceptor(message);
    this.context.broadcastToOthers(message);
  }

  onPrepareReply(message: PrepareReplyMessage): void {
    if (this.phase !== 'preparing' || !this.isOwnBallot(message.ballot)) return;
    if (message.rejectedBy === 0) {
      this.votes.grant(message.from);
      if (!isNullBallot(message.acceptedBallot) && message.acceptedValue !== null &&
          compareBallots(message.acceptedBallot, this.highestOtherPreAccepted) > 0) {
        this.highestOtherPreAccepted = message.acceptedBallot;
        this.value = message.acceptedValue;
      }
    } else {
      this.votes.reject(message.from);
      this.noteRejection(message.rejectedBy);
    }
    if (this.votes.grantedCount >= this.context.majority) {
      this.canSkipPrepare = true;
      this.accept();
    } else if (this.roundFailed()) {
      this.armRetry();
    } else if (message.rejectedBy !== 0) {
      this.shortenRejectedRound();
    }
  }

  onAcceptReply(message: AcceptReplyMessage): void {
    if (this.phase !== 'accepting' || !this.isOwnBallot(message.ballot)) return;
    if (message.rejectedBy === 0) this.votes.grant(message.from);
    else {
      this.votes.reject(message.from);
      this.noteRejection(message.rejectedBy);
    }
    if (this.votes.grantedCount >= this.context.majority) {
      const ballot = this.ballot;
      const chosen = this.sentAccept;
      assert(chosen !== null && compareBallots(chosen.ballot, ballot) === 0, 'accept majority without an accept sent');
      this.exitPhase();
      this.host.onChosenByMajority(ballot, chosen.value);
    } else if (this.roundFailed()) {
      this.armRetry();
    } else if (message.rejectedBy !== 0) {
      this.shortenRejectedRound();
    }
  }

  /** Replies that arrive just after the instance moved on still teach us about rejections. */
  onExpiredReply(message: PrepareReplyMessage | AcceptReplyMessage): void {
    if (message.rejectedBy !== 0 && this.isOwnBallot(message.ballot)) this.noteRejection(message.rejectedBy);
  }

  /** Called on every tick; runs the phase timer if it is due. */
  tick(nowMs: number): void {
    const timer = this.timer;
    if (timer === null || nowMs < timer.at) return;
    this.timer = null;
    if (timer.instanceId !== this.context.instanceId || this.phase === 'idle') return;
    this.prepare(this.wasRejected);
  }

  nextTimerAt(): number | undefined {
    return this.timer?.at;
  }

  /** Stop sending (commit timeout, or the instance was decided); the value stays sticky. */
  exitPhase(): void {
    this.phase = 'idle';
    this.timer = null;
  }

  /** After a failed execution the next proposal must run phase 1 again (PhxPaxos CancelSkipPrepare). */
  cancelSkipPrepare(): void {
    this.canSkipPrepare = false;
  }

  newInstance(): void {
    this.exitPhase();
    this.rejectedRoundWaitMs = this.firstRejectedRoundWaitMs();
    this.value = null;
    this.highestOtherProposalId = 0;
    this.highestOtherPreAccepted = NULL_BALLOT;
    this.sentAccept = null;
    this.votes.reset();
  }

  private accept(): void {
    const value = this.value;
    assert(value !== null, 'accept phase without a value');
    const ballot = this.ballot;
    if (this.sentAccept !== null && compareBallots(this.sentAccept.ballot, ballot) === 0) {
      assert(this.sentAccept.value === value, `two values for ballot ${ballot.proposalId}.${ballot.nodeId}`);
    }
    this.sentAccept = { ballot, value };
    this.phase = 'accepting';
    this.votes.reset();
    this.armTimer(this.acceptTimeoutMs);
    this.acceptTimeoutMs = Math.min(this.acceptTimeoutMs * 2, this.context.config.timing.acceptTimeoutMaxMs);
    const message: AcceptMessage = {
      kind: 'accept', from: this.context.nodeId, instanceId: this.context.instanceId, ballot, value,
      lastChecksum: this.context.lastChecksum, previousBallot: this.context.previousChosenBallot,
    };
    // Others first, the local acceptor last (PhxPaxos): the ballot is already durably promised here.
    this.context.broadcastToOthers(message);
    this.host.deliverToLocalAcceptor(message);
  }

  private noteRejection(promisedProposalId: number): void {
    this.wasRejected = true;
    if (promisedProposalId > this.highestOtherProposalId) this.highestOtherProposalId = promisedProposalId;
  }

  private roundFailed(): boolean {
    return this.votes.rejectedCount >= this.context.majority || this.votes.receivedCount >= this.context.members.length;
  }

  private firstRejectedRoundWaitMs(): number {
    return REJECTED_ROUND_WAIT_RETRY_DELAYS * this.context.config.timing.retryDelayMaxMs;
  }

  /** See REJECTED_ROUND_WAIT_RETRY_DELAYS: the round's timer moves in, never out. */
  private shortenRejectedRound(): void {
    const timing = this.context.config.timing;
    const at = this.context.nowMs + this.rejectedRoundWaitMs +
      this.context.randomBetween(timing.retryDelayMinMs, timing.retryDelayMaxMs);
    if (this.timer !== null && at >= this.timer.at) return;
    this.timer = { at, instanceId: this.context.instanceId };
    this.rejectedRoundWaitMs = Math.min(this.rejectedRoundWaitMs * 2,
      Math.max(timing.prepareTimeoutMaxMs, timing.acceptTimeoutMaxMs));
  }

  private armRetry(): void {
    const timing = this.context.config.timing;
    this.armTimer(this.context.randomBetween(timing.retryDelayMinMs, timing.retryDelayMaxMs));
  }

  private armTimer(delayMs: number): void {
    this.timer = { at: this.context.nowMs + delayMs, instanceId: this.context.instanceId };
  }

  private isOwnBallot(ballot: Ballot): boolean {
    return ballot.proposalId === this.proposalId && ballot.nodeId === this.context.nodeId;
  }
}
