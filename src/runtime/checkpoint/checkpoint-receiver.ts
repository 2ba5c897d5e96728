/**
 * The receiving side of checkpoint transfer (PhxPaxos CheckpointReceiver), one per group.
 *
 * When a peer reports that its log starts above this node's next instance, the receiver asks that
 * peer for a checkpoint and takes one transfer at a time: pieces from any other session are
 * refused. Pieces that arrive ahead of a gap (the transport may reorder) wait, up to a window's
 * worth, for the gap to fill. Every piece is checked before it is kept: its sequence must follow the last, its CRC-32
 * must match (PhxPaxos never verified it), a `data` piece must belong to the manifest's state
 * machines in order, and the `end` piece's totals must match every snapshot's size and CRC. Only a
 * checkpoint verified whole is handed to `install`; anything wrong abandons the transfer (the
 * sender is told) and the learner asks again later. Nothing of the group's log or state is touched
 * before `install`, so an abandoned transfer, or a crash during one, leaves the old state as it was.
 */
import { crc32 } from 'node:zlib';
import type { AskForCheckpointMessage, CheckpointAckMessage, CheckpointChunkMessage } from '../../core/messages.js';
import type { Clock, Logger } from '../interfaces.js';
import {
  CheckpointFormatError, decodeManifest, decodeTotals, manifestInstanceId, type CheckpointManifest,
} from './checkpoint-manifest.js';
import type { CheckpointTransferTiming } from './checkpoint-timing.js';

/** One state machine's snapshot as received: its pieces, in order. */
export interface ReceivedPieces {
  readonly stateMachineId: number;
  readonly instanceId: number;
  readonly pieces: Uint8Array[];
  bytes: number;
  crc32: number;
}

/** A checkpoint received and verified whole, ready to install. */
export interface VerifiedCheckpoint {
  readonly from: number;
  readonly manifest: CheckpointManifest;
  /** The instance the group resumes after: the lowest of its state machines'. */
  readonly instanceId: number;
  readonly snapshots: readonly ReceivedPieces[];
  readonly bytes: number;
}

export interface CheckpointReceiverOptions {
  readonly groupIndex: number;
  readonly nodeId: number;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly timing: CheckpointTransferTiming;
  readonly send: (to: number, message: AskForCheckpointMessage | CheckpointAckMessage) => void;
  /** The group's current instance: a checkpoint must reach at least it to be of any use. */
  readonly nowInstanceId: () => number;
  /** Install a verified checkpoint in place; the receiver takes no other transfer until it settles. */
  readonly install: (checkpoint: VerifiedCheckpoint) => Promise<void>;
  readonly onTimersChanged: () => void;
}

type ReceiverState =
  | { readonly kind: 'idle' }
  | {
    readonly kind: 'asked'; readonly peer: number; readonly at: number;
    /** Pieces of the asked peer that arrived before its `begin` (see onChunk). */
    readonly early: CheckpointChunkMessage[];
  }
  | {
    readonly kind: 'receiving'; readonly from: number; readonly session: number; readonly instanceId: number;
    readonly manifest: CheckpointManifest; readonly snapshots: ReceivedPieces[];
    /** The last piece kept. */
    sequence: number;
    /** Pieces that arrived ahead of a gap, by sequence, kept until the gap fills. */
    readonly ahead: Map<number, CheckpointChunkMessage>;
    /** Index into `snapshots` of the state machine now being received. */
    current: number;
    bytes: number;
    lastPieceAt: number;
  }
  | { readonly kind: 'installing'; readonly from: number; readonly session: number; readonly endSequence: number };

export interface CheckpointReceiverStats {
  asked: number;
  installed: number;
  abandoned: number;
  failedInstalls: number;
  bytesReceived: number;
}

export class CheckpointReceiver {
  private readonly options: CheckpointReceiverOptions;
  private state: ReceiverState = { kind: 'idle' };
  readonly stats: CheckpointReceiverStats = {
    asked: 0, installed: 0, abandoned: 0, failedInstalls: 0, bytesReceived: 0,
  };

  constructor(options: CheckpointReceiverOptions) {
    this.options = options;
  }

  get phase(): ReceiverState['kind'] {
    return this.state.kind;
  }

  /** True while a verified checkpoint is being installed: the group must not act on anything. */
  get installing(): boolean {
    return this.state.kind === 'installing';
  }

  /** `peer` says its log starts above our next instance: ask it for a checkpoint, unless busy. */
  needCheckpoint(peer: number): void {
    if (this.state.kind !== 'idle') return;
    this.state = { kind: 'asked', peer, at: this.options.clock.now(), early: [] };
    this.stats.asked++;
    this.options.logger.info('asking for a checkpoint', {
      group: this.options.groupIndex, peer, instanceId: this.options.nowInstanceId(),
    });
    this.options.send(peer, { kind: 'askForCheckpoint', from: this.options.nodeId, instanceId: this.options.nowInstanceId() });
    this.options.onTimersChanged();
  }

  onChunk(message: CheckpointChunkMessage): void {
    const state = this.state;
    if (state.kind === 'installing') {
      // The end piece's ack may have been lost: repeat it, refuse anything else.
      const same = message.from === state.from && message.session === state.session;
      if (same && message.sequence === state.endSequence) this.ack(message, true);
      else if (!same) this.ack(message, false);
      return;
    }
    if (message.part === 'begin') {
      this.onBegin(message);
      return;
    }
    if (state.kind === 'asked' && message.from === state.peer &&
      state.early.length <= this.options.timing.windowChunks) {
      // The sender sends a window of pieces right after its begin, and the transport may reorder
      // them: a piece ahead of the begin waits for it. Refused, it would end the sender's session
      // while the begin, arriving next, started ours, which then waited in vain; a node whose
      // transfers all went so never caught up (sim seeds 71 and 135, with the real log cleaner).
      state.early.push(message);
      return;
    }
    if (state.kind !== 'receiving' || state.from !== message.from || state.session !== message.session) {
      this.ack(message, false);
      return;
    }
    if (message.sequence <= state.sequence) {
      this.ack(message, true);
      return;
    }
    if (message.sequence !== state.sequence + 1) {
      // The sender keeps at most a window beyond the last ack in flight, so a piece further ahead is
      // not one a reordering transport delivered early.
      if (message.sequence > state.sequence + this.options.timing.windowChunks + 1) {
        this.abandon(message, `piece ${message.sequence} arrived after ${state.sequence}`);
      } else {
        state.ahead.set(message.sequence, message);
      }
      return;
    }
    this.keep(message, state);
    // Pieces that waited behind this one follow it now, in order, while the transfer goes on.
    for (let next = state.ahead.get(state.sequence + 1); next !== undefined && this.state === state;
      next = state.ahead.get(state.sequence + 1)) {
      state.ahead.delete(next.sequence);
      this.keep(next, state);
    }
  }

  /** Check and keep the piece that follows the last one kept. */
  private keep(message: CheckpointChunkMessage, state: Extract<ReceiverState, { kind: 'receiving' }>): void {
    if (crc32(message.data) !== message.checksum) {
      this.abandon(message, `piece ${message.sequence} fails its CRC`);
      return;
    }
    if (message.part === 'data') this.onData(message, state);
    else this.onEnd(message, state);
  }

  tick(): void {
    const state = this.state;
    const now = this.options.clock.now();
    if (state.kind === 'asked' && now - state.at >= this.options.timing.askTimeoutMs) {
      this.state = { kind: 'idle' };
    } else if (state.kind === 'receiving' && now - state.lastPieceAt >= this.options.timing.pieceTimeoutMs) {
      this.options.logger.warn('checkpoint transfer abandoned: the sender went quiet', {
        group: this.options.groupIndex, from: state.from,
      });
      this.stats.abandoned++;
      this.state = { kind: 'idle' };
    }
  }

  nextTimerAt(): number | undefined {
    const state = this.state;
    if (state.kind === 'asked') return state.at + this.options.timing.askTimeoutMs;
    if (state.kind === 'receiving') return state.lastPieceAt + this.options.timing.pieceTimeoutMs;
    return undefined;
  }

  private onBegin(message: CheckpointChunkMessage): void {
    const state = this.state;
    if (state.kind === 'receiving') {
      // A repeated begin of this session is acked again; another sender waits its turn.
      this.ack(message, state.from === message.from && state.session === message.session && message.sequence === 0);
      return;
    }
    // Only the member this node asked may send it one: nothing unsolicited is ever installed.
    if (state.kind !== 'asked' || state.peer !== message.from) {
      this.ack(message, false);
      return;
    }
    if (message.sequence !== 0 || crc32(message.data) !== message.checksum) {
      this.ack(message, false);
      return;
    }
    let manifest: CheckpointManifest;
    try {
      manifest = decodeManifest(message.data);
    } catch (error) {
      if (!(error instanceof CheckpointFormatError)) throw error;
      this.options.logger.warn('a checkpoint manifest is malformed; refused', {
        group: this.options.groupIndex, from: message.from, error: error.message,
      });
      this.ack(message, false);
      return;
    }
    const instanceId = manifestInstanceId(manifest);
    if (instanceId !== message.instanceId || instanceId < this.options.nowInstanceId()) {
      // A checkpoint below our instance would take the group back; one that disagrees with itself is bad.
      this.ack(message, false);
      return;
    }
    this.state = {
      kind: 'receiving', from: message.from, session: message.session, instanceId, manifest,
      snapshots: manifest.entries.map((entry) => ({
        stateMachineId: entry.stateMachineId, instanceId: entry.instanceId, pieces: [], bytes: 0, crc32: 0,
      })),
      sequence: 0, ahead: new Map(), current: 0, bytes: 0, lastPieceAt: this.options.clock.now(),
    };
    this.options.logger.info('receiving a checkpoint', { group: this.options.groupIndex, from: message.from, instanceId });
    this.ack(message, true);
    this.options.onTimersChanged();
    if (state.kind === 'asked') {
      const early = state.early.filter((piece) => piece.from === message.from && piece.session === message.session);
      for (const piece of early.sort((a, b) => a.sequence - b.sequence)) this.onChunk(piece);
    }
  }

  private onData(message: CheckpointChunkMessage, state: Extract<ReceiverState, { kind: 'receiving' }>): void {
    let index = state.current;
    while (index < state.snapshots.length && state.snapshots[index]?.stateMachineId !== message.stateMachineId) index++;
    const snapshot = state.snapshots[index];
    if (snapshot === undefined) {
      this.abandon(message, `piece ${message.sequence} is for state machine ${message.stateMachineId}, out of order ` +
        'or not in the manifest');
      return;
    }
    if (state.bytes + message.data.length > this.options.timing.maxBytes) {
      this.abandon(message, `the checkpoint exceeds the limit of ${this.options.timing.maxBytes} bytes`);
      return;
    }
    state.current = index;
    snapshot.pieces.push(message.data);
    snapshot.bytes += message.data.length;
    snapshot.crc32 = crc32(message.data, snapshot.crc32);
    state.bytes += message.data.length;
    state.sequence = message.sequence;
    state.lastPieceAt = this.options.clock.now();
    this.stats.bytesReceived += message.data.length;
    this.ack(message, true);
    this.options.onTimersChanged();
  }

  private onEnd(message: CheckpointChunkMessage, state: Extract<ReceiverState, { kind: 'receiving' }>): void {
    let totals;
    try {
      totals = decodeTotals(message.data);
    } catch (error) {
      if (!(error instanceof CheckpointFormatError)) throw error;
      this.abandon(message, `the end piece is malformed: ${error.message}`);
      return;
    }
    const mismatch = totals.length !== state.snapshots.length ? `${totals.length} totals for ${state.snapshots.length} ` +
      'state machines' : state.snapshots.map((snapshot, index) => {
      const total = totals[index];
      if (total?.stateMachineId !== snapshot.stateMachineId) return `totals out of order at ${index}`;
      if (total.bytes !== snapshot.bytes) return `state machine ${snapshot.stateMachineId}: ${snapshot.bytes} bytes ` +
        `received, ${total.bytes} sent`;
      if (total.crc32 !== snapshot.crc32) return `state machine ${snapshot.stateMachineId}: the CRC of the whole differs`;
      return null;
    }).find((problem) => problem !== null);
    if (mismatch !== undefined && mismatch !== null) {
      this.abandon(message, mismatch);
      return;
    }
    const checkpoint: VerifiedCheckpoint = {
      from: state.from, manifest: state.manifest, instanceId: state.instanceId, snapshots: state.snapshots,
      bytes: state.bytes,
    };
    this.state = { kind: 'installing', from: state.from, session: state.session, endSequence: message.sequence };
    this.ack(message, true);
    this.options.onTimersChanged();
    this.options.logger.info('checkpoint received; installing', {
      group: this.options.groupIndex, from: state.from, instanceId: state.instanceId, bytes: state.bytes,
    });
    this.options.install(checkpoint).then(() => {
      this.stats.installed++;
    }, (error: unknown) => {
      this.stats.failedInstalls++;
      this.options.logger.error('installing a checkpoint failed; the old state stands', {
        group: this.options.groupIndex, instanceId: state.instanceId, error: String(error),
      });
    }).finally(() => {
      this.state = { kind: 'idle' };
      this.options.onTimersChanged();
    });
  }

  private abandon(message: CheckpointChunkMessage, reason: string): void {
    this.options.logger.warn('checkpoint transfer abandoned', {
      group: this.options.groupIndex, from: message.from, reason,
    });
    this.stats.abandoned++;
    this.state = { kind: 'idle' };
    this.ack(message, false);
    this.options.onTimersChanged();
  }

  private ack(message: CheckpointChunkMessage, ok: boolean): void {
    this.options.send(message.from, {
      kind: 'checkpointAck', from: this.options.nodeId, instanceId: message.instanceId, session: message.session,
      sequence: message.sequence, ok,
    });
  }
}
