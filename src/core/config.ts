/**
 * Protocol constants and the configuration of one group's core. Defaults are PhxPaxos's; every
 * duration is in milliseconds of the node's monotonic clock.
 */
import type { Incarnation } from './proposal-identity.js';
import type { Random } from '../util/random.js';

export interface ProtocolTiming {
  readonly prepareTimeoutStartMs: number;
  readonly prepareTimeoutMaxMs: number;
  readonly acceptTimeoutStartMs: number;
  readonly acceptTimeoutMaxMs: number;
  /** After a rejected round the proposer retries after a random delay in [min, max]. */
  readonly retryDelayMinMs: number;
  readonly retryDelayMaxMs: number;
  /** A learner asks its peers whether it is behind every [min, max] ms. */
  readonly askForLearnMinMs: number;
  readonly askForLearnMaxMs: number;
  /** A teacher's lock is released when the learner neither confirms nor acks for this long. */
  readonly teachLockTimeoutMs: number;
  /** A teaching session ends when no ack arrives for this long. */
  readonly teachAckTimeoutMs: number;
  /** How many instances a teacher may stream beyond the last ack. */
  readonly teachAckLead: number;
  /**
   * Bytes of values a teacher lets a learner hold beyond its last ack, reads in flight included
   * (teacher.ts); a learner acks every quarter of its own at the latest, or once the stream goes
   * quiet (learner.ts), so members may use different figures.
   */
  readonly teachBytesBeyondAck: number;
  /** A learner acks every this many instances. */
  readonly learnAckLead: number;
  /** Prepare/accept/chosen/learn messages for at most this many future instances are kept. */
  readonly futureWindowInstances: number;
  /**
   * An instance that holds a locally accepted value but stays undecided, with no proposal running
   * here, for a random time in [min, max] is finished by proposing a no-op (phase 1 adopts the
   * accepted value). Without this, a value chosen just before its proposer crashed waits for the
   * next proposal to be learned.
   */
  readonly stallMinMs: number;
  readonly stallMaxMs: number;
  /** First delay before re-executing a value whose execution failed; doubles up to the max. */
  readonly executeRetryStartMs: number;
  readonly executeRetryMaxMs: number;
}

export const DEFAULT_TIMING: ProtocolTiming = Object.freeze({
  prepareTimeoutStartMs: 2000,
  prepareTimeoutMaxMs: 8000,
  acceptTimeoutStartMs: 1000,
  acceptTimeoutMaxMs: 8000,
  retryDelayMinMs: 10,
  retryDelayMaxMs: 39,
  askForLearnMinMs: 2500,
  askForLearnMaxMs: 2999,
  teachLockTimeoutMs: 5000,
  teachAckTimeoutMs: 5000,
  teachAckLead: 1000,
  teachBytesBeyondAck: 16 * 1024 * 1024,
  learnAckLead: 50,
  futureWindowInstances: 1500,
  stallMinMs: 3000,
  stallMaxMs: 4000,
  executeRetryStartMs: 10,
  executeRetryMaxMs: 1000,
});

/** CRC-32 of `data` continuing from `seed` (production passes `zlib.crc32`). */
export type ChecksumFunction = (data: Uint8Array, seed: number) => number;

/**
 * Deliberate bugs, switched on only by the simulator's canary runs to prove its checkers fail.
 * Production code never constructs these; they are not part of any public option.
 */
export interface CoreFaults {
  /** The acceptor's promise is not reloaded after a restart. */
  readonly forgetPromise?: boolean;
  /** The acceptor accepts ballots below its promise. */
  readonly acceptLowerBallot?: boolean;
  /** A chosen notification is learned without comparing it to the local accepted ballot. */
  readonly learnUnchecked?: boolean;
  /**
   * PhxPaxos's rule: a prepare or accept for now+1 teaches `now` on ballot equality alone, without
   * the checksum condition (see learnFromNextAccept). Rare to hit: about 1 seed in 2,500.
   */
  readonly learnNextByBallotOnly?: boolean;
  /**
   * A proposer recognises its value among the chosen ones by equal bytes (PhxPaxos), not by its
   * identity: two callers proposing the same bytes are both told their value was chosen.
   */
  readonly ownByBytes?: boolean;
  /**
   * The learner never asks early (after a sign that it is behind) and asks periodically ten times
   * less often, and the teacher offers nothing to a member it sees behind: a node that must learn
   * before it can vote keeps its majority waiting for half a minute (the stall checker's canary).
   */
  readonly slowCatchUp?: boolean;
}

export interface GroupCoreConfig {
  readonly groupIndex: number;
  readonly nodeId: number;
  /** Voting members, this node included. Majorities are counted over this set. */
  readonly members: readonly number[];
  /** Followers this node pushes every chosen value to, once it executed it (PhxPaxos TransmitToFollower). */
  readonly followers?: readonly number[];
  readonly random: Random;
  /**
   * 64 random bits that tell this process life from every other life of this node: part of every
   * proposal's identity. Drawn from the OS in production, from the seed under simulation.
   */
  readonly incarnation: Incarnation;
  readonly checksum: ChecksumFunction;
  readonly timing: ProtocolTiming;
  readonly faults?: CoreFaults;
}
