/**
 * Drives one GroupCore: feeds it clock readings, messages and proposals, and handles each Ready in
 * the order the core requires (persist, then the replies that depend on it, then execution). While
 * one Ready's write is in flight, new inputs accumulate in the core and go into the next Ready's
 * single write: group commit falls out of the loop.
 */
import type { GroupCore } from '../core/group-core.js';
import type { PaxosMessage } from '../core/messages.js';
import type { AcceptorRecord, ChosenValue, HaltReason, ProposalOutcome, Ready } from '../core/ready.js';
import { hasErrorCode, NOT_CHOSEN, PaxosError } from '../errors.js';
import type { Clock, LogStore, Logger } from './interfaces.js';
import { BatchContexts, BatchEntryError, encodeBatch } from './batch-value.js';
import { isUserStateMachineId, NO_STATE_MACHINE_ID, unframeValue } from './value-frame.js';
import {
  MAX_PROPOSE_ATTEMPTS, ProposalQueue, settle, type BatchLimits, type PendingProposal, type ProposeSuccess,
  type QueueLimits,
} from './proposal-queue.js';
import type { StateMachineRegistry } from './state-machine-registry.js';
import { atEndOfMicrotasks } from '../util/end-of-microtasks.js';
import { BatchCut } from './batch-cut.js';
import { answeredWithin, readInChunks } from './read-budget.js';

/** Deliberate bugs for the simulator's canaries; never set in production. */
export interface DriverFaults {
  /** Acceptor replies leave before the records they depend on are durable. */
  readonly replyBeforePersist?: boolean;
  /** Records are written without fsync (a power cut loses them after the replies left). */
  readonly skipFsync?: boolean;
  /** A batch chosen at its first attempt is proposed once more, as a retry that forgot it succeeded. */
  readonly reproposeChosen?: boolean;
  /** A catch-up's run (Ready.executeAfter) executes before the records that make it durable are written. */
  readonly executeBeforePersist?: boolean;
}

export interface GroupDriverOptions {
  readonly groupIndex: number;
  readonly core: GroupCore;
  readonly store: LogStore;
  readonly registry: StateMachineRegistry;
  readonly clock: Clock;
  readonly send: (groupIndex: number, to: number, message: PaxosMessage) => void;
  readonly logger: Logger;
  /** fsync acceptor records (default on; off trades durability for speed, as PhxPaxos bSync). */
  readonly syncWrites: boolean;
  /** How many proposals, and how many bytes of them, may wait; beyond that OVERLOADED. */
  readonly queueLimits: QueueLimits;
  /** How many waiting proposals, and how many bytes, one instance may carry. */
  readonly batchLimits: BatchLimits;
  /** Called when the earliest timer may have changed, so the host can re-arm its one wake-up. */
  readonly onTimersChanged: () => void;
  /** A broken invariant: the node must stop. */
  readonly onFatal: (error: unknown) => void;
  readonly onHalt?: (reason: HaltReason) => void;
  readonly faults?: DriverFaults;
  /**
   * For tests only (the default is the one to use): runs the next batch's hand-over once the
   * callers just answered have had their turn to propose again (default: at the end of the current
   * turn's microtasks, see atEndOfMicrotasks). It must call `feed` exactly once, or proposals wait.
   */
  readonly deferFeed?: (feed: () => void) => void;
}

export interface ProposeOptions {
  readonly timeoutMs: number;
  readonly context?: unknown;
  /** Aborting gives up waiting: ABORTED, with mayBeChosen true once the value was sent. */
  readonly signal?: AbortSignal;
}

export class GroupDriver {
  private readonly options: GroupDriverOptions;
  private readonly core: GroupCore;
  private readonly queue: ProposalQueue;
  /** The proposals each in-flight token carries, in batch order. */
  private readonly inFlight = new Map<number, PendingProposal[]>();
  private nextToken = 1;
  private pumping = false;
  private idle: Promise<void> = Promise.resolve();
  private syncWrites: boolean;
  /**
   * What this group did, for metrics: values handed to the core (a batch counts once) and the
   * caller values they carried (retries included), log writes and how many were fsynced, values
   * executed (catch-up included), and Paxos messages by kind in each direction.
   */
  readonly counters = {
    valuesProposed: 0, proposalsSent: 0, logWrites: 0, syncedLogWrites: 0, instancesExecuted: 0,
    messagesIn: {} as Partial<Record<PaxosMessage['kind'], number>>,
    messagesOut: {} as Partial<Record<PaxosMessage['kind'], number>>,
  };
  private stopped = false;
  private readonly batchCut: BatchCut;
  private executedThroughInstanceId = -1;
  private haltReason: HaltReason | null = null;

  constructor(options: GroupDriverOptions) {
    this.options = options;
    this.core = options.core;
    this.queue = new ProposalQueue(options.queueLimits);
    this.syncWrites = options.syncWrites;
    this.batchCut = new BatchCut(() => this.runDeferredFeed(), options.deferFeed ?? atEndOfMicrotasks);
  }

  /** PhxPaxos SetLogSync: fsync acceptor records or not, from the next write on. */
  setSyncWrites(enabled: boolean): void {
    this.syncWrites = enabled;
  }

  get groupIndex(): number {
    return this.options.groupIndex;
  }

  get nowInstanceId(): number {
    return this.core.nowInstanceId;
  }

  get halted(): HaltReason | null {
    return this.haltReason;
  }

  status(): ReturnType<GroupCore['status']> {
    return this.core.status();
  }

  /** Queue and waiting bytes, for metrics. */
  get queueDepth(): { readonly proposals: number; readonly bytes: number } {
    return { proposals: this.queue.length, bytes: this.queue.bytes };
  }

  get minChosenInstanceId(): number {
    return this.core.minChosenInstanceId;
  }

  /**
   * The highest instance this driver's state machines executed, -1 before any: one below the
   * current instance, or the current one when its execution finished after the driver stopped.
   */
  get executedThrough(): number {
    return Math.max(this.executedThroughInstanceId, this.core.nowInstanceId - 1);
  }

  /** A peer whose log starts above our next instance, once (see GroupCore.takeCheckpointRequest). */
  takeCheckpointRequest(): number | null {
    return this.core.takeCheckpointRequest();
  }

  /** The log below `instanceId` is gone (log cleaning): the core's teacher stops offering it. */
  setMinChosenInstanceId(instanceId: number): void {
    this.core.setMinChosenInstanceId(instanceId);
  }

  /** `value` is framed (state machine id and payload). */
  propose(value: Uint8Array, options: ProposeOptions): Promise<ProposeSuccess> {
    // A halted group says why, also once stopped (a group halted for good stops).
    if (this.haltReason !== null) return Promise.reject(haltError(this.haltReason, false));
    if (this.stopped) return Promise.reject(new PaxosError('STOPPED', 'the node is stopped', NOT_CHOSEN));
    const signal = options.signal;
    if (signal !== undefined && !(signal instanceof AbortSignal)) {
      return Promise.reject(new PaxosError('BAD_OPTIONS', 'signal must be an AbortSignal', NOT_CHOSEN));
    }
    if (signal?.aborted === true) return Promise.reject(abortError(false));
    return new Promise<ProposeSuccess>((resolve, reject) => {
      const { stateMachineId } = unframeValue(value);
      const proposal: PendingProposal = {
        value, context: options.context, deadline: this.options.clock.now() + options.timeoutMs, attempts: 0,
        settled: false, resolve, reject,
        alone: !isUserStateMachineId(stateMachineId) && stateMachineId !== NO_STATE_MACHINE_ID,
      };
      if (signal !== undefined) this.watchAbort(proposal, signal);
      const full = this.queue.push(proposal);
      if (full !== undefined) {
        settle(proposal, new PaxosError('OVERLOADED', `group ${this.groupIndex} is overloaded: ${full}`, NOT_CHOSEN));
        return;
      }
      this.batchCut.proposed();
    });
  }

  step(message: PaxosMessage): void {
    if (this.stopped) return;
    this.counters.messagesIn[message.kind] = (this.counters.messagesIn[message.kind] ?? 0) + 1;
    try {
      this.core.tick(this.options.clock.now());
      this.core.step(message);
    } catch (error) {
      this.options.onFatal(error);
      return;
    }
    this.kick();
  }

  tick(): void {
    if (this.stopped) return;
    const now = this.options.clock.now();
    try {
      this.core.tick(now);
      this.queue.expire(now);
      this.expireInFlight(now);
      // A pending deferred feed or answer runs without a timer: cutting now would split its batch.
      if (this.batchCut.open) this.feedProposals();
    } catch (error) {
      this.options.onFatal(error);
      return;
    }
    this.kick();
  }

  nextTimerAt(): number | undefined {
    if (this.stopped) return undefined;
    const coreAt = this.core.nextTimerAt();
    const queueAt = minDefined(this.queue.earliestDeadline(), this.earliestInFlightDeadline());
    if (coreAt === undefined) return queueAt;
    return queueAt === undefined ? coreAt : Math.min(coreAt, queueAt);
  }

  /** Stop driving; every pending proposal fails with STOPPED (its value may still be chosen). */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.queue.rejectAll(() => new PaxosError('STOPPED', 'the node stopped before the proposal was sent', NOT_CHOSEN));
    for (const batch of this.inFlight.values()) {
      for (const proposal of batch) {
        settle(proposal, new PaxosError('STOPPED', 'the node stopped while the proposal was in flight',
          { mayBeChosen: true }));
      }
    }
    this.inFlight.clear();
  }

  /**
   * A broken invariant (a bug), or a group that could not be rebuilt (`what` says which): the group
   * stops for good, as halted, and every caller is told. Nothing more is sent or written for it.
   * It overrides a halt for storage, which was to end once the storage resumed.
   */
  failFatally(error: unknown, what = 'broken invariant'): void {
    // A stopped group can still be found broken (a checkpoint install that could not rebuild it).
    if (this.haltReason !== null && this.haltReason.code !== 'STORAGE_UNAVAILABLE') return;
    const reason: HaltReason = { code: 'GROUP_HALTED', message: `group ${this.groupIndex}: ${what}: ${String(error)}` };
    this.haltReason = reason;
    this.stopped = true;
    this.queue.rejectAll(() => haltError(reason, false));
    for (const batch of this.inFlight.values()) {
      for (const proposal of batch) settle(proposal, haltError(reason, true));
    }
    this.inFlight.clear();
  }

  /**
   * The node's storage stopped taking writes (another group's write failed on the shared store):
   * this group halts too, with the same reason, rather than fail at its next write. The node
   * rebuilds it from the store once writes work again.
   */
  haltForStorage(reason: HaltReason): void {
    if (this.haltReason !== null) return;
    if (this.stopped) {
      // A runtime being replaced (a checkpoint install whose rebuild the storage failed): marked, so
      // the node rebuilds it once the storage resumes. It does nothing more either way.
      this.haltReason = reason;
      return;
    }
    this.core.halt(reason);
    this.kick();
  }

  /** Resolves once no Ready is being handled (so the store can be closed under it). */
  async whenIdle(): Promise<void> {
    while (this.pumping) await this.idle;
  }

  private kick(): void {
    if (!this.pumping && !this.stopped) {
      this.idle = this.pump().catch((error: unknown) => this.options.onFatal(error));
    }
    this.options.onTimersChanged();
  }

  private async pump(): Promise<void> {
    this.pumping = true;
    try {
      while (!this.stopped && this.core.hasReady()) {
        const ready = this.core.ready();
        await this.handle(ready);
        this.core.advance();
        this.batchCut.readyHandled();
        if (this.batchCut.open) this.feedProposals();
      }
      this.batchCut.idle();
    } finally {
      this.pumping = false;
    }
    this.options.onTimersChanged();
  }

  private async handle(ready: Ready): Promise<void> {
    const replyEarly = this.options.faults?.replyBeforePersist === true;
    for (const outbound of ready.messages) {
      if (!outbound.afterPersist || replyEarly) this.send(outbound.to, outbound.message);
    }
    const executeEarly = this.options.faults?.executeBeforePersist === true && ready.execute === null;
    if (executeEarly) await this.executeInOrder(ready);
    if (ready.records.length > 0) {
      try {
        const sync = this.syncWrites && ready.mustSync && this.options.faults?.skipFsync !== true;
        await this.options.store.put(this.groupIndex, ready.records, { sync });
        this.counters.logWrites++;
        if (sync) this.counters.syncedLogWrites++;
      } catch (error) {
        if (!this.stopped) this.storageFailed('log write', error, ready);
        return;
      }
    }
    if (this.stopped) return;
    if (!replyEarly) {
      for (const outbound of ready.messages) if (outbound.afterPersist) this.send(outbound.to, outbound.message);
    }
    if (ready.reads.length > 0 && !await this.answerReads(ready)) return;
    // Most Readies execute nothing (a follower's accept, a proposer's broadcast): no await for them.
    if (!executeEarly && (ready.execute !== null || ready.executeAfter.length > 0)) await this.executeInOrder(ready);
    // Before the callers learn their outcome: their continuations run as soon as they are answered.
    if (ready.results.length > 0) this.batchCut.answering();
    for (const { token, outcome } of ready.results) this.settle(token, outcome);
    if (ready.halted !== null) this.onHalted(ready.halted);
  }

  /**
   * Answer the Ready's log reads, in order, within its byte limit: the values handed over stop once
   * they reach it (whatever the store read; a store with getMany stops reading there itself), at
   * least one unless the limit is 0 (the teacher's budget is spent: it asks again after an ack).
   * Those not answered are handed back first, so the teacher asks for them again in order. False
   * when the read failed (the group halts) or the driver stopped.
   */
  private async answerReads(ready: Ready): Promise<boolean> {
    // The budget is spent: nothing is read at all (answeredWithin would hand over none).
    if (ready.readBytesLimit <= 0) {
      this.core.onLogReadsDeferred(ready.reads);
      return true;
    }
    // Issued together (a teacher asks for a window of values at once) and handed over in order:
    // one read at a time left catch-up waiting on the thread pool's round trip per value.
    let records: (AcceptorRecord | undefined)[];
    try {
      const { store } = this.options;
      records = ready.reads.length > 1 && store.getMany !== undefined
        ? await store.getMany(this.groupIndex, ready.reads, { maxBytes: ready.readBytesLimit })
        : await readInChunks((instanceId) => store.get(this.groupIndex, instanceId), ready.reads, ready.readBytesLimit);
    } catch (error) {
      // Not "no such record": the teacher would end the session and the learner ask again, and
      // a broken disk would be hidden behind endless catch-up retries.
      if (!this.stopped) this.storageFailed('log read', error, ready);
      return false;
    }
    if (this.stopped) return false;
    const answered = answeredWithin(records, ready.readBytesLimit);
    if (answered < ready.reads.length) this.core.onLogReadsDeferred(ready.reads.slice(answered));
    for (let index = 0; index < answered; index++) this.core.onLogRead(ready.reads[index] as number, records[index]);
    return true;
  }

  /**
   * A storage error halts the group: its log can no longer be trusted to hold what the protocol
   * relies on. STORAGE_UNAVAILABLE when the store says it refuses writes until it can resume (the
   * node then rebuilds the group from the store), GROUP_HALTED for any other failure. Outcomes
   * already decided (chosen and executed earlier, or timed out) do not depend on the failed
   * operation; they are delivered. What did depend on it is dropped.
   */
  private storageFailed(operation: string, error: unknown, ready: Ready): void {
    this.options.logger.error(`${operation} failed; the group halts`, { group: this.groupIndex, error: String(error) });
    this.haltOnStorageError(operation, error);
    for (const { token, outcome } of ready.results) this.settle(token, outcome);
  }

  private haltOnStorageError(operation: string, error: unknown): void {
    const code = storageUnavailable(error) ? 'STORAGE_UNAVAILABLE' : 'GROUP_HALTED';
    this.core.halt({ code, message: `group ${this.groupIndex}: ${operation} failed: ${String(error)}` });
  }

  private send(to: number, message: PaxosMessage): void {
    this.counters.messagesOut[message.kind] = (this.counters.messagesOut[message.kind] ?? 0) + 1;
    this.options.send(this.groupIndex, to, message);
  }

  /**
   * `execute`, then the values handed over after it (a catch-up's run), in order. The first that
   * fails ends the run: the core retries it, and cancelled what came after.
   */
  private async executeInOrder(ready: Ready): Promise<void> {
    if (ready.execute !== null && !await this.execute(ready.execute)) return;
    for (const chosen of ready.executeAfter) {
      if (this.stopped || this.core.isHalted || !await this.execute(chosen)) return;
    }
  }

  /** Execute one chosen value and report it to the core; true when it succeeded. */
  private async execute(chosen: ChosenValue): Promise<boolean> {
    const batch = chosen.proposalToken === null ? undefined : this.inFlight.get(chosen.proposalToken);
    if (batch !== undefined) this.batchCut.ownBatchExecuted();
    let report: { ok: true; result: unknown } | { ok: false; error: unknown };
    try {
      const context = batch === undefined ? undefined
        : batch.length === 1 ? batch[0]?.context : new BatchContexts(batch.map((proposal) => proposal.context));
      const result = await this.options.registry.execute(chosen.instanceId, chosen.value, context);
      // Recorded even when the driver stopped meanwhile: a group rebuilt in this process must not
      // execute it again (see executedThrough).
      this.executedThroughInstanceId = chosen.instanceId;
      report = { ok: true, result };
      this.counters.instancesExecuted++;
    } catch (error) {
      if (storageUnavailable(error)) {
        // A state machine that writes to the node's store (master and membership variables) found
        // it refusing writes: retrying in place would fail forever. The group halts like the store.
        this.options.logger.error('execution failed on the store; the group halts', {
          group: this.groupIndex, instanceId: chosen.instanceId, error: String(error),
        });
        if (!this.stopped) this.haltOnStorageError('execution', error);
        return false;
      }
      this.options.logger.warn('execution failed; it will be retried', {
        group: this.groupIndex, instanceId: chosen.instanceId, error: String(error),
      });
      report = { ok: false, error };
    }
    if (this.stopped) return false;
    this.core.tick(this.options.clock.now());
    this.core.onExecuted(chosen.instanceId, report);
    return report.ok;
  }

  private settle(token: number, outcome: ProposalOutcome): void {
    const batch = this.inFlight.get(token);
    if (batch === undefined) return;
    this.inFlight.delete(token);
    switch (outcome.kind) {
      case 'chosen': {
        const results = batch.length === 1 ? [outcome.result] : outcome.result as readonly unknown[];
        batch.forEach((proposal, batchIndex) => {
          settle(proposal, { instanceId: outcome.instanceId, batchIndex, result: results[batchIndex] });
        });
        if (this.options.faults?.reproposeChosen === true && batch.every((proposal) => proposal.attempts === 1)) {
          this.queue.pushFront(batch);
        }
        return;
      }
      case 'conflict': {
        const retry = batch.filter((proposal) => !proposal.settled && proposal.attempts < MAX_PROPOSE_ATTEMPTS);
        for (const proposal of batch) {
          if (retry.includes(proposal)) continue;
          settle(proposal, new PaxosError('CONFLICT',
            `other values won ${MAX_PROPOSE_ATTEMPTS} instances in a row, the last ${outcome.instanceId}`, NOT_CHOSEN));
        }
        this.queue.pushFront(retry);
        return;
      }
      case 'timeout':
        for (const proposal of batch) {
          settle(proposal, new PaxosError('TIMEOUT', outcome.mayBeChosen
            ? 'no outcome within the timeout; the value may still be chosen'
            : 'no outcome within the timeout; the value was never sent, so it will not be chosen',
          { mayBeChosen: outcome.mayBeChosen }));
        }
        return;
      case 'executeFailed': {
        // Entries before a failed one ran, and will not run again: their callers were served.
        const done = outcome.error instanceof BatchEntryError ? outcome.error.results : [];
        batch.forEach((proposal, batchIndex) => {
          if (batchIndex < done.length) {
            settle(proposal, { instanceId: outcome.instanceId, batchIndex, result: done[batchIndex] });
            return;
          }
          settle(proposal, new PaxosError('EXECUTE_FAILED',
            `chosen at instance ${outcome.instanceId}, but the state machine failed; it will be retried`,
            { mayBeChosen: true, cause: outcome.error }));
        });
        return;
      }
      case 'halted':
        for (const proposal of batch) settle(proposal, haltError(outcome.reason, outcome.mayBeChosen));
        return;
    }
  }

  /** The cut BatchCut deferred until the callers just answered had proposed again. */
  private runDeferredFeed(): void {
    if (this.stopped) return;
    try {
      this.feedProposals();
    } catch (error) {
      this.options.onFatal(error);
      return;
    }
    this.kick();
  }

  /**
   * Hand the core the next batch when it has no proposal: everything that queued meanwhile, up to
   * the batch limits. One proposal goes as itself; several go as one batch value.
   */
  private feedProposals(): void {
    while (!this.stopped && this.haltReason === null && !this.core.hasPendingProposal && this.queue.length > 0) {
      const now = this.options.clock.now();
      this.queue.expire(now);
      const batch = this.queue.takeBatch(this.options.batchLimits);
      if (batch.length === 0) return;
      let latestDeadline = 0;
      for (const proposal of batch) {
        proposal.attempts++;
        latestDeadline = Math.max(latestDeadline, proposal.deadline);
      }
      const value = batch.length === 1 ? (batch[0] as PendingProposal).value
        : encodeBatch(batch.map((proposal) => proposal.value));
      const token = this.nextToken++;
      this.core.tick(now);
      // The core's timeout covers the latest caller; earlier deadlines are enforced here, per caller.
      const accepted = this.core.propose(value, token, latestDeadline - now);
      if (accepted === 'accepted') {
        this.inFlight.set(token, batch);
        this.counters.valuesProposed++;
        this.counters.proposalsSent += batch.length;
      } else if (accepted === 'notMember') {
        for (const proposal of batch) {
          settle(proposal, new PaxosError('NOT_MEMBER', `node is not a member of group ${this.groupIndex}`,
            NOT_CHOSEN));
        }
      } else {
        for (const proposal of batch) proposal.attempts--;
        this.queue.pushFront(batch);
        return;
      }
    }
  }

  /** A caller whose own deadline passed while its batch is in flight learns TIMEOUT now. */
  private expireInFlight(nowMs: number): void {
    for (const batch of this.inFlight.values()) {
      for (const proposal of batch) {
        if (!proposal.settled && proposal.deadline <= nowMs) {
          settle(proposal, new PaxosError('TIMEOUT', 'no outcome within the timeout; the value may still be chosen',
            { mayBeChosen: true }));
        }
      }
    }
  }

  private earliestInFlightDeadline(): number | undefined {
    let earliest: number | undefined;
    for (const batch of this.inFlight.values()) {
      for (const proposal of batch) {
        if (!proposal.settled) earliest = minDefined(earliest, proposal.deadline);
      }
    }
    return earliest;
  }

  private watchAbort(proposal: PendingProposal, signal: AbortSignal): void {
    const onAbort = (): void => {
      if (proposal.settled) return;
      const wasWaiting = this.queue.remove(proposal);
      settle(proposal, abortError(!wasWaiting));
    };
    signal.addEventListener('abort', onAbort, { once: true });
    const release = (): void => signal.removeEventListener('abort', onAbort);
    const { resolve, reject } = proposal;
    // Drop the listener with the answer, so a long-lived signal does not keep every proposal alive.
    Object.assign(proposal, {
      resolve: (success: ProposeSuccess) => { release(); resolve(success); },
      reject: (error: PaxosError) => { release(); reject(error); },
    });
  }

  private onHalted(reason: HaltReason): void {
    this.haltReason = reason;
    this.options.logger.error('group halted', { group: this.groupIndex, code: reason.code, message: reason.message });
    this.queue.rejectAll(() => haltError(reason, false));
    // A proposal whose outcome sat in a Ready that was dropped when its write failed would
    // otherwise never settle; the core will report nothing more, so it fails here.
    for (const batch of this.inFlight.values()) {
      for (const proposal of batch) settle(proposal, haltError(reason, true));
    }
    this.inFlight.clear();
    this.options.onHalt?.(reason);
  }
}

function abortError(mayBeChosen: boolean): PaxosError {
  return new PaxosError('ABORTED', mayBeChosen
    ? 'the caller gave up after the value was sent; it may still be chosen'
    : 'the caller gave up before the value was sent', { mayBeChosen });
}

function minDefined(a: number | undefined, b: number | undefined): number | undefined {
  if (a === undefined) return b;
  return b === undefined ? a : Math.min(a, b);
}

/** The store refuses writes (STORAGE_UNAVAILABLE), directly or as the cause of the error. */
function storageUnavailable(error: unknown): boolean {
  return hasErrorCode(error, 'STORAGE_UNAVAILABLE');
}

function haltError(reason: HaltReason, mayBeChosen: boolean): PaxosError {
  return new PaxosError(reason.code, reason.message, { mayBeChosen });
}
