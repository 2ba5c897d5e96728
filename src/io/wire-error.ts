/**
 * The one error the wire codecs throw. Bytes from the network are untrusted input, so every way
 * they can be wrong has a `reason` the transport maps to a counter and a decision (close the
 * connection or drop one frame). Anything else escaping a codec is a bug in this library.
 */
export type WireErrorReason =
  /** A frame or message kind this version does not know. */
  | 'unknown-kind'
  /** A body that does not decode: truncated, trailing bytes, out-of-range fields. */
  | 'malformed'
  /** A frame length below the smallest possible frame. */
  | 'bad-length'
  /** A frame length above the configured limit. */
  | 'oversized'
  /** A protocol version this version does not speak. */
  | 'bad-version'
  /** The frame's CRC-32 does not match its bytes. */
  | 'bad-crc';

export class WireError extends Error {
  readonly reason: WireErrorReason;

  constructor(reason: WireErrorReason, message: string) {
    super(message);
    this.name = 'WireError';
    this.reason = reason;
  }
}

export function isWireError(value: unknown): value is WireError {
  return value instanceof WireError;
}
