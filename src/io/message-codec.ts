/**
 * The binary body of every Paxos message on the wire (the frame around it is in wire-frame.ts).
 *
 * Every body starts with `u32 from | u64 instanceId`; a ballot is `u64 proposalId | u32 nodeId`.
 * All integers are little-endian; u64 fields carry safe integers (< 2^53) and decoding rejects
 * anything larger. Layouts after the common 12 bytes, by kind code:
 *
 *   16 prepare            ballot                                                    (24 bytes)
 *   17 prepareReply       ballot | u64 rejectedBy | acceptedBallot | u8 hasValue
 *                         [| u32 valueLength | value]                   (45, or 49 + value length)
 *   18 accept             ballot | u32 lastChecksum | previousBallot | u32 valueLength | value
 *                                                                              (44 + value length)
 *   19 acceptReply        ballot | u64 rejectedBy                                   (32 bytes)
 *   20 chosen             ballot | u32 lastChecksum                                 (28 bytes)
 *   21 askForLearn        -                                                         (12 bytes)
 *   22 sendNowInstanceId  u64 nowInstanceId | u64 minChosenInstanceId               (28 bytes)
 *   23 confirmAskForLearn -                                                         (12 bytes)
 *   24 learnValue         ballot | u32 checksum | u8 needAck | u32 valueLength | value
 *                                                                              (33 + value length)
 *   25 learnValueAck      -                                                         (12 bytes)
 *   26 askForCheckpoint   -                                                         (12 bytes)
 *   27 checkpointChunk    u32 session | u64 sequence | u8 part | u32 stateMachineId | u32 checksum
 *                         | u32 dataLength | data                          (37 + data length)
 *   28 checkpointAck      u32 session | u64 sequence | u8 ok                        (25 bytes)
 *
 * The codes are part of the protocol and never change meaning; 0–15 are the frame kinds of the
 * connection itself (handshake, ...). `hasValue` keeps a null accepted value apart from an empty
 * one. Encoding is exact-size and canonical: a body that decodes re-encodes to the same bytes,
 * because decoding rejects every other shape (short or trailing bytes, booleans other than 0/1,
 * lengths that disagree with the body, unsafe integers, a sender id of 0).
 *
 * Decoded values are copies, never views into the receive buffer: the core keeps values (accepted,
 * learned, executed), and a view would pin a whole socket chunk or frame buffer for as long as it
 * lives. One copy per value is cheap next to everything else a value goes through.
 */
import type { Ballot } from '../core/ballot.js';
import type { CheckpointPart, MessageKind, PaxosMessage } from '../core/messages.js';
import { EMPTY_BYTES } from '../util/bytes.js';
import { readUint64, writeUint64 } from '../util/uint64.js';
import { WireError } from './wire-error.js';

export const MESSAGE_KIND_CODES: Readonly<Record<MessageKind, number>> = Object.freeze({
  prepare: 16,
  prepareReply: 17,
  accept: 18,
  acceptReply: 19,
  chosen: 20,
  askForLearn: 21,
  sendNowInstanceId: 22,
  confirmAskForLearn: 23,
  learnValue: 24,
  learnValueAck: 25,
  askForCheckpoint: 26,
  checkpointChunk: 27,
  checkpointAck: 28,
});

const CHECKPOINT_PARTS: readonly CheckpointPart[] = ['begin', 'data', 'end'];

/** The lowest kind code of a Paxos message; codes below it belong to the connection. */
export const FIRST_MESSAGE_KIND_CODE = 16;

const COMMON_BYTES = 12;
const PREPARE_BYTES = 24;
const PREPARE_REPLY_FIXED_BYTES = 45;
const ACCEPT_FIXED_BYTES = 44;
const ACCEPT_REPLY_BYTES = 32;
const CHOSEN_BYTES = 28;
const SEND_NOW_BYTES = 28;
const LEARN_VALUE_FIXED_BYTES = 33;
const VALUE_LENGTH_BYTES = 4;
const CHECKPOINT_CHUNK_FIXED_BYTES = 37;
const CHECKPOINT_ACK_BYTES = 25;

/** The exact number of body bytes `writeMessage` produces for this message. */
export function encodedSize(message: PaxosMessage): number {
  switch (message.kind) {
    case 'prepare': return PREPARE_BYTES;
    case 'prepareReply':
      return message.acceptedValue === null ? PREPARE_REPLY_FIXED_BYTES
        : PREPARE_REPLY_FIXED_BYTES + VALUE_LENGTH_BYTES + message.acceptedValue.length;
    case 'accept': return ACCEPT_FIXED_BYTES + message.value.length;
    case 'acceptReply': return ACCEPT_REPLY_BYTES;
    case 'chosen': return CHOSEN_BYTES;
    case 'sendNowInstanceId': return SEND_NOW_BYTES;
    case 'learnValue': return LEARN_VALUE_FIXED_BYTES + message.value.length;
    case 'checkpointChunk': return CHECKPOINT_CHUNK_FIXED_BYTES + message.data.length;
    case 'checkpointAck': return CHECKPOINT_ACK_BYTES;
    case 'askForLearn':
    case 'confirmAskForLearn':
    case 'learnValueAck':
    case 'askForCheckpoint':
      return COMMON_BYTES;
  }
}

/**
 * Write the body of `message` into `target` at `offset`; returns the offset after it. `view` must
 * be a DataView over exactly `target` (callers encoding many messages make it once).
 */
export function writeMessage(target: Uint8Array, view: DataView, offset: number, message: PaxosMessage): number {
  view.setUint32(offset, message.from, true);
  writeUint64(view, offset + 4, message.instanceId);
  const at = offset + COMMON_BYTES;
  switch (message.kind) {
    case 'prepare':
      writeBallot(view, at, message.ballot);
      return offset + PREPARE_BYTES;
    case 'prepareReply': {
      writeBallot(view, at, message.ballot);
      writeUint64(view, at + 12, message.rejectedBy);
      writeBallot(view, at + 20, message.acceptedBallot);
      const value = message.acceptedValue;
      view.setUint8(at + 32, value === null ? 0 : 1);
      if (value === null) return offset + PREPARE_REPLY_FIXED_BYTES;
      return writeValue(target, view, offset + PREPARE_REPLY_FIXED_BYTES, value);
    }
    case 'accept':
      writeBallot(view, at, message.ballot);
      view.setUint32(at + 12, message.lastChecksum >>> 0, true);
      writeBallot(view, at + 16, message.previousBallot);
      return writeValue(target, view, offset + ACCEPT_FIXED_BYTES - VALUE_LENGTH_BYTES, message.value);
    case 'acceptReply':
      writeBallot(view, at, message.ballot);
      writeUint64(view, at + 12, message.rejectedBy);
      return offset + ACCEPT_REPLY_BYTES;
    case 'chosen':
      writeBallot(view, at, message.ballot);
      view.setUint32(at + 12, message.lastChecksum >>> 0, true);
      return offset + CHOSEN_BYTES;
    case 'sendNowInstanceId':
      writeUint64(view, at, message.nowInstanceId);
      writeUint64(view, at + 8, message.minChosenInstanceId);
      return offset + SEND_NOW_BYTES;
    case 'learnValue':
      writeBallot(view, at, message.ballot);
      view.setUint32(at + 12, message.checksum >>> 0, true);
      view.setUint8(at + 16, message.needAck ? 1 : 0);
      return writeValue(target, view, offset + LEARN_VALUE_FIXED_BYTES - VALUE_LENGTH_BYTES, message.value);
    case 'checkpointChunk':
      view.setUint32(at, message.session >>> 0, true);
      writeUint64(view, at + 4, message.sequence);
      view.setUint8(at + 12, CHECKPOINT_PARTS.indexOf(message.part));
      view.setUint32(at + 13, message.stateMachineId >>> 0, true);
      view.setUint32(at + 17, message.checksum >>> 0, true);
      return writeValue(target, view, offset + CHECKPOINT_CHUNK_FIXED_BYTES - VALUE_LENGTH_BYTES, message.data);
    case 'checkpointAck':
      view.setUint32(at, message.session >>> 0, true);
      writeUint64(view, at + 4, message.sequence);
      view.setUint8(at + 12, message.ok ? 1 : 0);
      return offset + CHECKPOINT_ACK_BYTES;
    case 'askForLearn':
    case 'confirmAskForLearn':
    case 'learnValueAck':
    case 'askForCheckpoint':
      return offset + COMMON_BYTES;
  }
}

/** The body of one message in a buffer of its own, exactly sized. */
export function encodeMessage(message: PaxosMessage): Uint8Array {
  const bytes = new Uint8Array(encodedSize(message));
  writeMessage(bytes, new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength), 0, message);
  return bytes;
}

function writeBallot(view: DataView, offset: number, ballot: Ballot): void {
  writeUint64(view, offset, ballot.proposalId);
  view.setUint32(offset + 8, ballot.nodeId, true);
}

/** `u32 length | bytes` at `offset`; returns the offset after it. */
function writeValue(target: Uint8Array, view: DataView, offset: number, value: Uint8Array): number {
  view.setUint32(offset, value.length, true);
  target.set(value, offset + VALUE_LENGTH_BYTES);
  return offset + VALUE_LENGTH_BYTES + value.length;
}

/**
 * Decode one message body. Throws a `WireError` ('unknown-kind' or 'malformed') for anything that
 * is not exactly a canonical encoding; never anything else.
 */
export function decodeMessage(code: number, body: Uint8Array): PaxosMessage {
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const size = body.byteLength;
  switch (code) {
    case MESSAGE_KIND_CODES.prepare:
      expectSize(size, PREPARE_BYTES, 'prepare');
      return { kind: 'prepare', from: readFrom(view), instanceId: readInstance(view), ballot: readBallot(view, 12) };
    case MESSAGE_KIND_CODES.prepareReply:
      return decodePrepareReply(body, view);
    case MESSAGE_KIND_CODES.accept: {
      expectAtLeast(size, ACCEPT_FIXED_BYTES, 'accept');
      return {
        kind: 'accept', from: readFrom(view), instanceId: readInstance(view), ballot: readBallot(view, 12),
        value: readValue(body, view, ACCEPT_FIXED_BYTES - VALUE_LENGTH_BYTES, 'accept'),
        lastChecksum: view.getUint32(24, true), previousBallot: readBallot(view, 28),
      };
    }
    case MESSAGE_KIND_CODES.acceptReply:
      expectSize(size, ACCEPT_REPLY_BYTES, 'acceptReply');
      return {
        kind: 'acceptReply', from: readFrom(view), instanceId: readInstance(view), ballot: readBallot(view, 12),
        rejectedBy: readSafe(view, 24, 'acceptReply.rejectedBy'),
      };
    case MESSAGE_KIND_CODES.chosen:
      expectSize(size, CHOSEN_BYTES, 'chosen');
      return {
        kind: 'chosen', from: readFrom(view), instanceId: readInstance(view), ballot: readBallot(view, 12),
        lastChecksum: view.getUint32(24, true),
      };
    case MESSAGE_KIND_CODES.askForLearn:
      expectSize(size, COMMON_BYTES, 'askForLearn');
      return { kind: 'askForLearn', from: readFrom(view), instanceId: readInstance(view) };
    case MESSAGE_KIND_CODES.sendNowInstanceId:
      expectSize(size, SEND_NOW_BYTES, 'sendNowInstanceId');
      return {
        kind: 'sendNowInstanceId', from: readFrom(view), instanceId: readInstance(view),
        nowInstanceId: readSafe(view, 12, 'sendNowInstanceId.nowInstanceId'),
        minChosenInstanceId: readSafe(view, 20, 'sendNowInstanceId.minChosenInstanceId'),
      };
    case MESSAGE_KIND_CODES.confirmAskForLearn:
      expectSize(size, COMMON_BYTES, 'confirmAskForLearn');
      return { kind: 'confirmAskForLearn', from: readFrom(view), instanceId: readInstance(view) };
    case MESSAGE_KIND_CODES.learnValue:
      expectAtLeast(size, LEARN_VALUE_FIXED_BYTES, 'learnValue');
      return {
        kind: 'learnValue', from: readFrom(view), instanceId: readInstance(view), ballot: readBallot(view, 12),
        value: readValue(body, view, LEARN_VALUE_FIXED_BYTES - VALUE_LENGTH_BYTES, 'learnValue'),
        checksum: view.getUint32(24, true), needAck: readBoolean(view, 28, 'learnValue.needAck'),
      };
    case MESSAGE_KIND_CODES.learnValueAck:
      expectSize(size, COMMON_BYTES, 'learnValueAck');
      return { kind: 'learnValueAck', from: readFrom(view), instanceId: readInstance(view) };
    case MESSAGE_KIND_CODES.askForCheckpoint:
      expectSize(size, COMMON_BYTES, 'askForCheckpoint');
      return { kind: 'askForCheckpoint', from: readFrom(view), instanceId: readInstance(view) };
    case MESSAGE_KIND_CODES.checkpointChunk:
      return decodeCheckpointChunk(body, view);
    case MESSAGE_KIND_CODES.checkpointAck:
      expectSize(size, CHECKPOINT_ACK_BYTES, 'checkpointAck');
      return {
        kind: 'checkpointAck', from: readFrom(view), instanceId: readInstance(view), session: view.getUint32(12, true),
        sequence: readSafe(view, 16, 'checkpointAck.sequence'), ok: readBoolean(view, 24, 'checkpointAck.ok'),
      };
    default:
      throw new WireError('unknown-kind', `unknown message kind ${code}`);
  }
}

function decodePrepareReply(body: Uint8Array, view: DataView): PaxosMessage {
  expectAtLeast(body.byteLength, PREPARE_REPLY_FIXED_BYTES, 'prepareReply');
  const hasValue = readBoolean(view, 44, 'prepareReply.hasValue');
  if (!hasValue) expectSize(body.byteLength, PREPARE_REPLY_FIXED_BYTES, 'prepareReply without a value');
  else expectAtLeast(body.byteLength, PREPARE_REPLY_FIXED_BYTES + VALUE_LENGTH_BYTES, 'prepareReply');
  return {
    kind: 'prepareReply', from: readFrom(view), instanceId: readInstance(view), ballot: readBallot(view, 12),
    rejectedBy: readSafe(view, 24, 'prepareReply.rejectedBy'), acceptedBallot: readBallot(view, 32),
    acceptedValue: hasValue ? readValue(body, view, PREPARE_REPLY_FIXED_BYTES, 'prepareReply') : null,
  };
}

function decodeCheckpointChunk(body: Uint8Array, view: DataView): PaxosMessage {
  expectAtLeast(body.byteLength, CHECKPOINT_CHUNK_FIXED_BYTES, 'checkpointChunk');
  const partCode = view.getUint8(24);
  const part = CHECKPOINT_PARTS[partCode];
  if (part === undefined) throw new WireError('malformed', `checkpointChunk.part is ${partCode}`);
  return {
    kind: 'checkpointChunk', from: readFrom(view), instanceId: readInstance(view), session: view.getUint32(12, true),
    sequence: readSafe(view, 16, 'checkpointChunk.sequence'), part, stateMachineId: view.getUint32(25, true),
    checksum: view.getUint32(29, true),
    data: readValue(body, view, CHECKPOINT_CHUNK_FIXED_BYTES - VALUE_LENGTH_BYTES, 'checkpointChunk'),
  };
}

function expectSize(size: number, expected: number, what: string): void {
  if (size !== expected) throw new WireError('malformed', `${what} body is ${size} bytes, expected ${expected}`);
}

function expectAtLeast(size: number, minimum: number, what: string): void {
  if (size < minimum) throw new WireError('malformed', `${what} body is ${size} bytes, below ${minimum}`);
}

function readFrom(view: DataView): number {
  const from = view.getUint32(0, true);
  if (from === 0) throw new WireError('malformed', 'sender node id 0');
  return from;
}

function readInstance(view: DataView): number {
  return readSafe(view, 4, 'instanceId');
}

function readSafe(view: DataView, offset: number, field: string): number {
  const value = readUint64(view, offset);
  if (value < 0) throw new WireError('malformed', `${field} is not a safe integer`);
  return value;
}

function readBallot(view: DataView, offset: number): Ballot {
  return { proposalId: readSafe(view, offset, 'ballot.proposalId'), nodeId: view.getUint32(offset + 8, true) };
}

function readBoolean(view: DataView, offset: number, field: string): boolean {
  const byte = view.getUint8(offset);
  if (byte > 1) throw new WireError('malformed', `${field} is ${byte}, not 0 or 1`);
  return byte === 1;
}

/** The `u32 length | bytes` at `offset`, which must end exactly where the body does; copied. */
function readValue(body: Uint8Array, view: DataView, offset: number, what: string): Uint8Array {
  const length = view.getUint32(offset, true);
  const start = offset + VALUE_LENGTH_BYTES;
  if (length !== body.byteLength - start) {
    throw new WireError('malformed', `${what} value length ${length} disagrees with the ${body.byteLength - start} bytes left`);
  }
  if (length === 0) return EMPTY_BYTES;
  const value = new Uint8Array(length);
  value.set(body.subarray(start, start + length));
  return value;
}
