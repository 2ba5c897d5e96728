/**
 * One Paxos group on one node: proposer, acceptor and learner around a single current instance,
 * pure and synchronous. Inputs: `tick`, `step`, `propose`, and the driver's reports (`onExecuted`,
 * `onLogRead`, `halt`). Output: a `Ready` (see ready.ts for the order a driver must follow).
 *
 * An instance is decided here when it is learned (by a chosen notification that matches the local
 * acceptor, by an accept for the next instance that names the local accepted ballot as the chosen
 * one, by the proposer's own accept majority, or from a teacher's stream), then executed
 * by the driver; only after a successful execution does the node move to the next instance. A
 * failed execution is retried, never skipped.
 */
import { Acceptor, type AcceptorState } from './acceptor.js';
import { ballotsEqual, formatBallot, isNullBallot, NULL_BALLOT, type Ballot } from './ballot.js';
import type { GroupCoreConfig } from './config.js';
import { FUTURE_WINDOW_BYTES, FutureWindow } from './future-window.js';
import { GroupContext } from './group-context.js';
import { LearnAhead } from './learn-ahead.js';
import { learnAckBytes, Learner } from './learner.js';
import type { AcceptMessage, ChosenMessage, LearnValueMessage, PaxosMessage, PrepareMessage } from './messages.js';
import { isProposal, proposalBody, wrapProposal, type ProposalIdentity } from './proposal-identity.js';
import { Proposer } from './proposer.js';
import type { AcceptorRecord, ChosenValue, HaltReason, ProposalOutcome, Ready } from './ready.js';
import { Teacher } from './teacher.js';
import { assert, assertNever } from '../util/assert.js';
import { bytesEqual, EMPTY_BYTES } from '../util/bytes.js';

/** What a node knows about a group when it starts (see runtime/restore.ts). */
export interface RestoredGroupState {
  readonly nowInstanceId: number;
  /** The promise carries over from the newest record; accepted fields are for `nowInstanceId` only. */
  readonly acceptor: AcceptorState;
  /** Checksum chain up to nowInstanceId - 1 (0: unknown). */
  readonly lastChecksum: number;
  readonly minChosenInstanceId: number;
}

export type ProposeResult = 'accepted' | 'busy' | 'halted' | 'notMember';

export type ExecutionReport =
  | { readonly ok: true; readonly result: unknown }
  | { readonly ok: false; readonly error: unknown };

interface Commit {
  readonly token: number;
  /** Who this proposal is: the only test of whether a chosen value is this commit's. */
  readonly identity: ProposalIdentity;
  /** The value as proposed: the caller's bytes in an envelope carrying `identity`. */
  readonly value: Uint8Array;
  readonly timeoutAt: number;
  /** The instance this proposal is being decided in; null until the proposer started on it. */
  instanceId: number | null;
}

export interface GroupStatus {
  readonly groupIndex: number;
  readonly nodeId: number;
  readonly nowInstanceId: number;
  /** The lowest instance this node still holds in its log (raised by log cleaning). */
  readonly minChosenInstanceId: number;
  readonly proposerPhase: string;
  readonly proposalId: number;
  readonly promised: string;
  readonly isLearning: boolean;
  readonly highestSeenInstanceId: number;
  readonly futureMessages: number;
  readonly executing: boolean;
  readonly halted: HaltReason | null;
}

export class GroupCore {
  private readonly context: GroupContext;
  private readonly acceptor: Acceptor;
  private readonly proposer: Proposer;
  private readonly learner: Learner;
  private readonly teacher: Teacher;
  private readonly future: FutureWindow;
  private readonly learnAhead: LearnAhead;
  private commit: Commit | null = null;
  /** The current instance's chosen value, once learned, until it is executed. */
  private learned: ChosenValue | null = null;
  private executing = false;
  /**
   * Values written ahead (learn-ahead) for the instances after the one executing, already handed to
   * the driver to execute after it, in order (see handOverAhead).
   */
  private handedOver: ChosenValue[] = [];
  /** The first of `handedOver` not yet reached (an index: shifting a long array per instance costs). */
  private handedHead = 0;
  /** Bytes of the values handed over and not yet reached (see handOverAhead's bound). */
  private handedBytes = 0;
  private executeRetryAt: number | null = null;
  private executeRetryDelayMs: number;
  /** The value chosen at instanceId - 1, kept for the one-behind shortcut. */
  private previous: ChosenValue | null = null;
  private halted: HaltReason | null = null;
  private readyInFlight = false;
  /** When an undecided instance with a locally accepted value gets finished with a no-op. */
  private stallAt: number | null = null;
  /** This life's proposals so far: the sequence part of each proposal's identity. */
  private proposalSequence = 0;
  /** The promise this life began with: part of each proposal's identity (see proposal-identity.ts). */
  private readonly startPromise: number;

  constructor(config: GroupCoreConfig, restored: RestoredGroupState, nowMs: number) {
    assert(config.members.length > 0, 'a group needs at least one member');
    assert(Number.isSafeInteger(restored.nowInstanceId) && restored.nowInstanceId >= 0, 'bad start instance');
    this.context = new GroupContext(config, restored.nowInstanceId, restored.lastChecksum);
    this.context.nowMs = nowMs;
    const acceptorState = config.faults?.forgetPromise
      ? { ...restored.acceptor, promised: restored.acceptor.accepted }
      : restored.acceptor;
    this.acceptor = new Acceptor(this.context, acceptorState);
    this.proposer = new Proposer(this.context, {
      deliverToLocalAcceptor: (message) => this.deliverToLocalAcceptor(message),
      onChosenByMajority: (ballot, value) => this.onChosenByMajority(ballot, value),
    }, restored.acceptor.promised);
    this.learner = new Learner(this.context);
    this.teacher = new Teacher(this.context, restored.minChosenInstanceId);
    // Room for four teaching budgets of values (see FUTURE_WINDOW_BYTES), however large the budget.
    this.future = new FutureWindow(config.timing.futureWindowInstances, config.timing.futureWindowInstances * 4,
      Math.max(FUTURE_WINDOW_BYTES, 4 * config.timing.teachBytesBeyondAck));
    this.learnAhead = new LearnAhead(this.context);
    this.executeRetryDelayMs = config.timing.executeRetryStartMs;
    this.startPromise = restored.acceptor.promised.proposalId;
  }

  get nowInstanceId(): number {
    return this.context.instanceId;
  }

  get isHalted(): boolean {
    return this.halted !== null;
  }

  /** Advance the node's clock; fires whatever timers are due. */
  tick(nowMs: number): void {
    this.context.nowMs = Math.max(this.context.nowMs, nowMs);
    if (this.halted !== null) return;
    const now = this.context.nowMs;
    const commit = this.commit;
    if (commit !== null && now >= commit.timeoutAt && !this.isExecutingCommit()) {
      this.commit = null;
      if (commit.instanceId !== null) this.proposer.exitPhase();
      this.context.outbox.result({ token: commit.token, outcome: { kind: 'timeout', mayBeChosen: commit.instanceId !== null } });
    }
    this.proposer.tick(now);
    this.learner.tick(now);
    this.teacher.tick(now);
    if (this.executeRetryAt !== null && now >= this.executeRetryAt) {
      this.executeRetryAt = null;
      this.emitExecute();
    }
    if (this.stallAt !== null && now >= this.stallAt) {
      this.stallAt = null;
      if (this.isStalled()) this.proposer.completeInstance(EMPTY_BYTES);
    }
    this.afterInput();
  }

  /** The earliest clock reading at which `tick` has work to do. */
  nextTimerAt(): number | undefined {
    if (this.halted !== null) return undefined;
    // Asked for every group at each turn that changed anything: no array of candidates.
    let at = this.learner.nextTimerAt();
    if (this.commit !== null && !this.isExecutingCommit()) at = earlier(at, this.commit.timeoutAt);
    at = earlier(at, this.proposer.nextTimerAt());
    at = earlier(at, this.teacher.nextTimerAt());
    at = earlier(at, this.executeRetryAt);
    return earlier(at, this.stallAt);
  }

  /**
   * Offer a value for the next instance this node can decide. The outcome arrives later as a
   * ProposalResult with `token`. One proposal at a time per group: the runtime queues and batches.
   */
  propose(value: Uint8Array, token: number, timeoutMs: number): ProposeResult {
    if (this.halted !== null) return 'halted';
    if (!this.context.isMember(this.context.nodeId)) return 'notMember';
    if (this.commit !== null) return 'busy';
    const identity: ProposalIdentity = {
      nodeId: this.context.nodeId, incarnation: this.context.config.incarnation, startPromise: this.startPromise,
      sequence: ++this.proposalSequence,
    };
    const timeoutAt = this.context.nowMs + timeoutMs;
    this.commit = { token, identity, value: wrapProposal(identity, value), timeoutAt, instanceId: null };
    this.afterInput();
    return 'accepted';
  }

  /**
   * The group's membership changed at the instance being executed: from the next instance on,
   * majorities are counted over `members`, and only they vote. Promises were gathered from the old
   * set, whose majorities need not intersect the new one's, so the proposer prepares afresh.
   */
  setMembers(members: readonly number[]): void {
    assert(members.length > 0, 'a group needs at least one member');
    assert(new Set(members).size === members.length, `duplicate members: ${members.join(',')}`);
    this.context.setMembers(members);
    this.proposer.cancelSkipPrepare();
  }

  get members(): readonly number[] {
    return this.context.members;
  }

  /** The lowest instance this node still holds (below it, the log was cleaned behind a checkpoint). */
  get minChosenInstanceId(): number {
    return this.teacher.minChosenInstanceId;
  }

  /**
   * The log was cleaned below `instanceId` (the runtime deleted those records durably): from now on
   * a learner asking below it is told the new low-water mark (sendNowInstanceId), which is what sends
   * it to a checkpoint instead of a teaching session the log can no longer feed. Never moves down.
   */
  setMinChosenInstanceId(instanceId: number): void {
    assert(Number.isSafeInteger(instanceId) && instanceId <= this.nowInstanceId,
      `min chosen instance ${instanceId} is not at or below the current instance ${this.nowInstanceId}`);
    if (instanceId > this.teacher.minChosenInstanceId) this.teacher.minChosenInstanceId = instanceId;
  }

  get hasPendingProposal(): boolean {
    return this.commit !== null;
  }

  step(message: PaxosMessage): void {
    if (this.halted !== null) return;
    this.dispatch(message);
    this.afterInput();
  }

  /** The driver executed the value chosen at `instanceId` (successfully or not). */
  onExecuted(instanceId: number, report: ExecutionReport): void {
    if (this.halted !== null) return;
    const learned = this.learned;
    assert(learned !== null && this.executing && learned.instanceId === instanceId,
      `execution report for ${instanceId} while executing ${learned?.instanceId ?? 'nothing'}`);
    this.executing = false;
    if (!report.ok) {
      this.onExecuteFailed(learned, report.error);
    } else {
      this.finishCommit(learned, { kind: 'chosen', instanceId, result: report.result });
      this.executeRetryDelayMs = this.context.config.timing.executeRetryStartMs;
      this.moveToNextInstance(learned);
    }
    this.afterInput();
  }

  /** A log read requested in `Ready.reads` completed. */
  onLogRead(instanceId: number, record: AcceptorRecord | undefined): void {
    if (this.halted !== null) return;
    this.teacher.onLogRead(instanceId, record);
    this.afterInput();
  }

  /**
   * Reads requested in `Ready.reads` that the driver did not make (over `readBytesLimit`), in order,
   * reported before the reads it made. The teacher asks for them again as those values come back
   * (see Teacher.onLogReadsDeferred), so nothing else needs doing here.
   */
  onLogReadsDeferred(instanceIds: readonly number[]): void {
    if (this.halted !== null) return;
    this.teacher.onLogReadsDeferred(instanceIds);
  }

  /** Stop the group for good: a storage failure, or a divergence found by the core itself. */
  halt(reason: HaltReason): void {
    if (this.halted !== null) return;
    this.halted = reason;
    // Nothing produced since the last Ready may act any more: its records might be the ones that
    // could not be written, and its messages might depend on them.
    this.context.outbox.discardActions();
    this.context.outbox.halt(reason);
    const commit = this.commit;
    if (commit !== null) {
      this.commit = null;
      this.context.outbox.result({
        token: commit.token, outcome: { kind: 'halted', mayBeChosen: commit.instanceId !== null, reason },
      });
    }
  }

  hasReady(): boolean {
    return !this.readyInFlight && !this.context.outbox.isEmpty();
  }

  ready(): Ready {
    assert(!this.readyInFlight, 'ready() called before the previous Ready was advanced');
    this.readyInFlight = true;
    return this.context.outbox.take();
  }

  advance(): void {
    assert(this.readyInFlight, 'advance() without a Ready in flight');
    this.readyInFlight = false;
  }

  /**
   * A member whose log no longer holds this node's next instance (its min chosen instance is above
   * it), reported once: catching up now takes a checkpoint from it. Null when none said so.
   */
  takeCheckpointRequest(): number | null {
    const peer = this.learner.needsCheckpointFrom;
    this.learner.needsCheckpointFrom = null;
    return peer;
  }

  status(): GroupStatus {
    return {
      groupIndex: this.context.config.groupIndex,
      nodeId: this.context.nodeId,
      nowInstanceId: this.context.instanceId,
      minChosenInstanceId: this.teacher.minChosenInstanceId,
      proposerPhase: this.proposer.phase,
      proposalId: this.proposer.proposalId,
      promised: formatBallot(this.acceptor.promised),
      isLearning: this.learner.isLearning,
      highestSeenInstanceId: this.learner.highestSeenInstanceId,
      futureMessages: this.future.size,
      executing: this.executing,
      halted: this.halted,
    };
  }

  /** A proposal whose value is chosen and only waits for its execution does not time out. */
  private isExecutingCommit(): boolean {
    return this.commit !== null && this.learned !== null && this.learned.proposalToken === this.commit.token;
  }

  private dispatch(message: PaxosMessage): void {
    const now = this.context.instanceId;
    switch (message.kind) {
      case 'prepare':
      case 'accept':
        this.onAcceptorMessage(message);
        return;
      case 'prepareReply':
        if (!this.context.isMember(message.from)) return;
        if (message.instanceId === now) this.proposer.onPrepareReply(message);
        else if (message.instanceId === now - 1) this.proposer.onExpiredReply(message);
        return;
      case 'acceptReply':
        if (!this.context.isMember(message.from)) return;
        if (message.instanceId === now) this.proposer.onAcceptReply(message);
        else if (message.instanceId === now - 1) this.proposer.onExpiredReply(message);
        return;
      case 'chosen':
        if (!this.context.isMember(message.from)) return;
        if (message.instanceId > now) this.keepForLater(message);
        else if (message.instanceId === now) this.onChosen(message);
        return;
      case 'askForLearn':
        // Anyone may ask (followers learn so), but only a member's position says this node is
        // behind: a non-member claiming a far instance would otherwise stop it proposing for good.
        if (this.context.isMember(message.from)) this.learner.seen(message.instanceId);
        this.teacher.onAskForLearn(message, this.previous);
        return;
      case 'sendNowInstanceId':
        if (this.context.isMember(message.from)) this.learner.onSendNowInstanceId(message);
        return;
      case 'confirmAskForLearn':
        this.teacher.onConfirmAskForLearn(message);
        return;
      case 'learnValue':
        // Only members teach; anyone may ask (followers learn without being members).
        if (this.context.isMember(message.from)) this.onLearnValue(message);
        return;
      case 'learnValueAck':
        this.teacher.onLearnValueAck(message);
        return;
      case 'askForCheckpoint':
      case 'checkpointChunk':
      case 'checkpointAck':
        // Checkpoint transfer is the node's (runtime/checkpoint); the core holds no snapshot.
        return;
      default:
        assertNever(message, 'message kind');
    }
  }

  private onAcceptorMessage(message: PrepareMessage | AcceptMessage): void {
    if (!this.context.isMember(message.from)) return;
    const now = this.context.instanceId;
    if (message.instanceId === now + 1) this.learnFromNextAccept(message);
    if (message.instanceId > now) {
      this.keepForLater(message);
      return;
    }
    if (message.instanceId < now) {
      // The sender works on an instance this node knows was chosen: it is behind, and until it
      // learns, its vote is lost to the group. Answered as its ask would be (Teacher), rather than
      // left to its periodic ask, seconds later (simulator seed 1837: 9.1 s).
      this.teacher.onMemberBehind(message.from, message.instanceId, this.previous);
      return;
    }
    if (this.learnAhead.holdsBeyondNow) return;
    if (message.kind === 'prepare') {
      this.acceptor.onPrepare(message);
    } else if (this.checksumAgrees(message.lastChecksum, message.from)) {
      this.acceptor.onAccept(message);
    }
  }

  private deliverToLocalAcceptor(message: PrepareMessage | AcceptMessage): void {
    if (this.learnAhead.holdsBeyondNow) return;
    if (message.kind === 'prepare') this.acceptor.onPrepare(message);
    else this.acceptor.onAccept(message);
  }

  private onChosenByMajority(ballot: Ballot, value: Uint8Array): void {
    const context = this.context;
    const message: ChosenMessage = {
      kind: 'chosen', from: context.nodeId, instanceId: context.instanceId, ballot, lastChecksum: context.lastChecksum,
    };
    if (this.learned === null && !ballotsEqual(this.acceptor.accepted, ballot)) {
      // The local acceptor refused this ballot (it had promised a higher one), yet a majority
      // accepted it: the proposer itself knows the chosen value. Record it durably and learn it,
      // or, should every notification be lost, nobody would ever learn this instance.
      const checksum = context.chainChecksum(context.lastChecksum, context.instanceId, value);
      this.acceptor.adoptLearned(ballot, value, checksum);
      this.learn(ballot, value, checksum);
    } else {
      this.onChosen(message);
    }
    context.broadcastToOthers(message);
  }

  private onChosen(message: ChosenMessage): void {
    if (!this.checksumAgrees(message.lastChecksum, message.from)) return;
    this.learnIfAccepted(message.ballot);
    if (this.learned === null) this.learner.chosenUnderAnotherBallot();
  }

  /** Learn the local acceptor's value, provided it accepted exactly the chosen ballot. */
  private learnIfAccepted(ballot: Ballot): void {
    if (this.learned !== null || !this.acceptor.hasAccepted) return;
    const unchecked = this.context.config.faults?.learnUnchecked === true;
    if (!unchecked && !ballotsEqual(this.acceptor.accepted, ballot)) return;
    this.learn(this.acceptor.accepted, this.acceptor.acceptedValue, this.acceptor.acceptedChecksum);
  }

  /**
   * "An accept for now+1 means now was chosen" (PhxPaxos #90), made sound. PhxPaxos compares the
   * accept's own ballot with the local accepted one, but a proposer keeps its ballot into the next
   * instance even when another proposer's value won this one, so that can learn a value that lost.
   * Here the accept names a ballot under which the *chosen* value of `now` was accepted
   * (`previousBallot`); one ballot names one value, so a match proves the local value is the chosen
   * one, without trusting any hash. Prepares carry no such ballot and never take this shortcut.
   */
  private learnFromNextAccept(message: PrepareMessage | AcceptMessage): void {
    const acceptor = this.acceptor;
    if (this.learned !== null) return;
    const byBallotOnly = this.context.config.faults?.learnNextByBallotOnly === true;
    const chosenBallot = byBallotOnly ? message.ballot : message.kind === 'accept' ? message.previousBallot : NULL_BALLOT;
    if (!isNullBallot(chosenBallot) && acceptor.hasAccepted && ballotsEqual(acceptor.accepted, chosenBallot)) {
      this.learn(acceptor.accepted, acceptor.acceptedValue, acceptor.acceptedChecksum);
    } else if (!byBallotOnly) {
      // Not under the learn-next-by-ballot canary: it restores PhxPaxos's rule as PhxPaxos has it,
      // without this ask, which would teach the node the chosen value from a peer and shorten the
      // window in which the unsound rule can learn a losing one (caught in about 1 seed in 2,500).
      //
      // A member works on now+1, so it learned `now`; what it sent cannot teach this node (`now`
      // was chosen under a ballot not accepted here, or this is a prepare, which names none, sent
      // after an accept that could have taught it was lost): ask for the value (see Learner).
      this.learner.chosenUnderAnotherBallot();
    }
  }

  private onLearnValue(message: LearnValueMessage): void {
    const now = this.context.instanceId;
    if (message.instanceId > now) {
      this.keepForLater(message);
      // The current instance is known: what just arrived may extend the run written ahead of it.
      const learned = this.learned;
      if (learned !== null && this.context.isMember(message.from)) {
        this.learnAhead.extend(this.future, learned.checksum, this.acceptor.promised);
        this.handOverAhead();
      }
      return;
    }
    if (message.instanceId === now && this.learned === null) {
      const computed = this.context.chainChecksum(this.context.lastChecksum, now, message.value);
      if (message.checksum !== 0 && computed !== 0 && computed !== message.checksum) {
        this.diverged(`instance ${now}: value from node ${message.from} has checksum ${message.checksum}, ` +
          `this node's chain gives ${computed}`);
        return;
      }
      const checksum = computed !== 0 ? computed : message.checksum;
      this.acceptor.adoptLearned(message.ballot, message.value, checksum);
      this.learn(message.ballot, message.value, checksum);
      this.learnAhead.extend(this.future, checksum, this.acceptor.promised);
      this.handOverAhead();
      // Acks follow execution, not what was written ahead: the teacher then stays within one window
      // of what this node executes, so nothing it sends falls beyond the future window and is lost.
      if (message.needAck) this.learner.ackStreamed(message.from, now + 1, message.value.length);
      return;
    }
    const learned = this.learned;
    if (message.instanceId === now && learned !== null && message.checksum !== 0 && learned.checksum !== 0 &&
      message.checksum !== learned.checksum) {
      // Learned already (written ahead and handed over, or chosen here): a peer whose chain differs
      // at this instance has diverged from this node, whichever value arrived first.
      this.diverged(`instance ${now}: value from node ${message.from} has checksum ${message.checksum}, ` +
        `this node learned ${learned.checksum}`);
      return;
    }
    if (message.needAck) {
      this.learner.ackStreamed(message.from, learned === null ? now : now + 1, message.value.length);
    }
  }

  private learn(ballot: Ballot, value: Uint8Array, knownChecksum: number): void {
    const commit = this.commit;
    const instanceId = this.context.instanceId;
    // A chain adopted from a peer after this value was accepted makes its checksum computable now.
    const checksum = knownChecksum !== 0 ? knownChecksum
      : this.context.chainChecksum(this.context.lastChecksum, instanceId, value);
    const isOwn = commit !== null && commit.instanceId === instanceId && this.isCommitValue(commit, value);
    this.learned = { instanceId, ballot, value, checksum, proposalToken: isOwn ? commit.token : null };
    this.proposer.exitPhase();
    this.emitExecute();
  }

  /**
   * Whether a chosen value is this commit's: by the identity it carries, never by equal bytes
   * (see proposal-identity.ts). The ownByBytes canary restores the byte comparison.
   */
  private isCommitValue(commit: Commit, value: Uint8Array): boolean {
    if (this.context.config.faults?.ownByBytes === true) {
      return bytesEqual(proposalBody(commit.value), proposalBody(value));
    }
    return isProposal(value, commit.identity);
  }

  private emitExecute(): void {
    const learned = this.learned;
    if (learned === null || this.executing) return;
    this.executing = true;
    this.context.outbox.executeNext(learned);
    this.handOverAhead();
  }

  /**
   * Execute a catch-up's run in one Ready, not one Ready per instance: the values written ahead
   * right after the one executing are chosen, their checksum chain verified (learn-ahead.ts), and
   * durable once the Ready carrying them is written, so the driver executes them in order after it.
   * Each becomes the learned value when the node reaches its instance (moveToNextInstance); a
   * failed execution cancels whatever was handed over after it (onExecuteFailed).
   */
  private handOverAhead(): void {
    const learned = this.learned;
    if (learned === null || !this.executing) return;
    if (this.handedHead === this.handedOver.length) {
      this.handedOver = [];
      this.handedHead = 0;
      this.handedBytes = 0;
    }
    // Messages made while a run executes (the acks among them) leave with the next Ready: a run of
    // at most learnAckLead values, or learnAckBytes, keeps them flowing to the teacher even with
    // a slow state machine. The rest is handed over when the run's last value is reached.
    const maxValues = this.context.config.timing.learnAckLead;
    const maxBytes = learnAckBytes(this.context.config.timing);
    let next = (this.handedOver[this.handedOver.length - 1]?.instanceId ?? learned.instanceId) + 1;
    for (let record = this.learnAhead.peek(next); record !== undefined; record = this.learnAhead.peek(++next)) {
      const outstanding = this.handedOver.length - this.handedHead;
      const overBytes = outstanding > 0 && this.handedBytes + record.value.length > maxBytes;
      if (outstanding >= maxValues || overBytes) break;
      const chosen: ChosenValue = {
        instanceId: next, ballot: record.accepted, value: record.value, checksum: record.checksum, proposalToken: null,
      };
      this.handedOver.push(chosen);
      this.handedBytes += record.value.length;
      this.context.outbox.executeLater(chosen);
    }
  }

  private onExecuteFailed(learned: ChosenValue, error: unknown): void {
    const timing = this.context.config.timing;
    this.proposer.cancelSkipPrepare();
    // The driver stops at the failure: nothing handed over after it runs until it succeeds.
    this.handedOver = [];
    this.handedHead = 0;
    this.handedBytes = 0;
    this.context.outbox.cancelExecuteLater();
    this.executeRetryAt = this.context.nowMs + this.executeRetryDelayMs;
    this.executeRetryDelayMs = Math.min(this.executeRetryDelayMs * 2, timing.executeRetryMaxMs);
    if (learned.proposalToken !== null) {
      this.finishCommit(learned, { kind: 'executeFailed', instanceId: learned.instanceId, error });
      this.learned = { ...learned, proposalToken: null };
    }
  }

  /** Report the outcome of the proposal bound to the instance just decided, if there is one. */
  private finishCommit(learned: ChosenValue, ownOutcome: ProposalOutcome): void {
    const commit = this.commit;
    if (commit === null || commit.instanceId !== learned.instanceId) return;
    this.commit = null;
    const outcome: ProposalOutcome = learned.proposalToken === commit.token
      ? ownOutcome
      : { kind: 'conflict', instanceId: learned.instanceId };
    this.context.outbox.result({ token: commit.token, outcome });
  }

  private moveToNextInstance(learned: ChosenValue): void {
    const context = this.context;
    // Followers learn by push: the value is durable and executed here, so nothing waits on a write.
    for (const follower of context.config.followers ?? []) {
      context.outbox.send(follower, {
        kind: 'learnValue', from: context.nodeId, instanceId: learned.instanceId, ballot: learned.ballot,
        value: learned.value, checksum: learned.checksum, needAck: false,
      });
    }
    this.previous = learned;
    this.learned = null;
    this.executeRetryAt = null;
    context.lastChecksum = learned.checksum;
    context.previousChosenBallot = learned.ballot;
    context.instanceId++;
    this.acceptor.newInstance();
    const ahead = this.learnAhead.take(context.instanceId);
    if (ahead !== undefined) this.acceptor.resumeFrom(ahead);
    this.proposer.newInstance();
    const handed = this.handedOver[this.handedHead];
    if (handed !== undefined) {
      // Its execution was handed to the driver with the previous one's: it is learned already.
      this.handedHead++;
      this.handedBytes -= handed.value.length;
      if (handed.instanceId !== context.instanceId || ahead === undefined) {
        assert(false, `value handed over for ${handed.instanceId} reached at ${context.instanceId}`);
      }
      this.learned = handed;
      this.executing = true;
    } else if (ahead !== undefined) {
      // A value written ahead is chosen and chained (learn-ahead.ts): learn it now, which hands the
      // next run over, rather than wait for its message to be replayed (the future window may have
      // dropped it to stay within its bounds).
      this.learn(ahead.accepted, ahead.value, ahead.checksum);
    }
    this.learner.onInstanceAdvanced();
    for (const message of replayOrder(this.future.take(context.instanceId))) {
      if (this.halted !== null || context.instanceId !== learned.instanceId + 1) break;
      this.dispatch(message);
    }
    // An accept already waiting for the instance after this one may show this one was chosen.
    for (const message of this.future.peek(context.instanceId + 1)) {
      if (message.kind === 'accept') this.learnFromNextAccept(message);
    }
  }

  private keepForLater(message: PaxosMessage): void {
    this.learner.seen(message.instanceId);
    this.future.add(message, this.context.instanceId);
  }

  /**
   * PhxPaxos ChecksumLogic: a peer's chain up to this instance must equal ours. An unknown chain
   * here (after a restart that could not read it) adopts the peer's.
   */
  private checksumAgrees(peerChecksum: number, from: number): boolean {
    const context = this.context;
    if (peerChecksum === 0 || peerChecksum === context.lastChecksum) return true;
    if (context.instanceId > 0 && context.lastChecksum === 0) {
      context.lastChecksum = peerChecksum;
      return true;
    }
    this.diverged(`instance ${context.instanceId}: node ${from} has checksum ${peerChecksum} before it, ` +
      `this node has ${context.lastChecksum}`);
    return false;
  }

  private diverged(message: string): void {
    this.halt({ code: 'DIVERGED', message: `group ${this.context.config.groupIndex} diverged at ${message}` });
  }

  private afterInput(): void {
    if (this.halted !== null) return;
    this.startCommitIfReady();
    this.teacher.pump();
    this.watchForStall();
  }

  /** Undecided here, a value accepted locally, and nobody on this node trying to decide it. */
  private isStalled(): boolean {
    return this.learned === null && this.acceptor.hasAccepted && this.commit === null && !this.proposer.isProposing &&
      this.learner.isLatest;
  }

  private watchForStall(): void {
    if (!this.isStalled()) {
      this.stallAt = null;
    } else if (this.stallAt === null) {
      const timing = this.context.config.timing;
      this.stallAt = this.context.nowMs + this.context.randomBetween(timing.stallMinMs, timing.stallMaxMs);
    }
  }

  /** PhxPaxos CheckNewValue: start on the waiting proposal once this node may decide its instance. */
  private startCommitIfReady(): void {
    const commit = this.commit;
    if (commit === null || commit.instanceId !== null || this.learned !== null) return;
    if (!this.learner.isLatest) return;
    commit.instanceId = this.context.instanceId;
    this.proposer.newValue(commit.value);
  }
}

function earlier(at: number, candidate: number | null | undefined): number {
  return candidate !== undefined && candidate !== null && candidate < at ? candidate : at;
}

/**
 * Kept messages are replayed acceptor messages first: a chosen notification can only be learned
 * after the accept it refers to, whatever order they arrived in.
 */
function replayOrder(messages: PaxosMessage[]): PaxosMessage[] {
  const rank = (message: PaxosMessage): number => (message.kind === 'prepare' || message.kind === 'accept' ? 0 : 1);
  return messages.sort((a, b) => rank(a) - rank(b));
}
