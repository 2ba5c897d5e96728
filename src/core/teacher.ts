/**
 * The teaching side of catch-up (PhxPaxos LearnerSender): one learner at a time, streaming chosen
 * values read from the log, at most `ackLead` instances beyond the learner's last ack. The lock is
 * taken when we answer an ask-for-learn and kept only if the learner confirms; a session ends when
 * it is complete, when acks stop, or when the log cannot supply a value.
 */
import type { GroupContext } from './group-context.js';
import type { AskForLearnMessage, ConfirmAskForLearnMessage, LearnValueAckMessage } from './messages.js';
import type { AcceptorRecord, ChosenValue } from './ready.js';
import { isNullBallot } from './ballot.js';
import { DEFAULT_TIMING } from './config.js';

interface TeachingSession {
  readonly learner: number;
  readonly beginInstanceId: number;
  confirmed: boolean;
  /** Next instance to request from the log. */
  nextToRead: number;
  /** Next instance to send; reads come back in order. */
  nextToSend: number;
  /** The learner holds everything below this. */
  ackedInstanceId: number;
  lastActivityAt: number;
  /** Values sent at or beyond the last ack, oldest first, with their sizes (see timing.teachBytesBeyondAck). */
  readonly unacked: { instanceId: number; bytes: number }[];
  unackedBytes: number;
  /** Values sent in this session, and the largest of them: what each read in flight may bring. */
  sentValues: number;
  largestBytes: number;
  /** Reads requested and not yet answered. */
  readsInFlight: number;
}

/** Log reads a teacher keeps requested beyond the values it has sent, at most (see `pump`). */
const READS_IN_FLIGHT = 256;
/**
 * Bytes of values a teacher lets the learner hold beyond its last ack by default, reads in flight
 * included (timing.teachBytesBeyondAck): the ack lead counts instances, and a window of large
 * values would otherwise fill the learner's memory (its future window keeps what it cannot execute
 * yet).
 */
export const TEACH_BYTES_BEYOND_ACK = DEFAULT_TIMING.teachBytesBeyondAck;
/** Reads of a session's start, before any value told the teacher how large they are. */
const FIRST_READS = 32;

export class Teacher {
  private readonly context: GroupContext;
  private session: TeachingSession | null = null;
  private ackLead: number;
  minChosenInstanceId: number;

  constructor(context: GroupContext, minChosenInstanceId: number) {
    this.context = context;
    this.ackLead = context.config.timing.teachAckLead;
    this.minChosenInstanceId = minChosenInstanceId;
  }

  get teaching(): number | null {
    return this.session?.confirmed ? this.session.learner : null;
  }

  /**
   * A peer at `message.instanceId` asks whether it is behind. `previous` is the value chosen at our
   * instance - 1, when we still hold it in memory (for the one-behind shortcut).
   */
  onAskForLearn(message: AskForLearnMessage, previous: ChosenValue | null): void {
    const context = this.context;
    const asker = message.from;
    if (message.instanceId >= context.instanceId) return;
    if (this.isStaleAsk(message)) return;
    if (message.instanceId >= this.minChosenInstanceId && !this.tryLock(asker, message.instanceId)) {
      this.sendPreviousAlone(asker, message.instanceId, previous);
      return;
    }
    this.offer(asker, message.instanceId);
  }

  /** Tell a learner at `instanceId` where this node is (and where its log starts): the offer to teach. */
  private offer(learner: number, instanceId: number): void {
    this.context.outbox.send(learner, {
      kind: 'sendNowInstanceId', from: this.context.nodeId, instanceId,
      nowInstanceId: this.context.instanceId, minChosenInstanceId: this.minChosenInstanceId,
    });
  }

  /**
   * A member sent a prepare or accept for `instanceId`, below this node's instance: it is behind.
   * Answered as an ask from it would be, except that it never replaces a session an ask opened:
   * not this member's confirmed one (a catching-up proposer keeps preparing its current instance,
   * and a new offer would stop the stream), not this member's offer for a later instance (the
   * message is older than that ask, and its confirm would no longer match), and not another
   * learner's offer, even unconfirmed (an ask means a confirm is coming; a prepare does not, and
   * the member may be learning from another teacher). A busy teacher still sends a member one
   * instance behind that value alone.
   */
  onMemberBehind(member: number, instanceId: number, previous: ChosenValue | null): void {
    // The slow-catch-up canary leaves catching up to the learner's periodic asks alone.
    if (this.context.config.faults?.slowCatchUp === true) return;
    if (instanceId >= this.context.instanceId) return;
    const session = this.session;
    // Below the log's cleaned start no session is opened: the answer points the member to a checkpoint.
    if (session !== null && instanceId >= this.minChosenInstanceId) {
      if (session.learner !== member) {
        this.sendPreviousAlone(member, instanceId, previous);
        return;
      }
      if (session.confirmed || instanceId < session.beginInstanceId) return;
      if (instanceId === session.beginInstanceId) {
        // Offered already (the offer may have been lost): again, without renewing the lock, so a
        // member that keeps preparing cannot hold it past its timeout without ever confirming.
        this.offer(member, instanceId);
        return;
      }
    }
    this.onAskForLearn({ kind: 'askForLearn', from: member, instanceId }, previous);
  }

  onConfirmAskForLearn(message: ConfirmAskForLearnMessage): void {
    const session = this.session;
    if (session === null || session.confirmed) return;
    if (session.learner !== message.from || session.beginInstanceId !== message.instanceId) return;
    session.confirmed = true;
    session.lastActivityAt = this.context.nowMs;
    this.pump();
  }

  onLearnValueAck(message: LearnValueAckMessage): void {
    const session = this.session;
    if (session === null || !session.confirmed || session.learner !== message.from) return;
    if (message.instanceId <= session.ackedInstanceId) return;
    session.ackedInstanceId = message.instanceId;
    for (let oldest = session.unacked[0]; oldest !== undefined && oldest.instanceId < message.instanceId;
      oldest = session.unacked[0]) {
      session.unackedBytes -= oldest.bytes;
      session.unacked.shift();
    }
    session.lastActivityAt = this.context.nowMs;
    if (message.instanceId > session.nextToSend) {
      if (message.instanceId >= this.context.instanceId) {
        // The learner has everything we have: it caught up some other way.
        this.endSession(true);
        return;
      }
      // It holds more than we sent (values of an earlier session, written ahead): go on from there.
      // Ending the session instead left it waiting for its next ask, seconds, again and again.
      session.nextToSend = message.instanceId;
      session.nextToRead = message.instanceId;
    }
    this.pump();
  }

  /**
   * Reads the driver did not make (they would have passed the Ready's readBytesLimit): `instanceIds`
   * are the tail of the Ready's reads, in order. The driver reports them before it hands over the
   * values it did read, so reading resumes at the first of them. This does not pump: the values
   * handed over next do, each sized by what they weigh; when there are none (the budget was spent),
   * the learner's next ack does.
   */
  onLogReadsDeferred(instanceIds: readonly number[]): void {
    const session = this.session;
    const first = instanceIds[0];
    if (session === null || !session.confirmed || first === undefined) return;
    // Counted off whatever Ready they came from, as onLogRead does: reads this session gave up (an
    // ack that moved it past them) must not stay counted in flight, or it would stop reading.
    session.readsInFlight = Math.max(0, session.readsInFlight - instanceIds.length);
    // A deferral from a Ready of an earlier session, or of reads this one gave up, is out of range.
    if (first < session.nextToSend || first >= session.nextToRead) return;
    session.nextToRead = first;
  }

  /** A value requested through `Ready.reads` came back (undefined: not in the log). */
  onLogRead(instanceId: number, record: AcceptorRecord | undefined): void {
    const session = this.session;
    if (session === null || !session.confirmed) return;
    if (session.readsInFlight > 0) session.readsInFlight--;
    if (instanceId !== session.nextToSend) return;
    if (record === undefined || record.instanceId !== instanceId || isNullBallot(record.accepted)) {
      this.endSession(false);
      return;
    }
    session.nextToSend++;
    session.unacked.push({ instanceId, bytes: record.value.length });
    session.unackedBytes += record.value.length;
    session.sentValues++;
    if (record.value.length > session.largestBytes) session.largestBytes = record.value.length;
    this.context.outbox.send(session.learner, {
      kind: 'learnValue', from: this.context.nodeId, instanceId, ballot: record.accepted, value: record.value,
      checksum: record.checksum, needAck: true,
    });
    if (session.nextToSend >= this.context.instanceId) this.endSession(true);
    else this.pump();
  }

  /**
   * Request more values from the log while the ack window allows, at most READS_IN_FLIGHT ahead of
   * what was sent: a Ready's reads are awaited before the group handles its next Ready, so a
   * whole window read at once on a slow disk would hold this node's own consensus work for seconds
   * (simulator seed 1326). Each value sent tops the reads up again. Bytes bound the window too:
   * reads stop while what the learner has not acked, and what the reads in flight may bring (each
   * at the largest size sent so far: an average would let a few large values among small ones
   * overshoot), reach timing.teachBytesBeyondAck. The Ready also carries the bytes the budget has
   * left (readBytesLimit): the driver stops reading there, whatever the estimate said, and the reads
   * it did not make come back through onLogReadsDeferred. Because that limit, not the estimate,
   * is what bounds the bytes, one read is always allowed while none is in flight and the budget is
   * not spent: a value larger than the budget still goes alone, and a large value sent earlier in
   * the session (which keeps the estimate high) cannot leave a few small unacked values waiting
   * for an ack the learner only sends after learnAckLead values or a quarter of the budget.
   */
  pump(): void {
    const session = this.session;
    if (session === null || !session.confirmed) return;
    const limit = Math.min(this.context.instanceId, session.ackedInstanceId + this.ackLead,
      session.nextToSend + READS_IN_FLIGHT);
    // Until a value was sent, sizes are unknown: a few reads first.
    const maxReads = session.sentValues === 0 ? FIRST_READS : READS_IN_FLIGHT;
    const budget = this.context.config.timing.teachBytesBeyondAck;
    while (session.nextToRead < limit && session.readsInFlight < maxReads &&
      (session.unackedBytes + (session.readsInFlight + 1) * session.largestBytes <= budget ||
        (session.readsInFlight === 0 && session.unackedBytes < budget))) {
      session.readsInFlight++;
      this.context.outbox.read(session.nextToRead++);
    }
    // The estimate above counts unread values at the largest size seen so far, which a run of
    // small values followed by large ones defeats (256 reads of up to maxValueBytes each): what
    // the reads may really bring is capped at what the budget has left. Every value sent and every
    // ack pumps, so the last pump before the Ready is taken knows what is unacked then.
    this.context.outbox.limitReadBytes(budget - session.unackedBytes);
  }

  tick(nowMs: number): void {
    const session = this.session;
    if (session === null) return;
    const timing = this.context.config.timing;
    const timeout = session.confirmed ? timing.teachAckTimeoutMs : timing.teachLockTimeoutMs;
    if (nowMs - session.lastActivityAt < timeout) return;
    if (session.confirmed && this.ackLead > timing.learnAckLead * 2) this.ackLead -= timing.learnAckLead;
    this.session = null;
  }

  nextTimerAt(): number | undefined {
    const session = this.session;
    if (session === null) return undefined;
    const timing = this.context.config.timing;
    return session.lastActivityAt + (session.confirmed ? timing.teachAckTimeoutMs : timing.teachLockTimeoutMs);
  }

  /**
   * An ask from the learner of the confirmed session that it cannot have sent since: a learner
   * never goes back below where its session began, nor more than one below what it acked (an ack
   * names the instance after the one just learned, whose record is durable before the ack leaves;
   * a learner that restarts resumes at that instance at the lowest). Such an ask is an old one the
   * network duplicated or held back; answering it would replace a session that is streaming with
   * one the learner, busy with this one, never confirms (simulator reordering).
   */
  private isStaleAsk(message: AskForLearnMessage): boolean {
    const session = this.session;
    if (session === null || !session.confirmed || session.learner !== message.from) return false;
    return message.instanceId < Math.max(session.beginInstanceId, session.ackedInstanceId - 1);
  }

  private tryLock(learner: number, beginInstanceId: number): boolean {
    // A learner that asks again (it lost our answer, or its timer ran out) replaces its own session
    // (an old ask of its own, duplicated or held back by the network, does not: isStaleAsk).
    // A session nobody confirmed yet is not held against another learner either: a learner that
    // asks every peer and confirms one would otherwise hold every other peer's lock, and two
    // learners asking in turn could starve the second forever (simulator seed 522).
    if (this.session !== null && this.session.learner !== learner && this.session.confirmed) return false;
    this.session = {
      learner, beginInstanceId, confirmed: false, nextToRead: beginInstanceId, nextToSend: beginInstanceId,
      ackedInstanceId: beginInstanceId, lastActivityAt: this.context.nowMs, unacked: [], unackedBytes: 0,
      sentValues: 0, largestBytes: 0, readsInFlight: 0,
    };
    return true;
  }

  /** A learner one instance behind gets that value without a session (this node teaches another). */
  private sendPreviousAlone(learner: number, instanceId: number, previous: ChosenValue | null): void {
    if (instanceId !== this.context.instanceId - 1 || previous === null) return;
    this.context.outbox.send(learner, {
      kind: 'learnValue', from: this.context.nodeId, instanceId: previous.instanceId, ballot: previous.ballot,
      value: previous.value, checksum: previous.checksum, needAck: false,
    });
  }

  private endSession(completed: boolean): void {
    if (completed) this.ackLead = this.context.config.timing.teachAckLead;
    this.session = null;
  }
}
