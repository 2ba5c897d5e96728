/**
 * The simulated network: every message between nodes gets a random delay (so messages reorder),
 * and may be lost or duplicated; links can be cut in either or both directions to form partitions
 * of any shape. A node's messages to itself are delivered reliably and at once, as a local call
 * would be. Every message accepted for sending is shown to the checkers' tap first.
 *
 * Like the TCP transport, a link leaves out a chosen notification that the accept of the next
 * instance, sent on the same link in the same turn (here: the same event), makes redundant (see
 * io/chosen-elision.ts): a notification waits until the event's continuations have run before it
 * takes the network's chances, so the runs check the learning path real nodes rely on.
 */
import type { ChosenMessage, PaxosMessage } from '../../core/messages.js';
import { chosenAnsweredByAccept } from '../../io/chosen-elision.js';
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
  /** Chosen notifications left out because the next accept on the link answered them. */
  chosenElided: number;
}

/** A chosen notification waiting for the end of the event it was sent in. */
interface HeldChosen {
  readonly groupIndex: number;
  readonly to: number;
  readonly message: ChosenMessage;
  elided: boolean;
}

export class SimNetwork {
  faults: NetworkFaults;
  readonly stats: NetworkStats = { sent: 0, delivered: 0, lost: 0, cut: 0, duplicated: 0, byKind: {}, chosenElided: 0 };
  /** Chosen notifications sent in the current event, not yet on their way. */
  private held: HeldChosen[] = [];
  private readonly scheduler: SimScheduler;
  private readonly random: SeededRandom;
  private readonly tap: MessageTap;
  private readonly receivers = new Map<number, (groupIndex: number, message: PaxosMessage) => void>();
  private readonly cutLinks = new Set<string>();

  /** Whether links leave out chosen notifications as the TCP transport does (see the header). */
  private readonly elideChosen: boolean;

  /**
   * `elideChosen` false: every notification goes out as sent (the simulator does so in odd seeds,
   * so that the runs keep checking both ways a peer learns: from the notification and from the
   * next accept).
   */
  constructor(scheduler: SimScheduler, random: SeededRandom, faults: NetworkFaults, tap: MessageTap,
    elideChosen = true) {
    this.scheduler = scheduler;
    this.random = random;
    this.faults = faults;
    this.tap = tap;
    this.elideChosen = elideChosen;
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
    if (message.kind === 'chosen' && this.elideChosen) {
      this.hold({ groupIndex, to, message, elided: false });
      return;
    }
    if (message.kind === 'accept' && this.held.length > 0) {
      for (const held of this.held) {
        if (held.elided || held.groupIndex !== groupIndex || held.to !== to) continue;
        if (!chosenAnsweredByAccept(held.message, message)) continue;
        held.elided = true;
        this.stats.chosenElided++;
      }
    }
    this.transmit(groupIndex, to, message);
  }

  /**
   * Hold a notification until the current event's continuations have run: an event at the same
   * time, scheduled now, runs after them (the scheduler settles each event before the next).
   */
  private hold(held: HeldChosen): void {
    if (this.held.length === 0) {
      this.scheduler.after(0, () => {
        const due = this.held;
        this.held = [];
        for (const { groupIndex, to, message, elided } of due) if (!elided) this.transmit(groupIndex, to, message);
      });
    }
    this.held.push(held);
  }

  /** Across the link: cut, lost, delayed, or duplicated, as the faults say. */
  private transmit(groupIndex: number, to: number, message: PaxosMessage): void {
    const from = message.from;
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
