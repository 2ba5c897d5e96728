/**
 * The messages of one Paxos group, as the core sees them (the transport frames and encodes them).
 * Field names follow PhxPaxos's PaxosMsg where they mean the same thing; misspellings are fixed.
 * Every message names its sender and the instance it is about.
 */
import type { Ballot } from './ballot.js';

interface MessageBase {
  /** The sending node. */
  readonly from: number;
  readonly instanceId: number;
}

/** Phase 1a. */
export interface PrepareMessage extends MessageBase {
  readonly kind: 'prepare';
  readonly ballot: Ballot;
}

/** Phase 1b. `rejectedBy` is the promised proposal id when the acceptor refused, 0 when it promised. */
export interface PrepareReplyMessage extends MessageBase {
  readonly kind: 'prepareReply';
  readonly ballot: Ballot;
  readonly rejectedBy: number;
  /** The acceptor's accepted ballot (null ballot when it accepted nothing in this instance). */
  readonly acceptedBallot: Ballot;
  readonly acceptedValue: Uint8Array | null;
}

/**
 * Phase 2a. `lastChecksum` is the sender's checksum chain up to instanceId - 1 (0: unknown).
 * `previousBallot` is a ballot under which the value the sender learned for instanceId - 1 was
 * accepted (the null ballot when it does not know): a receiver still deciding that instance whose
 * acceptor accepted exactly that ballot holds the chosen value, since one ballot names one value.
 */
export interface AcceptMessage extends MessageBase {
  readonly kind: 'accept';
  readonly ballot: Ballot;
  readonly value: Uint8Array;
  readonly lastChecksum: number;
  readonly previousBallot: Ballot;
}

/** Phase 2b. */
export interface AcceptReplyMessage extends MessageBase {
  readonly kind: 'acceptReply';
  readonly ballot: Ballot;
  readonly rejectedBy: number;
}

/**
 * PhxPaxos's ProposerSendSuccess: the value accepted under `ballot` was chosen. A receiver learns it
 * only if its own acceptor accepted exactly that ballot in this instance.
 */
export interface ChosenMessage extends MessageBase {
  readonly kind: 'chosen';
  readonly ballot: Ballot;
  readonly lastChecksum: number;
}

/** A learner asks every member whether it is behind; `instanceId` is the asker's current instance. */
export interface AskForLearnMessage extends MessageBase {
  readonly kind: 'askForLearn';
}

/** A peer that is ahead answers with where it is; `instanceId` echoes the asker's. */
export interface SendNowInstanceIdMessage extends MessageBase {
  readonly kind: 'sendNowInstanceId';
  readonly nowInstanceId: number;
  readonly minChosenInstanceId: number;
}

/** The learner picks that peer as its teacher; `instanceId` is where streaming should begin. */
export interface ConfirmAskForLearnMessage extends MessageBase {
  readonly kind: 'confirmAskForLearn';
}

/**
 * One chosen value, streamed by a teacher (or sent alone by the one-behind shortcut).
 * `checksum` is the teacher's chain *including* this instance (0: unknown), so even the first value
 * of a stream is verified.
 */
export interface LearnValueMessage extends MessageBase {
  readonly kind: 'learnValue';
  readonly ballot: Ballot;
  readonly value: Uint8Array;
  readonly checksum: number;
  readonly needAck: boolean;
}

/** The learner reports its current instance to its teacher, opening the send window. */
export interface LearnValueAckMessage extends MessageBase {
  readonly kind: 'learnValueAck';
}

/**
 * Checkpoint transfer (PhxPaxos AskforCheckpoint / SendCheckpoint / SendCheckpointAck). The core
 * never acts on these: the node routes them to the group's checkpoint sender and receiver. They
 * travel with the group's other messages so one connection, framing and identity check serve both.
 *
 * A learner whose next instance is below a peer's min chosen instance asks that peer for a
 * checkpoint; `instanceId` is the asker's current instance.
 */
export interface AskForCheckpointMessage extends MessageBase {
  readonly kind: 'askForCheckpoint';
}

export type CheckpointPart = 'begin' | 'data' | 'end';

/**
 * One piece of a checkpoint: `begin` carries the manifest (the state machines, their instances,
 * the group's system variables), `data` a piece of one state machine's snapshot, `end` the totals
 * to verify the whole. `instanceId` is the checkpoint's instance; `session` is the sender's random
 * name for this transfer; pieces are numbered from 0 and each carries the CRC-32 of `data`.
 */
export interface CheckpointChunkMessage extends MessageBase {
  readonly kind: 'checkpointChunk';
  readonly session: number;
  readonly sequence: number;
  readonly part: CheckpointPart;
  /** The state machine a `data` piece belongs to (0 for `begin` and `end`). */
  readonly stateMachineId: number;
  readonly data: Uint8Array;
  readonly checksum: number;
}

/** The receiver holds every piece up to `sequence` (`ok`), or gives the session up (`!ok`). */
export interface CheckpointAckMessage extends MessageBase {
  readonly kind: 'checkpointAck';
  readonly session: number;
  readonly sequence: number;
  readonly ok: boolean;
}

export type CheckpointMessage = AskForCheckpointMessage | CheckpointChunkMessage | CheckpointAckMessage;

export function isCheckpointMessage(message: PaxosMessage): message is CheckpointMessage {
  return message.kind === 'askForCheckpoint' || message.kind === 'checkpointChunk' || message.kind === 'checkpointAck';
}

export type PaxosMessage =
  | PrepareMessage
  | PrepareReplyMessage
  | AcceptMessage
  | AcceptReplyMessage
  | ChosenMessage
  | AskForLearnMessage
  | SendNowInstanceIdMessage
  | ConfirmAskForLearnMessage
  | LearnValueMessage
  | LearnValueAckMessage
  | CheckpointMessage;

export type MessageKind = PaxosMessage['kind'];

export const MESSAGE_KINDS: readonly MessageKind[] = [
  'prepare', 'prepareReply', 'accept', 'acceptReply', 'chosen', 'askForLearn',
  'sendNowInstanceId', 'confirmAskForLearn', 'learnValue', 'learnValueAck',
  'askForCheckpoint', 'checkpointChunk', 'checkpointAck',
];
