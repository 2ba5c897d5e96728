/**
 * Streamed catch-up at disk speed. A learner used to write and fsync one record per instance it
 * learned, one after the other (about 2,000 instances/s); yet a teacher's stream puts dozens of
 * chosen values in the future window at once. Whenever the current instance is learned, the values
 * waiting for the instances right after it are chained (their checksums verified against ours) and
 * persisted in the same write. When the node reaches each of them, its acceptor starts from that
 * durable record, the learned value is adopted without another write, and execution follows
 * without waiting for the disk.
 *
 * Two rules keep it safe:
 *   - each record carries the acceptor's promise if that is higher than the value's ballot: the
 *     newest record of the log is where a restart reads the promise from, and ahead records are the
 *     newest, so a promise must never go down in them;
 *   - while records exist beyond the current instance, the local acceptor does not vote (every
 *     instance up to the last of them is chosen, so a vote there would help no one), which keeps
 *     the newest record's promise the highest this node made.
 */
import { compareBallots, type Ballot } from './ballot.js';
import type { FutureWindow } from './future-window.js';
import type { GroupContext } from './group-context.js';
import type { LearnValueMessage } from './messages.js';
import type { AcceptorRecord } from './ready.js';

export class LearnAhead {
  private readonly context: GroupContext;
  private readonly records = new Map<number, AcceptorRecord>();
  /** The highest instance persisted ahead (-1: none). */
  private through = -1;
  private throughChecksum = 0;
  /** No record is kept below this instance (the records run without a gap up to `through`). */
  private lowest = 0;

  constructor(context: GroupContext) {
    this.context = context;
  }

  /** Records exist beyond the current instance: the acceptor must not vote (see above). */
  get holdsBeyondNow(): boolean {
    return this.through > this.context.instanceId;
  }

  /**
   * The current instance's value was just learned, with `checksum` (its chain). Persist the values
   * the window holds for the instances after it, as far as they run without a gap. Returns the
   * first instance this node will not hold durably once this Ready is written.
   */
  extend(future: FutureWindow, checksum: number, promised: Ballot): number {
    const context = this.context;
    let instanceId = context.instanceId + 1;
    let previous = checksum;
    if (this.through >= instanceId) {
      instanceId = this.through + 1;
      previous = this.throughChecksum;
    }
    for (;;) {
      const message = future.peek(instanceId).find((kept): kept is LearnValueMessage =>
        kept.kind === 'learnValue' && context.isMember(kept.from));
      if (message === undefined) break;
      const computed = context.chainChecksum(previous, instanceId, message.value);
      // A disagreeing chain is judged (as divergence) when the node reaches the instance, not here.
      if (message.checksum !== 0 && computed !== 0 && computed !== message.checksum) break;
      const record: AcceptorRecord = {
        instanceId, promised: compareBallots(promised, message.ballot) > 0 ? promised : message.ballot,
        accepted: message.ballot, value: message.value, checksum: computed !== 0 ? computed : message.checksum,
      };
      context.outbox.persist(record);
      if (this.records.size === 0) this.lowest = instanceId;
      this.records.set(instanceId, record);
      this.through = instanceId;
      this.throughChecksum = record.checksum;
      previous = record.checksum;
      instanceId++;
    }
    return Math.max(context.instanceId + 1, this.through + 1);
  }

  /** The record persisted ahead for `instanceId`, left in place (undefined: none). */
  peek(instanceId: number): AcceptorRecord | undefined {
    return this.records.get(instanceId);
  }

  /** The record persisted ahead for `instanceId`, once; records below it are forgotten. */
  take(instanceId: number): AcceptorRecord | undefined {
    if (this.records.size === 0) return undefined;
    // By instance, not by iterating the map: its deleted entries stay in the way until it is
    // rehashed, and that walk was the learner's largest cost per instance in a long catch-up.
    const end = Math.min(instanceId, this.through + 1);
    for (; this.lowest < end; this.lowest++) this.records.delete(this.lowest);
    const record = this.records.get(instanceId);
    if (record !== undefined) {
      this.records.delete(instanceId);
      this.lowest = instanceId + 1;
    }
    return record;
  }
}
