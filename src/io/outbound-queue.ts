/**
 * The messages waiting to be written to one peer, bounded in count and in encoded bytes. When a new
 * message does not fit, the oldest ones are dropped: Paxos tolerates loss, and the newest messages
 * (higher ballots, later instances) are the useful ones after an outage.
 *
 * A ring of parallel arrays, so queuing a message allocates nothing once the ring has grown; the
 * ring grows by doubling up to the message bound, so an idle peer costs little.
 */
import type { PaxosMessage } from '../core/messages.js';
import { ApplicationPayload } from './application-frame.js';

/** A Paxos message, or an application's opaque frame going the same way. */
export type Outbound = PaxosMessage | ApplicationPayload;

const INITIAL_CAPACITY = 16;
/** The share of the queue's bounds application frames may take (the rest is the Paxos messages'). */
const APPLICATION_SHARE = 4;

export class OutboundQueue {
  readonly maxMessages: number;
  readonly maxBytes: number;
  private groups: number[] = [];
  private messages: (Outbound | undefined)[] = [];
  private sizes: number[] = [];
  private times: number[] = [];
  private capacity = 0;
  private head = 0;
  private count = 0;
  private bytes = 0;
  private applicationCount = 0;
  private applicationBytes = 0;

  constructor(maxMessages: number, maxBytes: number) {
    this.maxMessages = maxMessages;
    this.maxBytes = maxBytes;
  }

  get length(): number {
    return this.count;
  }

  /** Encoded bytes of the queued messages (frames included). */
  get byteLength(): number {
    return this.bytes;
  }

  /**
   * Queue a message whose frame is `size` bytes, at time `now`. Returns how many older messages were
   * dropped to make room, or -1 when the message alone exceeds the byte bound and was not queued.
   */
  push(group: number, message: Outbound, size: number, now: number): number {
    if (size > this.maxBytes) return -1;
    let dropped = 0;
    while (this.count >= this.maxMessages || this.bytes + size > this.maxBytes) {
      this.shift();
      dropped++;
    }
    if (this.count === this.capacity) this.grow();
    const slot = this.slot(this.count);
    this.groups[slot] = group;
    this.messages[slot] = message;
    this.sizes[slot] = size;
    this.times[slot] = now;
    this.count++;
    this.bytes += size;
    if (message instanceof ApplicationPayload) {
      this.applicationCount++;
      this.applicationBytes += size;
    }
    return dropped;
  }

  /**
   * Queue an application frame only where it drops nothing and keeps to its share of the bounds
   * (a quarter of the messages and of the bytes): false when it does not fit, and it is not queued.
   * Paxos messages still push application frames out like any older entry.
   */
  pushApplication(payload: ApplicationPayload, size: number, now: number): boolean {
    if (this.count >= this.maxMessages || this.bytes + size > this.maxBytes) return false;
    if ((this.applicationCount + 1) * APPLICATION_SHARE > this.maxMessages ||
      (this.applicationBytes + size) * APPLICATION_SHARE > this.maxBytes) return false;
    return this.push(0, payload, size, now) === 0;
  }

  /** Application frames queued, and their bytes. */
  get applicationLength(): number {
    return this.applicationCount;
  }

  get applicationByteLength(): number {
    return this.applicationBytes;
  }

  /** The i-th oldest entry's parts (0 is the oldest); i must be below `length`. */
  groupAt(i: number): number {
    return this.groups[this.slot(i)] as number;
  }

  messageAt(i: number): Outbound {
    return this.messages[this.slot(i)] as Outbound;
  }

  sizeAt(i: number): number {
    return this.sizes[this.slot(i)] as number;
  }

  timeAt(i: number): number {
    return this.times[this.slot(i)] as number;
  }

  /** Remove the oldest entry (the queue must not be empty). */
  shift(): void {
    const slot = this.head;
    this.bytes -= this.sizes[slot] as number;
    if (this.messages[slot] instanceof ApplicationPayload) {
      this.applicationCount--;
      this.applicationBytes -= this.sizes[slot] as number;
    }
    this.messages[slot] = undefined;
    this.head = slot + 1 === this.capacity ? 0 : slot + 1;
    this.count--;
  }

  /** Drop every queued application frame, keeping the other entries in order; returns how many. */
  dropApplication(): number {
    let dropped = 0;
    for (let i = this.count - 1; i >= 0 && this.applicationCount > 0; i--) {
      const slot = this.slot(i);
      if (!(this.messages[slot] instanceof ApplicationPayload)) continue;
      this.applicationCount--;
      this.applicationBytes -= this.sizes[slot] as number;
      this.removeAt(i);
      dropped++;
    }
    return dropped;
  }

  /** Drop the entries queued before `time`; returns how many. */
  dropQueuedBefore(time: number): number {
    let dropped = 0;
    while (this.count > 0 && (this.times[this.head] as number) < time) {
      this.shift();
      dropped++;
    }
    return dropped;
  }

  /** Drop everything; returns how many entries there were. */
  clear(): number {
    const dropped = this.count;
    while (this.count > 0) this.shift();
    return dropped;
  }

  /** Take out the i-th oldest entry (its caller fixes the application counts): the newer ones move up one place. */
  private removeAt(i: number): void {
    const removed = this.slot(i);
    this.bytes -= this.sizes[removed] as number;
    for (let j = i; j < this.count - 1; j++) {
      const to = this.slot(j);
      const from = this.slot(j + 1);
      this.groups[to] = this.groups[from] as number;
      this.messages[to] = this.messages[from];
      this.sizes[to] = this.sizes[from] as number;
      this.times[to] = this.times[from] as number;
    }
    this.messages[this.slot(this.count - 1)] = undefined;
    this.count--;
  }

  private slot(i: number): number {
    const slot = this.head + i;
    return slot >= this.capacity ? slot - this.capacity : slot;
  }

  private grow(): void {
    const capacity = Math.min(this.maxMessages, Math.max(INITIAL_CAPACITY, this.capacity * 2));
    const groups: number[] = new Array<number>(capacity).fill(0);
    const messages: (Outbound | undefined)[] = new Array<Outbound | undefined>(capacity).fill(undefined);
    const sizes: number[] = new Array<number>(capacity).fill(0);
    const times: number[] = new Array<number>(capacity).fill(0);
    for (let i = 0; i < this.count; i++) {
      const slot = this.slot(i);
      groups[i] = this.groups[slot] as number;
      messages[i] = this.messages[slot];
      sizes[i] = this.sizes[slot] as number;
      times[i] = this.times[slot] as number;
    }
    this.groups = groups;
    this.messages = messages;
    this.sizes = sizes;
    this.times = times;
    this.capacity = capacity;
    this.head = 0;
  }
}
