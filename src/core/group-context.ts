/**
 * State every role of one group shares: who we are, the membership, the current instance, the
 * checksum chain, the local clock reading, and the outbox. The roles read and update it; only
 * GroupCore moves the instance forward.
 */
import type { ChecksumFunction, GroupCoreConfig } from './config.js';
import type { PaxosMessage } from './messages.js';
import { Outbox } from './outbox.js';
import { NULL_BALLOT, type Ballot } from './ballot.js';

export class GroupContext {
  readonly config: GroupCoreConfig;
  readonly outbox = new Outbox();
  /** The instance this node is deciding; everything below it is chosen and executed here. */
  instanceId: number;
  /** Checksum chain up to instanceId - 1 (0: unknown, adopted from the next peer that knows it). */
  lastChecksum: number;
  /** A ballot under which the value chosen at instanceId - 1 was accepted (null ballot: unknown). */
  previousChosenBallot: Ballot = NULL_BALLOT;
  /** The node's monotonic clock, as of the last tick. */
  nowMs = 0;
  private memberList: readonly number[];
  private memberSet: ReadonlySet<number>;

  constructor(config: GroupCoreConfig, instanceId: number, lastChecksum: number) {
    this.config = config;
    this.instanceId = instanceId;
    this.lastChecksum = lastChecksum;
    this.memberList = [...config.members];
    this.memberSet = new Set(config.members);
  }

  /** The membership from the next instance on (a membership change was executed). */
  setMembers(members: readonly number[]): void {
    this.memberList = [...members];
    this.memberSet = new Set(members);
  }

  get nodeId(): number {
    return this.config.nodeId;
  }

  /** Voting members, this node included when it is one. Majorities are counted over this set. */
  get members(): readonly number[] {
    return this.memberList;
  }

  get majority(): number {
    return Math.floor(this.memberList.length / 2) + 1;
  }

  isMember(nodeId: number): boolean {
    return this.memberSet.has(nodeId);
  }

  /** Send to every member but this node. */
  broadcastToOthers(message: PaxosMessage): void {
    for (const member of this.memberList) {
      if (member !== this.config.nodeId) this.outbox.send(member, message);
    }
  }

  /** Chain `value` onto `previous`; an unknown previous checksum keeps the chain unknown. */
  chainChecksum(previous: number, instanceId: number, value: Uint8Array): number {
    if (instanceId > 0 && previous === 0) return 0;
    return chainStep(this.config.checksum, previous, value);
  }

  randomBetween(minMs: number, maxMs: number): number {
    return this.config.random.int(minMs, maxMs + 1);
  }
}

/**
 * One link of the checksum chain: CRC-32 of the value, seeded with the previous link. 0 means
 * "unknown" on the wire and on disk, so a CRC that happens to be 0 is stored as 1; otherwise one
 * unlucky value would switch checking off for the rest of the log.
 */
export function chainStep(checksum: ChecksumFunction, previous: number, value: Uint8Array): number {
  const link = checksum(value, previous) >>> 0;
  return link === 0 ? 1 : link;
}
