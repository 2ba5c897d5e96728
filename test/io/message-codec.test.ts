// The binary message codec: exact sizes, round trips at the edges of every field, canonical
// encoding, and a typed WireError (never anything else) for every malformed shape.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { MessageKind, PaxosMessage } from '../../src/core/messages.js';
import { MESSAGE_KINDS } from '../../src/core/messages.js';
import {
  FIRST_MESSAGE_KIND_CODE, MESSAGE_KIND_CODES, decodeMessage, encodeMessage, encodedSize, writeMessage,
} from '../../src/io/message-codec.js';
import { WireError, type WireErrorReason } from '../../src/io/wire-error.js';
import { bytes, everyKind } from './wire-fixtures.js';

function code(message: PaxosMessage): number {
  return MESSAGE_KIND_CODES[message.kind];
}

function expectWireError(run: () => unknown, reason: WireErrorReason, what: string): void {
  assert.throws(run, (error: unknown) => error instanceof WireError && error.reason === reason,
    `${what}: expected a WireError '${reason}'`);
}

test('kind codes are distinct, stable, and above the connection frame kinds', () => {
  assert.deepEqual(MESSAGE_KINDS.map((kind) => MESSAGE_KIND_CODES[kind]),
    [16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28]);
  for (const kind of MESSAGE_KINDS) assert.ok(MESSAGE_KIND_CODES[kind] >= FIRST_MESSAGE_KIND_CODE);
});

test('every kind round-trips at the smallest, largest and ordinary field values', () => {
  for (const n of [0, 1, 2] as const) {
    for (const message of everyKind(n)) {
      const body = encodeMessage(message);
      assert.equal(body.length, encodedSize(message), `${message.kind} size`);
      assert.deepEqual(decodeMessage(code(message), body), message, `${message.kind} with edge values ${n}`);
    }
  }
});

test('a null accepted value and an empty one stay apart', () => {
  const base = everyKind(2)[1] as Extract<PaxosMessage, { kind: 'prepareReply' }>;
  const empty = { ...base, acceptedValue: new Uint8Array(0) };
  const nothing = { ...base, acceptedValue: null };
  assert.equal(decodeMessage(17, encodeMessage(empty)).kind, 'prepareReply');
  assert.deepEqual((decodeMessage(17, encodeMessage(empty)) as typeof base).acceptedValue, new Uint8Array(0));
  assert.equal((decodeMessage(17, encodeMessage(nothing)) as typeof base).acceptedValue, null);
  assert.notEqual(encodeMessage(empty).length, encodeMessage(nothing).length);
});

test('encoding writes every byte it sizes, whatever the target held before', () => {
  for (const message of [...everyKind(0), ...everyKind(2)]) {
    const size = encodedSize(message);
    const zeros = new Uint8Array(size + 8);
    const ones = new Uint8Array(size + 8).fill(0xff);
    const endZeros = writeMessage(zeros, new DataView(zeros.buffer), 4, message);
    const endOnes = writeMessage(ones, new DataView(ones.buffer), 4, message);
    assert.equal(endZeros, 4 + size);
    assert.equal(endOnes, 4 + size);
    assert.deepEqual(zeros.subarray(4, 4 + size), ones.subarray(4, 4 + size), message.kind);
  }
});

test('decoded values are copies that do not alias the receive buffer', () => {
  const message = everyKind(2)[3] as Extract<PaxosMessage, { kind: 'accept' }>;
  const body = Buffer.from(encodeMessage(message));
  const decoded = decodeMessage(18, body) as typeof message;
  assert.notEqual(decoded.value.buffer, body.buffer);
  body.fill(0);
  assert.deepEqual(decoded.value, message.value);
});

test('unknown kinds are refused as unknown-kind, whatever the body', () => {
  const body = encodeMessage(everyKind(2)[0] as PaxosMessage);
  for (let kind = 0; kind < 256; kind++) {
    if (kind >= 16 && kind <= 28) continue;
    expectWireError(() => decodeMessage(kind, body), 'unknown-kind', `kind ${kind}`);
  }
});

test('every truncation and any trailing byte is malformed', () => {
  for (const message of everyKind(2)) {
    const body = encodeMessage(message);
    for (let length = 0; length < body.length; length++) {
      expectWireError(() => decodeMessage(code(message), body.subarray(0, length)), 'malformed',
        `${message.kind} cut to ${length} bytes`);
    }
    const longer = new Uint8Array(body.length + 1);
    longer.set(body);
    expectWireError(() => decodeMessage(code(message), longer), 'malformed', `${message.kind} with a trailing byte`);
  }
});

/** Offsets of the u64 fields of each kind's body. */
const U64_FIELDS: Record<MessageKind, number[]> = {
  prepare: [4, 12],
  prepareReply: [4, 12, 24, 32],
  accept: [4, 12, 28],
  acceptReply: [4, 12, 24],
  chosen: [4, 12],
  askForLearn: [4],
  sendNowInstanceId: [4, 12, 20],
  confirmAskForLearn: [4],
  learnValue: [4, 12],
  learnValueAck: [4],
  askForCheckpoint: [4],
  checkpointChunk: [4, 16],
  checkpointAck: [4, 16],
};

test('u64 fields beyond the safe integers are malformed, and 2^53 - 1 is not', () => {
  for (const message of everyKind(2)) {
    for (const offset of U64_FIELDS[message.kind]) {
      const body = encodeMessage(message);
      const view = new DataView(body.buffer);
      view.setUint32(offset, 0xffff_ffff, true);
      view.setUint32(offset + 4, 0x1f_ffff, true);
      assert.doesNotThrow(() => decodeMessage(code(message), body), `${message.kind} @${offset} = 2^53 - 1`);
      for (const high of [0x20_0000, 0xffff_ffff]) {
        view.setUint32(offset + 4, high, true);
        view.setUint32(offset, 0, true);
        expectWireError(() => decodeMessage(code(message), body), 'malformed', `${message.kind} @${offset}`);
      }
    }
  }
});

test('a sender id of 0 is malformed', () => {
  for (const message of everyKind(2)) {
    const body = encodeMessage(message);
    new DataView(body.buffer).setUint32(0, 0, true);
    expectWireError(() => decodeMessage(code(message), body), 'malformed', message.kind);
  }
});

test('booleans other than 0 and 1 are malformed', () => {
  const kinds = everyKind(2);
  const [, reply, , , , , , , , learn] = kinds as PaxosMessage[];
  const ack = kinds.find((message) => message.kind === 'checkpointAck');
  const chunk = kinds.find((message) => message.kind === 'checkpointChunk');
  // A chunk's part is a u8 of 0..2 (begin, data, end): 3 and above are as malformed as a bad boolean.
  for (const [message, offset, lowestBad] of [[reply, 44, 2], [learn, 28, 2], [ack, 24, 2], [chunk, 24, 3]] as const) {
    for (const value of [lowestBad, 0x80, 0xff]) {
      const body = encodeMessage(message as PaxosMessage);
      body[offset] = value;
      expectWireError(() => decodeMessage(code(message as PaxosMessage), body), 'malformed', `${message?.kind} ${value}`);
    }
  }
});

test('value lengths that disagree with the body are malformed', () => {
  const withValues = everyKind(2).filter((message) => message.kind === 'accept' || message.kind === 'learnValue' ||
    (message.kind === 'prepareReply' && message.acceptedValue !== null));
  const lengthOffset: Partial<Record<MessageKind, number>> = { prepareReply: 45, accept: 40, learnValue: 29 };
  assert.equal(withValues.length, 3);
  for (const message of withValues) {
    const offset = lengthOffset[message.kind] as number;
    const body = encodeMessage(message);
    const view = new DataView(body.buffer);
    const actual = view.getUint32(offset, true);
    for (const claimed of [actual + 1, actual - 1, 0, 0xffff_ffff, 0x7fff_ffff]) {
      view.setUint32(offset, claimed >>> 0, true);
      expectWireError(() => decodeMessage(code(message), body), 'malformed', `${message.kind} claiming ${claimed}`);
    }
  }
});

test('a prepare reply whose flag and body disagree is malformed', () => {
  const base = everyKind(2)[1] as Extract<PaxosMessage, { kind: 'prepareReply' }>;
  const withValue = encodeMessage({ ...base, acceptedValue: bytes(10) });
  withValue[44] = 0;
  expectWireError(() => decodeMessage(17, withValue), 'malformed', 'no-value flag with a value');
  const without = encodeMessage({ ...base, acceptedValue: null });
  without[44] = 1;
  expectWireError(() => decodeMessage(17, without), 'malformed', 'value flag without a value');
});
