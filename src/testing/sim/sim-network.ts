/**
 * The simulated network: every message between nodes gets a random delay (so messages reorder),
 * and may be lost or duplicated; links can be cut in either or both directions to form partitions
 * of any shape. A node's messages to itself are delivered reliably and at once, as a local call
 * would be. Every message accepted for sending is shown to the checkers' tap first.
 */
import type { PaxosMessage } from '../../core/messages.js';
import type { Transport } from '../../runtime/interfaces.js';
import type { SeededRandom } from '../../util/random.js';
import type { SimScheduler } from './scheduler.js';

export interface NetworkFaults {
  lossRate: number;
  duplicateRate: number;
  minDelayMs: number;
  maxDelayMs: number;
  /** Share of messages that take up to 10x the maximum delay (deep reordering). */
  slowRate: number;
}

export type MessageTap = (groupIndex: number, to: number, message: PaxosMessage) => void;

export interface NetworkStats {
  sent: number;
  delivered: number;
  lost: number;
  cut: number;
  duplicated: number;
  /** Messages sent, by kind (shows which protocol paths a run exercised). */
  byKind: Record<string, number>;
}

export class SimNetwork {
  faults: NetworkFaults;
  readonly stats: NetworkStats = { sent: 0, delivered: 0, lost: 0, cut: 0, duplicated: 0, byKind: {} };
  private readonly scheduler: SimScheduler;
  private readonly random: SeededRandom;
  private readonly tap: MessageTap;
  private readonly receivers = new Map<number, (groupIndex: number, message: PaxosMessage) => void>();
  private readonly cutLinks = new Set<string>();

  constructor(scheduler: SimScheduler, random: SeededRandom, faults: NetworkFaults, tap: MessageTap) {
    this.scheduler = scheduler;
    this.random = random;
    this.faults = faults;
    this.tap = tap;
  }

  /** The Transport a node's runtime uses; `accepts()` lets the node refuse sends (crashed, paused). */
  transportFor(nodeId: number, accepts: () => boolean): Transport {
    return {
      send: (groupIndex, to, message) => {
        if (accepts()) this.send(groupIndex, to, message);
      },
      onMessage: (handler) => {
        this.receivers.set(nodeId, handler);
      },
    };
  }

  send(groupIndex: number, to: number, message: PaxosMessage): void {
    const from = message.from;
    this.stats.sent++;
    this.stats.byKind[message.kind] = (this.stats.byKind[message.kind] ?? 0) + 1;
    this.tap(groupIndex, to, message);
    if (from === to) {
      this.scheduler.after(0, () => this.deliver(groupIndex, to, message));
      return;
    }
    if (this.cutLinks.has(linkKey(from, to))) {
      this.stats.cut++;
      return;
    }
    if (this.random.chance(this.faults.lossRate)) {
      this.stats.lost++;
      return;
    }
    this.scheduler.after(this.delay(), () => this.deliver(groupIndex, to, message));
    if (this.random.chance(this.faults.duplicateRate)) {
      this.stats.duplicated++;
      this.scheduler.after(this.delay() * 3, () => this.deliver(groupIndex, to, message));
    }
  }

  /** Cut every link between different sides (symmetric partition). */
  partition(sides: readonly (readonly number[])[]): void {
    for (const side of sides) {
      for (const other of sides) {
        if (other === side) continue;
        for (const from of side) for (const to of other) this.cutLinks.add(linkKey(from, to));
      }
    }
  }

  /** Cut one direction only (asymmetric link). */
  cut(from: number, to: number): void {
    this.cutLinks.add(linkKey(from, to));
  }

  heal(): void {
    this.cutLinks.clear();
  }

  get cutLinkCount(): number {
    return this.cutLinks.size;
  }

  isCut(from: number, to: number): boolean {
    return this.cutLinks.has(linkKey(from, to));
  }

  private delay(): number {
    const { minDelayMs, maxDelayMs, slowRate } = this.faults;
    const base = minDelayMs + this.random.float() * (maxDelayMs - minDelayMs);
    return this.random.chance(slowRate) ? base + this.random.float() * maxDelayMs * 10 : base;
  }

  private deliver(groupIndex: number, to: number, message: PaxosMessage): void {
    const receiver = this.receivers.get(to);
    if (receiver === undefined) return;
    this.stats.delivered++;
    receiver(groupIndex, message);
  }
}

function linkKey(from: number, to: number): string {
  return `${from}>${to}`;
}
