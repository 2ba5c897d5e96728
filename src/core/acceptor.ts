/**
 * The acceptor (PhxPaxos acceptor.cpp). Its promise is kept across instances, which is what lets a
 * proposer that holds the promises skip phase 1 for the following instances. Every change is
 * persisted before the reply that reveals it leaves: a promise or accept reply is marked `afterPersist`
 * (persist-order.ts).
 */
import { ballotsEqual, compareBallots, isNullBallot, NULL_BALLOT, type Ballot } from './ballot.js';
import type { GroupContext } from './group-context.js';
import type { AcceptMessage, PrepareMessage } from './messages.js';
import type { AcceptorRecord } from './ready.js';
import { EMPTY_BYTES } from '../util/bytes.js';

export interface AcceptorState {
  readonly promised: Ballot;
  readonly accepted: Ballot;
  readonly value: Uint8Array;
  readonly checksum: number;
}

export class Acceptor {
  private readonly context: GroupContext;
  promised: Ballot;
  accepted: Ballot = NULL_BALLOT;
  acceptedValue: Uint8Array = EMPTY_BYTES;
  /** Checksum chain including the accepted value. */
  acceptedChecksum = 0;

  constructor(context: GroupContext, restored: AcceptorState) {
    this.context = context;
    this.promised = restored.promised;
    this.accepted = restored.accepted;
    this.acceptedValue = restored.value;
    this.acceptedChecksum = restored.checksum;
  }

  get hasAccepted(): boolean {
    return !isNullBallot(this.accepted);
  }

  onPrepare(message: PrepareMessage): void {
    const context = this.context;
    if (compareBallots(message.ballot, this.promised) >= 0) {
      this.promised = message.ballot;
      this.persist();
      context.outbox.send(message.from, {
        kind: 'prepareReply', from: context.nodeId, instanceId: context.instanceId, ballot: message.ballot,
        rejectedBy: 0, acceptedBallot: this.accepted, acceptedValue: this.hasAccepted ? this.acceptedValue : null,
      });
    } else {
      context.outbox.send(message.from, {
        kind: 'prepareReply', from: context.nodeId, instanceId: context.instanceId, ballot: message.ballot,
        rejectedBy: this.promised.proposalId, acceptedBallot: NULL_BALLOT, acceptedValue: null,
      });
    }
  }

  onAccept(message: AcceptMessage): void {
    const context = this.context;
    const allowed = compareBallots(message.ballot, this.promised) >= 0 || context.config.faults?.acceptLowerBallot;
    if (allowed) {
      this.promised = message.ballot;
      this.accepted = message.ballot;
      this.acceptedValue = message.value;
      this.acceptedChecksum = context.chainChecksum(context.lastChecksum, context.instanceId, message.value);
      this.persist();
      context.outbox.send(message.from, {
        kind: 'acceptReply', from: context.nodeId, instanceId: context.instanceId, ballot: message.ballot, rejectedBy: 0,
      });
    } else {
      context.outbox.send(message.from, {
        kind: 'acceptReply', from: context.nodeId, instanceId: context.instanceId, ballot: message.ballot,
        rejectedBy: this.promised.proposalId,
      });
    }
  }

  /**
   * Start the current instance from a record already written for it (learned ahead): memory then
   * matches the disk. The promise is never lowered.
   */
  resumeFrom(record: AcceptorRecord): void {
    if (compareBallots(record.promised, this.promised) > 0) this.promised = record.promised;
    this.accepted = record.accepted;
    this.acceptedValue = record.value;
    this.acceptedChecksum = record.checksum;
  }

  /** Move to the next instance: the promise stays, the accepted value does not. */
  newInstance(): void {
    this.accepted = NULL_BALLOT;
    this.acceptedValue = EMPTY_BYTES;
    this.acceptedChecksum = 0;
  }

  /**
   * A value learned from a teacher replaces whatever this acceptor held for the instance. The promise
   * becomes the higher of the two ballots, so the newest record always carries the highest promise
   * this node ever made (a restarted proposer starts above it). Returns the record to persist.
   */
  adoptLearned(ballot: Ballot, value: Uint8Array, checksum: number): AcceptorRecord {
    // Already this acceptor's durable state (a record written ahead, see learn-ahead.ts): one
    // ballot names one value, so there is nothing new to write.
    if (ballotsEqual(ballot, this.accepted) && compareBallots(this.promised, ballot) >= 0) return this.record();
    if (compareBallots(ballot, this.promised) > 0) this.promised = ballot;
    this.accepted = ballot;
    this.acceptedValue = value;
    this.acceptedChecksum = checksum;
    const record = this.record();
    this.context.outbox.persist(record);
    return record;
  }

  record(): AcceptorRecord {
    return {
      instanceId: this.context.instanceId,
      promised: this.promised,
      accepted: this.accepted,
      value: this.acceptedValue,
      checksum: this.acceptedChecksum,
    };
  }

  private persist(): void {
    this.context.outbox.persist(this.record());
  }
}
