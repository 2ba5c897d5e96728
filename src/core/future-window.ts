/**
 * Messages about instances this node has not reached yet, kept until it gets there (PhxPaxos's
 * retry queue, generalised to chosen notifications and streamed values). Bounded three times: only
 * instances below now + `windowInstances` are kept, at most `maxMessages` in all, and at most
 * `maxBytes` of values (those about the farthest instance go first). Paxos tolerates the loss of
 * any of them.
 */
import type { PaxosMessage } from './messages.js';

/**
 * The values a future window keeps, at most: 64 MiB, or four times timing.teachBytesBeyondAck when
 * that is larger. A teacher keeps at most that budget (16 MiB by default) and one value beyond this
 * node's ack; four times it leaves room for a stream that a new session
 * replaced while its messages still arrive, and for the accepts of live proposals, while 1,500
 * instances of values up to 8 MiB could otherwise hold gigabytes.
 */
export const FUTURE_WINDOW_BYTES = 64 * 1024 * 1024;

/** The bytes of the value a message carries (0: none). */
function valueBytes(message: PaxosMessage): number {
  return 'value' in message ? message.value.length : 0;
}

export class FutureWindow {
  private readonly byInstance = new Map<number, PaxosMessage[]>();
  private count = 0;
  private bytes = 0;
  /** No message is kept below this instance: `take` scans for older ones only when it is below the taken one. */
  private lowestKept = Infinity;
  private readonly windowInstances: number;
  private readonly maxMessages: number;
  private readonly maxBytes: number;
  dropped = 0;

  constructor(windowInstances: number, maxMessages: number, maxBytes = FUTURE_WINDOW_BYTES) {
    this.windowInstances = windowInstances;
    this.maxMessages = maxMessages;
    this.maxBytes = maxBytes;
  }

  /** Bytes of the values kept. */
  get keptBytes(): number {
    return this.bytes;
  }

  get size(): number {
    return this.count;
  }

  /** Keep `message` (about an instance above `nowInstanceId`) if it fits; returns whether it was kept. */
  add(message: PaxosMessage, nowInstanceId: number): boolean {
    if (message.instanceId >= nowInstanceId + this.windowInstances) {
      this.dropped++;
      return false;
    }
    let list = this.byInstance.get(message.instanceId);
    if (list === undefined) {
      list = [];
      this.byInstance.set(message.instanceId, list);
    }
    list.push(message);
    this.count++;
    this.bytes += valueBytes(message);
    if (message.instanceId < this.lowestKept) this.lowestKept = message.instanceId;
    while (this.count > this.maxMessages || this.bytes > this.maxBytes) this.dropFarthest();
    return this.byInstance.get(message.instanceId)?.includes(message) === true;
  }

  /** Remove and return what was kept for `instanceId`, dropping everything below it. */
  take(instanceId: number): PaxosMessage[] {
    // A node takes each instance in turn: scanning every key each time cost a catch-up more than
    // anything else the learner did per instance, once the window held a thousand instances.
    if (this.lowestKept < instanceId) {
      let lowest = Infinity;
      for (const key of this.byInstance.keys()) {
        if (key < instanceId) this.remove(key);
        else if (key < lowest) lowest = key;
      }
      this.lowestKept = lowest;
    }
    const list = this.byInstance.get(instanceId);
    if (this.lowestKept === instanceId) this.lowestKept = instanceId + 1;
    if (list === undefined) return [];
    this.remove(instanceId);
    return list;
  }

  /** What is kept for `instanceId`, left in place. */
  peek(instanceId: number): readonly PaxosMessage[] {
    return this.byInstance.get(instanceId) ?? [];
  }

  private remove(instanceId: number): void {
    const list = this.byInstance.get(instanceId);
    if (list === undefined) return;
    this.count -= list.length;
    for (const message of list) this.bytes -= valueBytes(message);
    this.byInstance.delete(instanceId);
  }

  private dropFarthest(): void {
    let farthest = -1;
    for (const key of this.byInstance.keys()) if (key > farthest) farthest = key;
    const list = this.byInstance.get(farthest);
    if (list === undefined) return;
    const dropped = list.shift() as PaxosMessage;
    this.count--;
    this.bytes -= valueBytes(dropped);
    this.dropped++;
    if (list.length === 0) this.byInstance.delete(farthest);
  }
}
