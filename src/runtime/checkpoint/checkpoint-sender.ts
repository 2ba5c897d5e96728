/**
 * The sending side of checkpoint transfer (PhxPaxos CheckpointSender), one per group.
 *
 * A learner below this node's min chosen instance cannot be taught from the log; it asks for a
 * checkpoint. The sender opens every state machine's snapshot, sends a `begin` piece with the
 * manifest, then each snapshot in pieces of `chunkBytes`, never more than `windowChunks` beyond the
 * last ack, then an `end` piece with each snapshot's size and CRC-32. It serves one receiver at a
 * time (PhxPaxos #170: several at once raced); a second asker is ignored and asks again later. A
 * session ends when the receiver acks the end, refuses a piece, or stops acking for `ackTimeoutMs`;
 * the snapshots are closed in every case.
 */
import { crc32 } from 'node:zlib';
import type { AskForCheckpointMessage, CheckpointAckMessage, CheckpointChunkMessage } from '../../core/messages.js';
import type { Random } from '../../util/random.js';
import type { Clock, Logger, StateMachineSnapshot } from '../interfaces.js';
import {
  encodeManifest, encodeTotals, manifestInstanceId, type CheckpointManifest, type SnapshotTotal,
} from './checkpoint-manifest.js';
import type { CheckpointTransferTiming } from './checkpoint-timing.js';

/** Every state machine's snapshot, opened, in manifest order. */
export interface OpenedCheckpoint {
  readonly manifest: CheckpointManifest;
  readonly snapshots: readonly StateMachineSnapshot[];
}

export interface CheckpointSenderOptions {
  readonly groupIndex: number;
  readonly nodeId: number;
  readonly clock: Clock;
  readonly random: Random;
  readonly logger: Logger;
  readonly timing: CheckpointTransferTiming;
  readonly send: (to: number, message: CheckpointChunkMessage) => void;
  /** Open the group's checkpoint; undefined when some state machine has none to give. */
  readonly open: () => Promise<OpenedCheckpoint | undefined>;
  /** The lowest instance this node's log still holds: askers at or above it learn from the log. */
  readonly minChosenInstanceId: () => number;
  readonly onTimersChanged: () => void;
}

interface SendingSession {
  readonly to: number;
  readonly id: number;
  /** The highest piece acked, -1 before the first. */
  acked: number;
  /** The end piece's sequence once it is sent. */
  endSequence: number | null;
  lastAckAt: number;
  ended: boolean;
  wake: (() => void) | null;
}

export interface CheckpointSenderStats {
  started: number;
  completed: number;
  abandoned: number;
  bytesSent: number;
}

export class CheckpointSender {
  private readonly options: CheckpointSenderOptions;
  private session: SendingSession | null = null;
  /**
   * The log this node must keep for the receiver of its last checkpoint: from the checkpoint + 1,
   * while the transfer runs and for ackTimeoutMs after it completed (the receiver installs, then
   * learns what follows from a peer's log). Without it the cleaner deleted those instances behind
   * a group that kept moving (master renewals), so with a small hold the receiver found every log
   * above its new instance and asked for another checkpoint, again and again (sim seeds 62, 135).
   */
  private keep: { readonly from: number; until: number } | null = null;
  readonly stats: CheckpointSenderStats = { started: 0, completed: 0, abandoned: 0, bytesSent: 0 };

  constructor(options: CheckpointSenderOptions) {
    this.options = options;
  }

  /** The lowest instance the log cleaner must keep for a checkpoint's receiver (see `keep`). */
  keepLogFrom(): number | undefined {
    if (this.keep === null) return undefined;
    if (this.options.clock.now() < this.keep.until) return this.keep.from;
    this.keep = null;
    return undefined;
  }

  /** The receiver of the transfer under way, if any. */
  get sendingTo(): number | null {
    return this.session?.to ?? null;
  }

  onAsk(message: AskForCheckpointMessage): void {
    if (this.session !== null) return;
    if (message.instanceId >= this.options.minChosenInstanceId()) return;
    const session: SendingSession = {
      to: message.from, id: this.options.random.int(1, 2 ** 32), acked: -1, endSequence: null,
      lastAckAt: this.options.clock.now(), ended: false, wake: null,
    };
    this.session = session;
    this.stats.started++;
    this.options.logger.info('sending a checkpoint', { group: this.options.groupIndex, to: session.to });
    this.options.onTimersChanged();
    this.run(session).catch((error: unknown) => this.end(session, false, `failed: ${String(error)}`));
  }

  onAck(message: CheckpointAckMessage): void {
    const session = this.session;
    if (session === null || session.to !== message.from || session.id !== message.session) return;
    if (!message.ok) {
      this.end(session, false, 'the receiver refused it');
      return;
    }
    if (message.sequence <= session.acked) return;
    session.acked = message.sequence;
    session.lastAckAt = this.options.clock.now();
    this.options.onTimersChanged();
    if (session.endSequence !== null && session.acked >= session.endSequence) {
      this.end(session, true, 'done');
      return;
    }
    this.wakeUp(session);
  }

  tick(): void {
    const session = this.session;
    if (session === null) return;
    if (this.options.clock.now() - session.lastAckAt >= this.options.timing.ackTimeoutMs) {
      this.end(session, false, `no ack for ${this.options.timing.ackTimeoutMs} ms`);
    }
  }

  nextTimerAt(): number | undefined {
    return this.session === null ? undefined : this.session.lastAckAt + this.options.timing.ackTimeoutMs;
  }

  /** Stop sending (the node stops, or the group is being replaced). */
  stop(): void {
    if (this.session !== null) this.end(this.session, false, 'the node stopped');
  }

  private async run(session: SendingSession): Promise<void> {
    const opened = await this.options.open();
    try {
      if (session.ended) return;
      if (opened === undefined) {
        this.end(session, false, 'a state machine of the group has no snapshot to send');
        return;
      }
      const instanceId = manifestInstanceId(opened.manifest);
      if (instanceId + 1 < this.options.minChosenInstanceId()) {
        // The receiver could not learn the instances between the snapshot and our log's start.
        this.end(session, false, `the snapshot (instance ${instanceId}) is older than the log's start`);
        return;
      }
      this.keep = { from: instanceId + 1, until: Infinity };
      let sequence = 0;
      this.sendPiece(session, instanceId, sequence++, 'begin', 0, encodeManifest(opened.manifest));
      const totals: SnapshotTotal[] = [];
      for (const [index, snapshot] of opened.snapshots.entries()) {
        const entry = opened.manifest.entries[index];
        if (entry === undefined) throw new Error('the manifest lists fewer state machines than were opened');
        let bytes = 0;
        let checksum = 0;
        for await (const chunk of snapshot.chunks) {
          for (let offset = 0; offset < chunk.length; offset += this.options.timing.chunkBytes) {
            const piece = chunk.subarray(offset, offset + this.options.timing.chunkBytes);
            if (!(await this.windowOpens(session, sequence))) return;
            this.sendPiece(session, instanceId, sequence++, 'data', entry.stateMachineId, piece);
            bytes += piece.length;
            checksum = crc32(piece, checksum);
            this.stats.bytesSent += piece.length;
          }
        }
        totals.push({ stateMachineId: entry.stateMachineId, bytes, crc32: checksum });
      }
      if (!(await this.windowOpens(session, sequence))) return;
      session.endSequence = sequence;
      this.sendPiece(session, instanceId, sequence, 'end', 0, encodeTotals(totals));
    } finally {
      await closeAll(opened?.snapshots ?? [], this.options.logger);
    }
  }

  private sendPiece(
    session: SendingSession, instanceId: number, sequence: number, part: CheckpointChunkMessage['part'],
    stateMachineId: number, data: Uint8Array,
  ): void {
    this.options.send(session.to, {
      kind: 'checkpointChunk', from: this.options.nodeId, instanceId, session: session.id, sequence, part,
      stateMachineId, data, checksum: crc32(data),
    });
  }

  /** Wait until piece `sequence` fits the window; false when the session ended meanwhile. */
  private async windowOpens(session: SendingSession, sequence: number): Promise<boolean> {
    while (!session.ended && sequence > session.acked + this.options.timing.windowChunks) {
      await new Promise<void>((resolve) => { session.wake = resolve; });
    }
    return !session.ended;
  }

  private wakeUp(session: SendingSession): void {
    const wake = session.wake;
    session.wake = null;
    wake?.();
  }

  private end(session: SendingSession, completed: boolean, reason: string): void {
    if (session.ended) return;
    session.ended = true;
    if (this.session === session) this.session = null;
    if (completed) this.stats.completed++;
    else this.stats.abandoned++;
    if (this.keep !== null) {
      if (completed) this.keep.until = this.options.clock.now() + this.options.timing.ackTimeoutMs;
      else this.keep = null;
    }
    const log = completed ? this.options.logger.info : this.options.logger.warn;
    log.call(this.options.logger, completed ? 'checkpoint sent' : 'checkpoint transfer abandoned', {
      group: this.options.groupIndex, to: session.to, reason,
    });
    this.wakeUp(session);
    this.options.onTimersChanged();
  }
}

async function closeAll(snapshots: readonly StateMachineSnapshot[], logger: Logger): Promise<void> {
  for (const snapshot of snapshots) {
    try {
      await snapshot.close?.();
    } catch (error) {
      logger.warn('closing a snapshot failed', { error: String(error) });
    }
  }
}
