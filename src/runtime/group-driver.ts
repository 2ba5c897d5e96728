/**
 * Drives one GroupCore: feeds it clock readings, messages and proposals, and handles each Ready in
 * the order the core requires (persist, then the replies that depend on it, then execution). While
 * one Ready's write is in flight, new inputs accumulate in the core and go into the next Ready's
 * single write: group commit falls out of the loop.
 */
import type { GroupCore } from '../core/group-core.js';
import type { PaxosMessage } from '../core/messages.js';
import type { ChosenValue, HaltReason, ProposalOutcome, Ready } from '../core/ready.js';
import { PaxosError } from '../errors.js';
import type { Clock, LogStore, Logger } from './interfaces.js';
import { MAX_PROPOSE_ATTEMPTS, ProposalQueue, type PendingProposal, type ProposeSuccess } from './proposal-queue.js';
import type { StateMachineRegistry } from './state-machine-registry.js';

/** Deliberate bugs for the simulator's canaries; never set in production. */
export interface DriverFaults {
  /** Acceptor replies leave before the records they depend on are durable. */
  readonly replyBeforePersist?: boolean;
  /** Records are written without fsync (a power cut loses them after the replies left). */
  readonly skipFsync?: boolean;
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
  readonly queueCapacity: number;
  /** Called when the earliest timer may have changed, so the host can re-arm its one wake-up. */
  readonly onTimersChanged: () => void;
  /** A broken invariant: the node must stop. */
  readonly onFatal: (error: unknown) => void;
  readonly onHalt?: (reason: HaltReason) => void;
  readonly faults?: DriverFaults;
}

export interface ProposeOptions {
  readonly timeoutMs: number;
  readonly context?: unknown;
}

export class GroupDriver {
  private readonly options: GroupDriverOptions;
  private readonly core: GroupCore;
  private readonly queue: ProposalQueue;
  private readonly inFlight = new Map<number, PendingProposal>();
  private nextToken = 1;
  private pumping = false;
  private stopped = false;
  private haltReason: HaltReason | null = null;

  constructor(options: GroupDriverOptions) {
    this.options = options;
    this.core = options.core;
    this.queue = new ProposalQueue(options.queueCapacity);
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

  propose(value: Uint8Array, options: ProposeOptions): Promise<ProposeSuccess> {
    if (this.stopped) return Promise.reject(new PaxosError('STOPPED', 'the node is stopped'));
    if (this.haltReason !== null) return Promise.reject(haltError(this.haltReason, false));
    return new Promise<ProposeSuccess>((resolve, reject) => {
      const proposal: PendingProposal = {
        value, context: options.context, deadline: this.options.clock.now() + options.timeoutMs, attempts: 0,
        resolve, reject,
      };
      if (!this.queue.push(proposal)) {
        reject(new PaxosError('OVERLOADED', `group ${this.groupIndex} has ${this.queue.length} proposals waiting`));
        return;
      }
      this.feedProposals();
      this.kick();
    });
  }

  step(message: PaxosMessage): void {
    if (this.stopped) return;
    this.core.tick(this.options.clock.now());
    this.core.step(message);
    this.kick();
  }

  tick(): void {
    if (this.stopped) return;
    const now = this.options.clock.now();
    this.core.tick(now);
    this.queue.expire(now);
    this.feedProposals();
    this.kick();
  }

  nextTimerAt(): number | undefined {
    const coreAt = this.core.nextTimerAt();
    const queueAt = this.queue.earliestDeadline();
    if (coreAt === undefined) return queueAt;
    return queueAt === undefined ? coreAt : Math.min(coreAt, queueAt);
  }

  /** Stop driving; every pending proposal fails with STOPPED (its value may still be chosen). */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.queue.rejectAll(() => new PaxosError('STOPPED', 'the node stopped before the proposal was sent'));
    for (const proposal of this.inFlight.values()) {
      proposal.reject(new PaxosError('STOPPED', 'the node stopped while the proposal was in flight', { mayBeChosen: true }));
    }
    this.inFlight.clear();
  }

  private kick(): void {
    if (!this.pumping && !this.stopped) {
      this.pump().catch((error: unknown) => this.options.onFatal(error));
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
        this.feedProposals();
      }
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
    if (ready.records.length > 0) {
      try {
        const sync = this.options.syncWrites && ready.mustSync && this.options.faults?.skipFsync !== true;
        await this.options.store.put(this.groupIndex, ready.records, { sync });
      } catch (error) {
        if (this.stopped) return;
        this.options.logger.error('log write failed; the group halts', { group: this.groupIndex, error: String(error) });
        this.core.halt({ code: 'GROUP_HALTED', message: `group ${this.groupIndex}: log write failed: ${String(error)}` });
        // Outcomes already decided (chosen and executed earlier, or timed out) do not depend on
        // this write; deliver them. The messages and the execution that did depend on it are dropped.
        for (const { token, outcome } of ready.results) this.settle(token, outcome);
        return;
      }
    }
    if (this.stopped) return;
    if (!replyEarly) {
      for (const outbound of ready.messages) if (outbound.afterPersist) this.send(outbound.to, outbound.message);
    }
    for (const instanceId of ready.reads) {
      const record = await this.options.store.get(this.groupIndex, instanceId).catch(() => undefined);
      if (this.stopped) return;
      this.core.onLogRead(instanceId, record);
    }
    if (ready.execute !== null) await this.execute(ready.execute);
    for (const { token, outcome } of ready.results) this.settle(token, outcome);
    if (ready.halted !== null) this.onHalted(ready.halted);
  }

  private send(to: number, message: PaxosMessage): void {
    this.options.send(this.groupIndex, to, message);
  }

  private async execute(chosen: ChosenValue): Promise<void> {
    const proposal = chosen.proposalToken === null ? undefined : this.inFlight.get(chosen.proposalToken);
    let report: { ok: true; result: unknown } | { ok: false; error: unknown };
    try {
      const result = await this.options.registry.execute(chosen.instanceId, chosen.value, proposal?.context);
      report = { ok: true, result };
    } catch (error) {
      this.options.logger.warn('execution failed; it will be retried', {
        group: this.groupIndex, instanceId: chosen.instanceId, error: String(error),
      });
      report = { ok: false, error };
    }
    if (this.stopped) return;
    this.core.tick(this.options.clock.now());
    this.core.onExecuted(chosen.instanceId, report);
  }

  private settle(token: number, outcome: ProposalOutcome): void {
    const proposal = this.inFlight.get(token);
    if (proposal === undefined) return;
    this.inFlight.delete(token);
    switch (outcome.kind) {
      case 'chosen':
        proposal.resolve({ instanceId: outcome.instanceId, result: outcome.result });
        return;
      case 'conflict':
        if (proposal.attempts < MAX_PROPOSE_ATTEMPTS) this.queue.pushFront(proposal);
        else {
          proposal.reject(new PaxosError('CONFLICT',
            `other values won ${MAX_PROPOSE_ATTEMPTS} instances in a row, the last ${outcome.instanceId}`));
        }
        return;
      case 'timeout':
        proposal.reject(new PaxosError('TIMEOUT', 'no outcome within the timeout; the value may still be chosen',
          { mayBeChosen: outcome.mayBeChosen }));
        return;
      case 'executeFailed':
        proposal.reject(new PaxosError('EXECUTE_FAILED',
          `chosen at instance ${outcome.instanceId}, but the state machine failed; it will be retried`,
          { mayBeChosen: true, cause: outcome.error }));
        return;
      case 'halted':
        proposal.reject(haltError(outcome.reason, outcome.mayBeChosen));
        return;
    }
  }

  /** Hand the next waiting proposal to the core when it has none. */
  private feedProposals(): void {
    while (!this.stopped && this.haltReason === null && !this.core.hasPendingProposal) {
      const proposal = this.queue.shift();
      if (proposal === undefined) return;
      const remainingMs = proposal.deadline - this.options.clock.now();
      if (remainingMs <= 0) {
        proposal.reject(new PaxosError('TIMEOUT', 'the proposal timed out before it could be proposed'));
        continue;
      }
      const token = this.nextToken++;
      proposal.attempts++;
      this.core.tick(this.options.clock.now());
      const accepted = this.core.propose(proposal.value, token, remainingMs);
      if (accepted === 'accepted') {
        this.inFlight.set(token, proposal);
      } else if (accepted === 'notMember') {
        proposal.reject(new PaxosError('NOT_MEMBER', `node is not a member of group ${this.groupIndex}`));
      } else {
        this.queue.pushFront(proposal);
        return;
      }
    }
  }

  private onHalted(reason: HaltReason): void {
    this.haltReason = reason;
    this.options.logger.error('group halted', { group: this.groupIndex, code: reason.code, message: reason.message });
    this.queue.rejectAll(() => haltError(reason, false));
    // A proposal whose outcome sat in a Ready that was dropped when its write failed would
    // otherwise never settle; the core will report nothing more, so it fails here.
    for (const proposal of this.inFlight.values()) proposal.reject(haltError(reason, true));
    this.inFlight.clear();
    this.options.onHalt?.(reason);
  }
}

function haltError(reason: HaltReason, mayBeChosen: boolean): PaxosError {
  return new PaxosError(reason.code, reason.message, { mayBeChosen });
}
