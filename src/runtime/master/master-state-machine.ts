/**
 * The master lease of one group as a state machine on the log (PhxPaxos MasterStateMachine).
 *
 * A bid names the master version its bidder saw; the first bid executed with the current version
 * wins and the version becomes that bid's instance, so a stale bid (one proposed before another
 * won) changes nothing. Every node executes the same bids in the same order, so all agree on the
 * master and version. Lease time is local, on the monotonic clock:
 *  - a node that is not the master counts a full lease from the moment it executes the bid;
 *  - the master counts from the moment it *proposed* the bid (earlier), and shortens its lease by
 *    the drift bound, so that even with clocks running up to `driftBound` fast or slow it stops
 *    believing it is master before any other node can believe the lease ran out.
 * After a restart a node never believes it is the master (it lost the moment its bid was made),
 * and it assumes another master's lease runs a full lease from now.
 */
import type { Clock, ExecuteInput, LogStore, StateMachine } from '../interfaces.js';
import { MASTER_STATE_MACHINE_ID } from '../value-frame.js';
import { decodeMasterBid, decodeMasterVariables, encodeMasterVariables, type MasterBid } from './master-bid.js';

/** The master as one node sees it. `leaseExpiresAt` is on this node's monotonic clock. */
export interface MasterInfo {
  readonly nodeId: number;
  readonly version: number;
  readonly leaseExpiresAt: number;
}

/** Passed as the proposer's context with its own bid. */
export interface OwnBidContext {
  /** When the bidder's own lease ends if the bid wins: measured from before it proposed. */
  readonly leaseEndsAt: number;
}

export interface MasterStateMachineOptions {
  readonly groupIndex: number;
  readonly nodeId: number;
  readonly store: LogStore;
  readonly clock: Clock;
  /** A bid won (the master changed, or its lease was renewed). */
  readonly onBidApplied?: () => void;
}

export class MasterStateMachine implements StateMachine {
  readonly id = MASTER_STATE_MACHINE_ID;
  private readonly options: MasterStateMachineOptions;
  private masterNodeId = 0;
  private version = -1;
  private leaseMs = 0;
  private expiresAt = 0;
  /** Set by dropMaster: this node stops believing it is master at once. */
  private droppedUntil = 0;

  private constructor(options: MasterStateMachineOptions) {
    this.options = options;
  }

  /** Load the persisted master variables (they are the state machine's durable checkpoint). */
  static async load(options: MasterStateMachineOptions): Promise<MasterStateMachine> {
    const machine = new MasterStateMachine(options);
    const stored = await options.store.masterVariables(options.groupIndex);
    if (stored !== undefined) {
      const variables = decodeMasterVariables(stored);
      machine.masterNodeId = variables.nodeId;
      machine.version = variables.version;
      machine.leaseMs = variables.leaseMs;
      // Our own lease began at a moment this life cannot know: assume none. Another node's lease
      // is assumed to run a whole lease from now.
      machine.expiresAt = variables.nodeId === options.nodeId ? 0 : options.clock.now() + variables.leaseMs;
    }
    return machine;
  }

  /** The current master version: the instance of the last bid that won (-1: none yet). */
  get masterVersion(): number {
    return this.version;
  }

  master(): MasterInfo | undefined {
    const now = this.options.clock.now();
    if (this.masterNodeId === 0 || now >= this.expiresAt) return undefined;
    if (this.masterNodeId === this.options.nodeId && now < this.droppedUntil) return undefined;
    return { nodeId: this.masterNodeId, version: this.version, leaseExpiresAt: this.expiresAt };
  }

  isMaster(): boolean {
    return this.master()?.nodeId === this.options.nodeId;
  }

  /** Step down at once on this node's side; it will not bid again before `until`. */
  drop(until: number): void {
    this.droppedUntil = until;
    if (this.masterNodeId === this.options.nodeId) this.expiresAt = Math.min(this.expiresAt, this.options.clock.now());
  }

  isDropped(): boolean {
    return this.options.clock.now() < this.droppedUntil;
  }

  async execute(input: ExecuteInput): Promise<boolean> {
    let bid: MasterBid;
    try {
      bid = decodeMasterBid(input.value);
    } catch {
      return false; // every node ignores the same malformed bid; throwing would wedge the group
    }
    if (bid.version !== this.version) return false; // a stale bid: another won since it was made
    const ownContext = input.context as OwnBidContext | undefined;
    // A bid of ours that wins while we dropped the lease gives us nothing: we said we would not lead.
    const ownLeaseEnd = typeof ownContext?.leaseEndsAt === 'number' && !this.isDropped() ? ownContext.leaseEndsAt : 0;
    const expiresAt = bid.nodeId === this.options.nodeId ? ownLeaseEnd : this.options.clock.now() + bid.leaseMs;
    const next: MasterBid = { nodeId: bid.nodeId, version: input.instanceId, leaseMs: bid.leaseMs, nonce: 0 };
    // Durable before it takes effect: start-up restores from it, not from a replay.
    await this.options.store.setMasterVariables(this.options.groupIndex, encodeMasterVariables(next));
    this.masterNodeId = next.nodeId;
    this.version = next.version;
    this.leaseMs = next.leaseMs;
    this.expiresAt = expiresAt;
    this.options.onBidApplied?.();
    return true;
  }
}
