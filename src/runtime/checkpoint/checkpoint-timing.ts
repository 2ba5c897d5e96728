/**
 * The knobs of checkpoint transfer. Pieces are sized so one is a modest frame (the transport's
 * limit is far above) and a window of them keeps a loopback or LAN link busy without holding more
 * than a few MiB in flight per transfer.
 */
export interface CheckpointTransferTiming {
  /** Bytes of snapshot per `data` piece. */
  readonly chunkBytes: number;
  /** Pieces sent beyond the last one acknowledged (PhxPaxos Checkpoint_ACK_LEAD is 10 of 1 MiB). */
  readonly windowChunks: number;
  /** The sender gives up when no ack arrives for this long. */
  readonly ackTimeoutMs: number;
  /** The receiver gives up a transfer when no piece arrives for this long. */
  readonly pieceTimeoutMs: number;
  /** After asking a peer for a checkpoint, how long to wait for it to begin before asking again. */
  readonly askTimeoutMs: number;
  /** The largest checkpoint a receiver accepts (it is held in memory until verified and installed). */
  readonly maxBytes: number;
}

export const DEFAULT_CHECKPOINT_TRANSFER_TIMING: CheckpointTransferTiming = Object.freeze({
  chunkBytes: 1024 * 1024,
  windowChunks: 8,
  ackTimeoutMs: 15_000,
  pieceTimeoutMs: 15_000,
  askTimeoutMs: 5_000,
  maxBytes: 4 * 1024 * 1024 * 1024,
});
