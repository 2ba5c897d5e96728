/**
 * Master election for one group (PhxPaxos MasterMgr), driven by the node's one timer: every
 * quarter lease or so, a node bids when no live master exists, and the master renews. A bid is an
 * ordinary proposal to the master state machine; whether it won is decided by the log.
 *
 * The master's own lease is measured from just before it proposes and shortened by the drift
 * bound: with every clock's rate within [1 - d, 1 + d] of true time, a lease of L on the master's
 * clock lasts at most L / (1 - d) true time, while another node waits at least L' / (1 + d) true
 * time after it executed the bid; so the master uses L' · (1 - d) / (1 + d), minus a margin for
 * the work between reading the clock and proposing.
 */
import type { Random } from '../../util/random.js';
import type { Clock } from '../interfaces.js';
import { MASTER_STATE_MACHINE_ID, frameValue } from '../value-frame.js';
import { encodeMasterBid } from './master-bid.js';
import type { MasterInfo, MasterStateMachine, OwnBidContext } from './master-state-machine.js';

export interface MasterOptions {
  /** The lease in ms (default 10,000; at least 1,000). */
  readonly leaseMs: number;
  /** Bound on any clock's rate error, e.g. 0.01 for ±1% (default). */
  readonly driftBound: number;
}

export const DEFAULT_MASTER_OPTIONS: MasterOptions = Object.freeze({ leaseMs: 10_000, driftBound: 0.01 });
/** Time allowed between reading the clock for a bid and the bid leaving: PhxPaxos's 100 ms. */
const BID_MARGIN_MS = 100;

export interface MasterManagerOptions {
  readonly nodeId: number;
  readonly machine: MasterStateMachine;
  readonly clock: Clock;
  readonly random: Random;
  readonly settings: MasterOptions;
  /** Propose a framed value with a context; the outcome does not matter to the manager. */
  readonly propose: (value: Uint8Array, context: OwnBidContext, timeoutMs: number) => Promise<unknown>;
  readonly onMasterChange?: (master: MasterInfo | undefined) => void;
  readonly onTimersChanged: () => void;
  /** Wait this long before the first bid (a node that is not the group's preferred master). */
  readonly firstBidDelayMs?: number;
  /** Test-only canary: the master trusts its whole lease, ignoring the drift bound. */
  readonly ignoreDrift?: boolean;
}

export class MasterManager {
  private readonly options: MasterManagerOptions;
  private leaseMs: number;
  private nextBidAt: number;
  private bidding = false;
  private stopped = false;
  private reportedMaster: number | undefined;

  constructor(options: MasterManagerOptions) {
    this.options = options;
    this.leaseMs = options.settings.leaseMs;
    this.nextBidAt = options.clock.now() + (options.firstBidDelayMs ?? 0);
    this.reportedMaster = options.machine.master()?.nodeId;
  }

  /** PhxPaxos SetMasterLease: from the next bid on. */
  setLease(leaseMs: number): void {
    this.leaseMs = leaseMs;
  }

  /** Step down at once on this side, and make no bid for two leases. */
  drop(): void {
    const until = this.options.clock.now() + 2 * this.leaseMs;
    this.options.machine.drop(until);
    this.nextBidAt = until;
    this.checkChange();
    this.options.onTimersChanged();
  }

  stop(): void {
    this.stopped = true;
  }

  nextTimerAt(): number | undefined {
    if (this.stopped) return undefined;
    // Also wake when the lease we know of ends, to report the change.
    const master = this.options.machine.master();
    return master === undefined ? this.nextBidAt : Math.min(this.nextBidAt, master.leaseExpiresAt);
  }

  tick(): void {
    if (this.stopped) return;
    const hadMaster = this.reportedMaster !== undefined;
    this.checkChange();
    const now = this.options.clock.now();
    // A lease that just ran out is bid for at once, not at the next quarter-lease tick: failover
    // then takes the lease plus one round of consensus.
    const leaseJustEnded = hadMaster && this.reportedMaster === undefined;
    if (now < this.nextBidAt && !leaseJustEnded) return;
    const cycle = Math.max(1, (this.leaseMs - BID_MARGIN_MS) / 4);
    this.nextBidAt = now + cycle / 2 + this.options.random.float() * cycle;
    const master = this.options.machine.master();
    const mayBid = master === undefined || master.nodeId === this.options.nodeId;
    if (mayBid && !this.bidding && !this.options.machine.isDropped()) this.bid(now);
  }

  /** Report a master change noticed since the last report (a bid, an expiry, a drop). */
  checkChange(): void {
    const master = this.options.machine.master();
    if (master?.nodeId === this.reportedMaster) return;
    this.reportedMaster = master?.nodeId;
    this.options.onMasterChange?.(master);
  }

  private bid(now: number): void {
    const { driftBound } = this.options.settings;
    const ownLease = this.options.ignoreDrift === true
      ? this.leaseMs
      : this.leaseMs * (1 - driftBound) / (1 + driftBound) - BID_MARGIN_MS;
    const context: OwnBidContext = { leaseEndsAt: now + ownLease };
    const value = frameValue(MASTER_STATE_MACHINE_ID, encodeMasterBid({
      nodeId: this.options.nodeId, version: this.options.machine.masterVersion, leaseMs: this.leaseMs,
      nonce: this.options.random.int(0, 0x1_0000_0000),
    }));
    this.bidding = true;
    this.options.propose(value, context, Math.max(1, ownLease)).catch(() => undefined).finally(() => {
      this.bidding = false;
      this.checkChange();
      this.options.onTimersChanged();
    });
  }
}
