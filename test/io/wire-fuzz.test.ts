// Fuzzing the receive path (FrameDecoder, then decodeMessage) with a seeded PRNG: well over
// 100,000 damaged frames and streams. Whatever arrives, only a WireError may escape, a frame is
// accepted only if its bytes are exactly what was sent, and the decoder never holds more than one
// frame's worth of memory under its limit.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { PaxosMessage } from '../../src/core/messages.js';
import { MESSAGE_KIND_CODES, decodeMessage, encodeMessage } from '../../src/io/message-codec.js';
import { WireError } from '../../src/io/wire-error.js';
import { FRAME_HEADER_BYTES, FrameDecoder, encodeFrame, encodeMessageFrame } from '../../src/io/wire-frame.js';
import { SeededRandom } from '../../src/util/random.js';
import { randomMessage } from './wire-fixtures.js';

const LIMIT = 4096;
const SEED = 0x5eed_2024;

interface Outcome {
  /** Accepted frames, as the exact bytes they occupied (header included). */
  readonly frames: Buffer[];
  readonly error: WireError | null;
}

/** Feed `data` in random chunks; returns what was accepted and the error, if any. */
function feed(random: SeededRandom, data: Buffer, decoder = new FrameDecoder(LIMIT)): Outcome {
  const frames: Buffer[] = [];
  let offset = 0;
  while (offset < data.length) {
    const size = random.chance(0.5) ? data.length - offset : random.int(1, data.length - offset + 1);
    decoder.push(data.subarray(offset, offset + size));
    offset += size;
    try {
      for (let frame = decoder.next(); frame !== undefined; frame = decoder.next()) {
        frames.push(reframe(frame.kind, frame.group, frame.body));
        decodeAccepted(frame.kind, frame.body);
      }
    } catch (error) {
      assert.ok(error instanceof WireError, `only WireError may escape, got ${String(error)}`);
      assert.equal(decoder.bufferedBytes, 0);
      return { frames, error };
    }
    assert.ok(decoder.bufferedBytes <= 4 + LIMIT, 'buffered bytes stay under the limit');
    assert.ok(decoder.allocatedBytes <= 4 + LIMIT, 'allocated bytes stay under the limit');
  }
  return { frames, error: null };
}

/** The decoded frame re-encoded, to compare with what was sent byte for byte. */
function reframe(kind: number, group: number, body: Buffer): Buffer {
  return encodeFrame(kind, group, body);
}

/** A frame that passed its CRC goes on to the message decoder, which may only throw a WireError. */
function decodeAccepted(kind: number, body: Buffer): void {
  try {
    const message = decodeMessage(kind, body);
    // Canonical encoding: whatever decodes re-encodes to the same bytes.
    assert.deepEqual(Buffer.from(encodeMessage(message)), Buffer.from(body));
  } catch (error) {
    if (error instanceof WireError) return;
    throw error;
  }
}

function randomFrame(random: SeededRandom): { message: PaxosMessage; group: number; frame: Buffer } {
  const message = randomMessage(random, 300);
  const group = random.chance(0.8) ? random.int(0, 4) : random.next32();
  return { message, group, frame: encodeMessageFrame(group, message) };
}

/** Write `count` random bytes at random positions (a write may leave a byte as it was). */
function overwrite(random: SeededRandom, bytes: Buffer, count: number): void {
  for (let i = 0; i < count; i++) bytes[random.int(0, bytes.length)] = random.int(0, 256);
}

/** Accepted frames must each be one of the frames sent, in order, with nothing damaged accepted. */
function assertOnlyOriginals(outcome: Outcome, originals: readonly Buffer[], what: string): void {
  assert.ok(outcome.frames.length <= originals.length, `${what}: more frames than were sent`);
  outcome.frames.forEach((frame, i) => {
    assert.deepEqual(frame, originals[i], `${what}: frame ${i} was accepted with different bytes`);
  });
}

test('fuzz: damaged frames, truncations, garbage and length mutations through both decoders', () => {
  const random = new SeededRandom(SEED);
  const counts = { bitFlips: 0, byteWrites: 0, truncations: 0, garbage: 0, lengths: 0, bodies: 0, streams: 0 };
  const began = Date.now();

  // Bit flips (1-3 bits) anywhere, with a valid frame after the damaged one.
  for (let i = 0; i < 30_000; i++, counts.bitFlips++) {
    const { frame } = randomFrame(random);
    const next = randomFrame(random).frame;
    const damaged = Buffer.from(frame);
    for (let flips = random.int(1, 4); flips > 0; flips--) {
      const bit = random.int(0, damaged.length * 8);
      damaged[bit >> 3] = (damaged[bit >> 3] as number) ^ (1 << (bit & 7));
    }
    const unchanged = damaged.equals(frame);
    const outcome = feed(random, Buffer.concat([damaged, next]));
    if (unchanged) {
      assert.equal(outcome.error, null);
      assertOnlyOriginals(outcome, [frame, next], 'flips that cancelled out');
      assert.equal(outcome.frames.length, 2);
    } else {
      assert.equal(outcome.frames.length, 0, 'a frame with flipped bits is never accepted (nor what follows it)');
    }
  }

  // Random bytes written at random positions (may rewrite a byte with its own value).
  for (let i = 0; i < 15_000; i++, counts.byteWrites++) {
    const { frame } = randomFrame(random);
    const damaged = Buffer.from(frame);
    overwrite(random, damaged, random.int(1, 6));
    const outcome = feed(random, damaged);
    if (damaged.equals(frame)) assertOnlyOriginals(outcome, [frame], 'byte writes that changed nothing');
    else assert.equal(outcome.frames.length, 0, 'a frame with rewritten bytes is never accepted');
  }

  // Truncation at every offset: never an error, never a frame, and exactly the prefix buffered.
  for (let i = 0; i < 400; i++) {
    const { frame } = randomFrame(random);
    for (let cut = 0; cut < frame.length; cut++, counts.truncations++) {
      const decoder = new FrameDecoder(LIMIT);
      decoder.push(frame.subarray(0, cut));
      assert.equal(decoder.next(), undefined);
      assert.equal(decoder.bufferedBytes, cut);
    }
  }

  // Garbage: random bytes, half of them behind a plausible header (length in range, version 1).
  for (let i = 0; i < 15_000; i++, counts.garbage++) {
    const garbage = Buffer.alloc(random.int(1, 400));
    for (let j = 0; j < garbage.length; j++) garbage[j] = random.int(0, 256);
    if (random.chance(0.5) && garbage.length >= FRAME_HEADER_BYTES) {
      garbage.writeUInt32LE(garbage.length - 4, 0);
      garbage[4] = 1;
    }
    const outcome = feed(random, garbage);
    assert.equal(outcome.frames.length, 0, 'garbage is never accepted as a frame');
  }

  // The length field set to interesting values, with a valid frame after it.
  for (let i = 0; i < 15_000; i++, counts.lengths++) {
    const { frame } = randomFrame(random);
    const next = randomFrame(random).frame;
    const actual = frame.length - 4;
    const damaged = Buffer.from(frame);
    const choices = [0, random.int(1, 10), 9, 10, LIMIT, LIMIT + 1, 0xffff_ffff, 0x8000_0000, random.int(10, LIMIT + 1),
      actual + random.int(-8, 9), actual];
    const claimed = choices[random.int(0, choices.length)] as number;
    damaged.writeUInt32LE(Math.max(0, claimed) >>> 0, 0);
    const outcome = feed(random, Buffer.concat([damaged, next]));
    if (damaged.equals(frame)) assertOnlyOriginals(outcome, [frame, next], 'the true length');
    else assert.equal(outcome.frames.length, 0, `a frame claiming length ${claimed} instead of ${actual}`);
  }

  // Valid frames around damaged bodies: the message decoder sees every shape, and must cope.
  for (let i = 0; i < 15_000; i++, counts.bodies++) {
    const { message, group } = randomFrame(random);
    const body = Buffer.from(encodeMessage(message));
    const mutation = random.int(0, 4);
    let damaged: Buffer;
    if (mutation === 0 && body.length > 0) damaged = body.subarray(0, random.int(0, body.length));
    else if (mutation === 1) damaged = Buffer.concat([body, Buffer.alloc(random.int(1, 9), random.int(0, 256))]);
    else {
      damaged = Buffer.from(body);
      overwrite(random, damaged, random.int(1, 4));
    }
    const kind = random.chance(0.05) ? random.int(0, 256) : MESSAGE_KIND_CODES[message.kind];
    const frame = encodeFrame(kind, group, damaged);
    const outcome = feed(random, frame);
    assert.equal(outcome.error, null, 'a frame with a valid CRC passes the frame decoder');
    assertOnlyOriginals(outcome, [frame], 'damaged body');
  }

  // Streams of valid frames cut at random places come out whole and in order.
  for (let i = 0; i < 12_000; i++, counts.streams++) {
    const frames = Array.from({ length: random.int(1, 6) }, () => randomFrame(random).frame);
    const outcome = feed(random, Buffer.concat(frames));
    assert.equal(outcome.error, null);
    assertOnlyOriginals(outcome, frames, 'valid stream');
    assert.equal(outcome.frames.length, frames.length);
  }

  const total = Object.values(counts).reduce((sum, count) => sum + count, 0);
  assert.ok(total >= 100_000, `${total} cases`);
  assert.ok(Date.now() - began < 60_000, 'the fuzz run stays quick');
});
