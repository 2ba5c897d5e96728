// The frame format and the streaming FrameDecoder: frames split anywhere, many per chunk, bad
// lengths and versions refused as soon as their bytes arrive, CRC over the header and body.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { crc32 } from 'node:zlib';
import type { PaxosMessage } from '../../src/core/messages.js';
import { MESSAGE_KIND_CODES, decodeMessage } from '../../src/io/message-codec.js';
import { WireError, type WireErrorReason } from '../../src/io/wire-error.js';
import {
  FRAME_HEADER_BYTES, FrameDecoder, MIN_FRAME_LENGTH, PROTOCOL_VERSION, encodeFrame, encodeMessageFrame,
  encodeMessageFrames, messageFrameBytes, type DecodedFrame,
} from '../../src/io/wire-frame.js';
import { everyKind } from './wire-fixtures.js';

const LIMIT = 128 * 1024;

function drain(decoder: FrameDecoder): DecodedFrame[] {
  const frames: DecodedFrame[] = [];
  for (let frame = decoder.next(); frame !== undefined; frame = decoder.next()) {
    // Copy: a body is only valid until the next push.
    frames.push({ kind: frame.kind, group: frame.group, body: Buffer.from(frame.body) });
  }
  return frames;
}

function expectReason(run: () => unknown, reason: WireErrorReason): void {
  assert.throws(run, (error: unknown) => error instanceof WireError && error.reason === reason, reason);
}

const messages = everyKind(2);
const groups = messages.map((_, i) => i * 3);
const stream = encodeMessageFrames(groups, messages);

function assertAllFrames(frames: DecodedFrame[]): void {
  assert.equal(frames.length, messages.length);
  frames.forEach((frame, i) => {
    const message = messages[i] as PaxosMessage;
    assert.equal(frame.kind, MESSAGE_KIND_CODES[message.kind]);
    assert.equal(frame.group, groups[i]);
    assert.deepEqual(decodeMessage(frame.kind, frame.body), message);
  });
}

test('the header layout: length, version, kind, group, CRC over everything but itself', () => {
  const body = Buffer.from('hello');
  const frame = encodeFrame(7, 0x01020304, body);
  assert.equal(frame.length, FRAME_HEADER_BYTES + body.length);
  assert.equal(frame.readUInt32LE(0), MIN_FRAME_LENGTH + body.length);
  assert.equal(frame[4], PROTOCOL_VERSION);
  assert.equal(frame[5], 7);
  assert.equal(frame.readUInt32LE(6), 0x01020304);
  assert.equal(frame.readUInt32LE(10), crc32(Buffer.concat([frame.subarray(0, 10), body])));
  assert.deepEqual(frame.subarray(14), body);
});

test('many frames in one chunk come out in order, with their groups', () => {
  const decoder = new FrameDecoder(LIMIT);
  decoder.push(stream);
  assertAllFrames(drain(decoder));
  assert.equal(decoder.bufferedBytes, 0);
});

test('the batch encoding is the single-frame encodings back to back', () => {
  const singles = messages.map((message, i) => encodeMessageFrame(groups[i] as number, message));
  assert.deepEqual(stream, Buffer.concat(singles));
  assert.equal(stream.length, messages.reduce((sum, message) => sum + messageFrameBytes(message), 0));
});

test('a stream split in two at every offset decodes the same', () => {
  for (let cut = 0; cut <= stream.length; cut++) {
    const decoder = new FrameDecoder(LIMIT);
    decoder.push(stream.subarray(0, cut));
    const frames = drain(decoder);
    decoder.push(stream.subarray(cut));
    frames.push(...drain(decoder));
    assertAllFrames(frames);
  }
});

test('a stream fed one byte at a time decodes the same, holding only the partial frame', () => {
  const decoder = new FrameDecoder(LIMIT);
  const frames: DecodedFrame[] = [];
  for (let i = 0; i < stream.length; i++) {
    decoder.push(stream.subarray(i, i + 1), i);
    frames.push(...drain(decoder));
    assert.ok(decoder.bufferedBytes <= 4 + LIMIT);
  }
  assertAllFrames(frames);
  assert.equal(decoder.bufferedBytes, 0);
  assert.equal(decoder.allocatedBytes, 0);
});

test('the partial frame reports its size and when it began', () => {
  const frame = encodeFrame(16, 0, Buffer.alloc(100));
  const decoder = new FrameDecoder(LIMIT);
  decoder.push(frame.subarray(0, 3), 10);
  assert.equal(drain(decoder).length, 0);
  assert.equal(decoder.bufferedBytes, 3);
  assert.equal(decoder.partialSince, 10);
  decoder.push(frame.subarray(3, 50), 20);
  drain(decoder);
  assert.equal(decoder.bufferedBytes, 50);
  assert.equal(decoder.allocatedBytes, frame.length);
  assert.equal(decoder.partialSince, 10);
  assert.equal(decoder.lastPushAt, 20);
  decoder.push(frame.subarray(50), 30);
  assert.equal(drain(decoder).length, 1);
  assert.equal(decoder.partialSince, -1);
  assert.equal(decoder.bufferedBytes, 0);
});

function lengthPrefix(length: number): Buffer {
  const prefix = Buffer.alloc(4);
  prefix.writeUInt32LE(length, 0);
  return prefix;
}

test('lengths of 0, below the minimum, above the limit and 2^32 - 1 are refused from the length alone', () => {
  const cases: [number, WireErrorReason][] = [
    [0, 'bad-length'], [1, 'bad-length'], [MIN_FRAME_LENGTH - 1, 'bad-length'], [LIMIT + 1, 'oversized'],
    [0x7fff_ffff, 'oversized'], [0xffff_ffff, 'oversized'],
  ];
  for (const [length, reason] of cases) {
    // Whole prefix in one chunk, and byte by byte (refused at the fourth byte, before the version).
    const whole = new FrameDecoder(LIMIT);
    whole.push(Buffer.concat([lengthPrefix(length), Buffer.from([PROTOCOL_VERSION, 16])]));
    expectReason(() => whole.next(), reason);
    assert.equal(whole.allocatedBytes, 0);
    const split = new FrameDecoder(LIMIT);
    const prefix = lengthPrefix(length);
    for (let i = 0; i < 3; i++) {
      split.push(prefix.subarray(i, i + 1));
      assert.equal(split.next(), undefined);
    }
    split.push(prefix.subarray(3, 4));
    expectReason(() => split.next(), reason);
    assert.equal(split.allocatedBytes, 0);
    assert.equal(split.bufferedBytes, 0);
  }
});

test('the limit itself is accepted, and can be raised after construction', () => {
  const body = Buffer.alloc(LIMIT - MIN_FRAME_LENGTH, 7);
  const frame = encodeFrame(16, 1, body);
  const decoder = new FrameDecoder(LIMIT);
  decoder.push(frame);
  assert.equal(drain(decoder)[0]?.body.length, body.length);
  const small = new FrameDecoder(256);
  small.maxFrameBytes = LIMIT;
  small.push(frame);
  assert.equal(drain(small).length, 1);
});

test('a wrong version is refused at its byte, the previous one included', () => {
  // Version 1 predates proposal identities: its nodes could not execute our values.
  for (const version of [1, PROTOCOL_VERSION + 1]) {
    const frame = encodeFrame(16, 0, Buffer.alloc(20));
    frame[4] = version;
    const decoder = new FrameDecoder(LIMIT);
    decoder.push(frame.subarray(0, 5));
    expectReason(() => decoder.next(), 'bad-version');
  }
});

test('a flipped bit anywhere in the frame, header included, fails the CRC', () => {
  const frame = encodeFrame(16, 5, Buffer.from('some body bytes'));
  for (let bit = 0; bit < frame.length * 8; bit++) {
    const byte = bit >> 3;
    if (byte < 5) continue; // length and version have their own checks
    const damaged = Buffer.from(frame);
    damaged[byte] = (damaged[byte] as number) ^ (1 << (bit & 7));
    const decoder = new FrameDecoder(LIMIT);
    decoder.push(damaged);
    expectReason(() => decoder.next(), 'bad-crc');
  }
});

test('after an error the decoder stays failed and holds nothing', () => {
  const frame = encodeFrame(16, 0, Buffer.alloc(20));
  frame[20] = (frame[20] as number) ^ 1;
  const decoder = new FrameDecoder(LIMIT);
  decoder.push(Buffer.concat([frame, encodeFrame(16, 0, Buffer.alloc(3))]));
  expectReason(() => decoder.next(), 'bad-crc');
  expectReason(() => decoder.next(), 'bad-crc');
  assert.equal(decoder.bufferedBytes, 0);
  assert.ok(decoder.failed instanceof WireError);
});

test('pushing before the previous chunk was consumed is a usage error', () => {
  const decoder = new FrameDecoder(LIMIT);
  decoder.push(stream);
  decoder.next();
  assert.throws(() => decoder.push(stream), RangeError);
});
