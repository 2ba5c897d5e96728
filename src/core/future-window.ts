/**
 * Messages about instances this node has not reached yet, kept until it gets there (PhxPaxos's
 * retry queue, generalised to chosen notifications and streamed values). Bounded twice: only
 * instances below now + `windowInstances` are kept, and at most `maxMessages` in all (those about the farthest
 * instance go first). Paxos tolerates the loss of any of them.
 */
import type { PaxosMessage } from './messages.js';

export class FutureWindow {
  private readonly byInstance = new Map<number, PaxosMessage[]>();
  private count = 0;
  /** No message is kept below this instance: `take` scans for older ones only when it is below the taken one. */
  private lowestKept = Infinity;
  private readonly windowInstances: number;
  private readonly maxMessages: number;
  dropped = 0;

  constructor(windowInstances: number, maxMessages: number) {
    this.windowInstances = windowInstances;
    this.maxMessages = maxMessages;
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
    if (message.instanceId < this.lowestKept) this.lowestKept = message.instanceId;
    while (this.count > this.maxMessages) this.dropFarthest();
    return true;
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
    this.byInstance.delete(instanceId);
  }

  private dropFarthest(): void {
    let farthest = -1;
    for (const key of this.byInstance.keys()) if (key > farthest) farthest = key;
    const list = this.byInstance.get(farthest);
    if (list === undefined) return;
    list.shift();
    this.count--;
    this.dropped++;
    if (list.length === 0) this.byInstance.delete(farthest);
  }
}
