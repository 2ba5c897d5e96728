/**
 * Application frames: opaque bytes that an application embedding the node (the KV service) sends to
 * a peer over the node's own transport connection, queued and batched with the Paxos messages going
 * the same way. The transport neither reads nor trusts them; the receiving application decodes and
 * checks them itself.
 *
 * The kind code sits in the Paxos message range (16 up) but is never a Paxos message: a node of an
 * older version drops such a frame as an unknown kind (counted) and keeps the connection, where a
 * connection frame kind it does not know would close it. The group field is 0.
 */
import { FRAME_HEADER_BYTES, sealFrame } from './wire-frame.js';

export const FRAME_KIND_APPLICATION = 127;

/** One application frame waiting in a peer's outbound queue beside Paxos messages. */
export class ApplicationPayload {
  constructor(readonly body: Uint8Array) {}
}

/** The bytes the frame of `body` occupies on the wire. */
export function applicationFrameBytes(body: Uint8Array): number {
  return FRAME_HEADER_BYTES + body.length;
}

/** Write the frame of `payload` into `target` at `offset`; returns the offset after it. */
export function writeApplicationFrame(
  target: Buffer, view: DataView, offset: number, payload: ApplicationPayload,
): number {
  target.set(payload.body, offset + FRAME_HEADER_BYTES);
  return sealFrame(target, view, offset, FRAME_KIND_APPLICATION, 0, payload.body.length);
}
