/**
 * The learner's catch-up side (PhxPaxos learner.cpp): it notices that it is behind, asks every
 * member, picks the first peer that answers as its teacher, receives the streamed values and
 * acks them. Learning itself (recording, executing, advancing) is GroupCore's job.
 */
import type { GroupContext } from './group-context.js';
import type { SendNowInstanceIdMessage } from './messages.js';
import { DEFAULT_TIMING, type ProtocolTiming } from './config.js';

/**
 * Bytes of streamed values after which the learner acks even before `learnAckLead` instances: the
 * teacher stops reading at timing.teachBytesBeyondAck unacked, so with large values an ack every
 * `learnAckLead` instances would never come and each session would wait out teachAckTimeoutMs.
 * A quarter of the teacher's budget keeps its reads flowing while the acks travel.
 */
export function learnAckBytes(timing: ProtocolTiming): number {
  return Math.max(1, Math.floor(timing.teachBytesBeyondAck / 4));
}

/** learnAckBytes under the default timing. */
export const LEARN_ACK_BYTES = learnAckBytes(DEFAULT_TIMING);

/**
 * A catch-up session whose teacher sent no value for this many retry delays after the confirm is
 * taken for dead: 390 ms with the default timing. The first value follows the confirm by one round
 * trip; this is two and a half of the simulator's slowest round trips (80 ms each way) and hundreds
 * on a LAN, yet well under the periodic ask (2.5-3 s), which is all a lost confirm or first value
 * would otherwise leave (simulator seed 60: 10 s). Once values flow, the session lives until the
 * periodic ask, as before: one large value may take longer than this to arrive over a slow link,
 * and a second teacher streaming the same values would only halve what each gets.
 */
export const SESSION_SILENCE_RETRY_DELAYS = 10;

/**
 * An early ask (one not due to the periodic timer) waits until the last ask is this many retry
 * delays old: 156 ms with the default timing, about one round trip of the simulator's slowest
 * network. Asking again sooner cannot help, the answers to the last ask may still be on their way;
 * without the spacing, a member preparing the next instance again and again would make this node
 * broadcast an ask every retry delay for as long as it does.
 */
export const EARLY_ASK_SPACING_RETRY_DELAYS = 4;

/**
 * Streamed values left unacked for this many retry delays are acked anyway: 39 ms with the default
 * timing. The rule above (learnAckLead values, or learnAckBytes) is this node's own settings; a
 * teacher configured with a smaller byte budget or ack lead stops sending before the learner's
 * rule fires, and without this both would wait out teachAckTimeoutMs (5 s) for each window of
 * values, then start again from an ask. Under a steady stream the rule acks long before this.
 */
export const QUIET_ACK_RETRY_DELAYS = 1;

/**
 * A node with reason to think it is behind (see askSoon) that asked and got no session asks again
 * after this many retry delays (156 ms with the default timing: the spacing of early asks), then
 * after twice as long each time, up to the periodic ask, until it moves to its next instance. On a
 * lossy network the ask, the answer, the confirm or the first value can each be lost; before, the
 * next chance was the periodic ask or the next prepare of a peer, seconds apart (simulator seed
 * 794: 9.9 s without a decision while 19% of the messages were lost).
 */
export const PURSUIT_FIRST_RETRY_DELAYS = EARLY_ASK_SPACING_RETRY_DELAYS;

export class Learner {
  private readonly context: GroupContext;
  /** The highest instance any peer is known to be at. */
  highestSeenInstanceId = 0;
  /** A teacher was confirmed and has not gone quiet yet. */
  isLearning = false;
  /** Set when a peer's log no longer holds our next instance; catching up then needs a checkpoint. */
  needsCheckpointFrom: number | null = null;
  private askAt: number;
  private lastAckedInstanceId = -1;
  /** Bytes of the streamed values counted since the last ack (see learnAckBytes). */
  private bytesSinceAck = 0;
  /** Where the current teacher was when the session began: the stream ends there. */
  private learningUntil = 0;
  /** The teacher this node confirmed last (null: none yet). */
  private confirmedTeacher: number | null = null;
  /** When the current session last showed life (its confirm, then each streamed value). */
  private sessionHeardAt = -Infinity;
  /** The current session streamed a value: past that, it is not taken for dead by silence. */
  private sessionStreamed = false;
  /** When this node last broadcast an ask (-Infinity: never). */
  private lastAskAt = -Infinity;
  /** The ack the rule held back (see QUIET_ACK_RETRY_DELAYS), and since when; null: none. */
  private heldAck: { readonly teacher: number; readonly instanceId: number } | null = null;
  private heldAckSince = 0;
  /** This node has reason to think it is behind and has not moved on since (see PURSUIT_FIRST_RETRY_DELAYS). */
  private pursuing = false;
  /** The wait before the next pursuit ask. */
  private pursuitDelayMs = 0;
  /** When the pursuit's next ask is due (askAt, unless something else moved it since). */
  private pursuitAt = -Infinity;

  constructor(context: GroupContext) {
    this.context = context;
    this.askAt = context.nowMs + this.askInterval();
  }

  /** PhxPaxos IsIMLatest: a node two or more instances behind does not start proposals. */
  get isLatest(): boolean {
    return this.context.instanceId + 1 >= this.highestSeenInstanceId;
  }

  /** Some peer is at `instanceId`; if that puts us two behind, ask soon instead of at the next timer. */
  seen(instanceId: number): void {
    if (instanceId <= this.highestSeenInstanceId) return;
    this.highestSeenInstanceId = instanceId;
    if (!this.isLatest && !this.sessionAlive) this.askSoon();
  }

  /**
   * A session is open and its teacher streamed something lately. A confirm or first value lost on
   * the way leaves `isLearning` set until the periodic ask; past the silence the session no longer
   * holds back an early ask, nor a new teacher's answer.
   */
  get sessionAlive(): boolean {
    if (!this.isLearning) return false;
    if (this.sessionStreamed) return true;
    return this.context.nowMs - this.sessionHeardAt < this.sessionSilenceMs();
  }

  private sessionSilenceMs(): number {
    return SESSION_SILENCE_RETRY_DELAYS * this.context.config.timing.retryDelayMaxMs;
  }

  /**
   * A member says this node's current instance was chosen under a ballot its acceptor did not
   * accept (it accepted another proposer's ballot, or nothing), or prepares the next instance
   * (a prepare names no chosen ballot): nothing it sent can teach this node the value, so it asks
   * for the value soon instead of at its next periodic ask. Until it learns, its acceptor cannot
   * vote on the next instance, and a group whose majority needs this node decides nothing
   * meanwhile (simulator seed 244: 8 s, seen in the stall checker's longest-wait figures).
   */
  chosenUnderAnotherBallot(): void {
    if (!this.sessionAlive) this.askSoon();
  }

  tick(nowMs: number): void {
    const held = this.heldAck;
    if (held !== null && nowMs >= this.heldAckDueAt()) this.sendAck(held.teacher, held.instanceId);
    if (nowMs < this.askAt) return;
    this.askAt = nowMs + this.askInterval();
    this.isLearning = false;
    this.askForLearn();
  }

  nextTimerAt(): number {
    return this.heldAck === null ? this.askAt : Math.min(this.askAt, this.heldAckDueAt());
  }

  /**
   * This node moved to a new instance. A session ends when it reaches where its teacher was; if
   * the group moved on meanwhile (values chosen while this node was catching up, whose messages
   * it missed), the next session starts soon rather than at the next periodic ask.
   */
  onInstanceAdvanced(): void {
    this.stopPursuit();
    if (!this.isLearning || this.context.instanceId < this.learningUntil) return;
    this.isLearning = false;
    if (!this.isLatest) this.askSoon();
  }

  /** A stream is alive: push the next ask further out (PhxPaxos ResetAskforLearnNoop). */
  postponeAsk(): void {
    this.askAt = this.context.nowMs + this.askInterval();
    this.sessionHeardAt = this.context.nowMs;
  }

  onSendNowInstanceId(message: SendNowInstanceIdMessage): void {
    const context = this.context;
    this.seen(message.nowInstanceId);
    if (message.instanceId !== context.instanceId || message.nowInstanceId <= context.instanceId) return;
    if (message.minChosenInstanceId > context.instanceId) {
      this.needsCheckpointFrom = message.from;
      return;
    }
    if (this.sessionAlive) return;
    this.isLearning = true;
    this.sessionStreamed = false;
    this.learningUntil = message.nowInstanceId;
    this.confirmedTeacher = message.from;
    this.postponeAsk();
    // Should the confirm or the first value be lost, the session falls silent: ask again soon after.
    if (this.pursuing) this.pursueAfter(this.sessionSilenceMs() + this.pursuitDelayMs);
    context.outbox.send(message.from, {
      kind: 'confirmAskForLearn', from: context.nodeId, instanceId: context.instanceId,
    });
  }

  /**
   * Ack streamed values every `learnAckLead` instances, or once learnAckBytes of values came since
   * the last ack, or QUIET_ACK_RETRY_DELAYS after the first value the rule left unacked.
   * `nextNeededInstanceId` says the learner holds everything below it durably (the ack leaves only
   * after this Ready's records are on disk); `valueBytes` is the streamed value's size.
   */
  ackStreamed(teacher: number, nextNeededInstanceId: number, valueBytes: number): void {
    const context = this.context;
    this.postponeAsk();
    if (this.isLearning) this.sessionStreamed = true;
    this.bytesSinceAck += valueBytes;
    if (nextNeededInstanceId <= this.lastAckedInstanceId) return;
    if (nextNeededInstanceId < this.lastAckedInstanceId + context.config.timing.learnAckLead &&
      this.bytesSinceAck < learnAckBytes(context.config.timing)) {
      // Held back, for the teacher of the session open now: a value of an older session's stream,
      // late or duplicated, must not take the ack away from it (its stream would then wait).
      if (this.heldAck === null) this.heldAckSince = context.nowMs;
      const to = this.isLearning && this.confirmedTeacher !== null ? this.confirmedTeacher : teacher;
      this.heldAck = { teacher: to, instanceId: nextNeededInstanceId };
      return;
    }
    this.sendAck(teacher, nextNeededInstanceId);
  }

  /**
   * A held ack leaves from a timer, in a later Ready than the records it vouches for: Readies are
   * handled in order, so those records are durable before this one's acks leave.
   */
  private sendAck(teacher: number, instanceId: number): void {
    this.lastAckedInstanceId = instanceId;
    this.bytesSinceAck = 0;
    this.heldAck = null;
    this.context.outbox.send(teacher, { kind: 'learnValueAck', from: this.context.nodeId, instanceId });
  }

  private heldAckDueAt(): number {
    return this.heldAckSince + QUIET_ACK_RETRY_DELAYS * this.context.config.timing.retryDelayMaxMs;
  }

  private askForLearn(): void {
    const context = this.context;
    this.lastAskAt = context.nowMs;
    context.broadcastToOthers({ kind: 'askForLearn', from: context.nodeId, instanceId: context.instanceId });
    if (!this.pursuing) return;
    if (this.pursuitDelayMs >= context.config.timing.askForLearnMinMs) {
      // As far apart as periodic asks: those take over, at their random interval.
      this.pursuing = false;
      return;
    }
    this.pursueAfter(this.pursuitDelayMs);
    this.pursuitDelayMs *= 2;
  }

  /** Ask again `delayMs` from now, unless an ask is due sooner anyway. */
  private pursueAfter(delayMs: number): void {
    const at = this.context.nowMs + delayMs;
    if (at >= this.askAt) return;
    this.askAt = at;
    this.pursuitAt = at;
  }

  /**
   * The node moved on: no more pursuit, and an ask it scheduled goes back to the periodic interval,
   * rather than leave as a needless ask that would also end a session just opened.
   */
  private stopPursuit(): void {
    this.pursuing = false;
    if (this.askAt === this.pursuitAt) this.askAt = this.context.nowMs + this.askInterval();
    this.pursuitAt = -Infinity;
  }

  /**
   * Ask within a retry delay, unless an ask is due sooner anyway; never sooner than
   * EARLY_ASK_SPACING_RETRY_DELAYS after the last ask.
   */
  private askSoon(): void {
    if (this.context.config.faults?.slowCatchUp === true) return;
    const retryDelayMaxMs = this.context.config.timing.retryDelayMaxMs;
    if (!this.pursuing) {
      this.pursuing = true;
      this.pursuitDelayMs = PURSUIT_FIRST_RETRY_DELAYS * retryDelayMaxMs;
    }
    const soon = Math.max(this.context.nowMs + this.context.randomBetween(1, retryDelayMaxMs),
      this.lastAskAt + EARLY_ASK_SPACING_RETRY_DELAYS * retryDelayMaxMs);
    if (soon < this.askAt) this.askAt = soon;
  }

  private askInterval(): number {
    const timing = this.context.config.timing;
    const interval = this.context.randomBetween(timing.askForLearnMinMs, timing.askForLearnMaxMs);
    return this.context.config.faults?.slowCatchUp === true ? interval * 10 : interval;
  }
}
