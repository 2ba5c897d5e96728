// Fuzzing the receive path (FrameDecoder, then decodeMessage) with a seeded PRNG: well over
// 100,000 mutated frames and streams. Whatever arrives, only a WireError may escape, a frame is
// accepted only if its bytes are exactly what was sent, and the decoder never holds more than one
// frame's worth of memory under its limit. Then 2,000 mutated frames through a live socket into a
// TcpTransport, behind a valid handshake: exactly the frames with a valid CRC that decode (and that
// the transport's rules admit) are delivered, and the transport keeps working.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { PaxosMessage } from '../../src/core/messages.js';
import {
  FIRST_MESSAGE_KIND_CODE, MESSAGE_KIND_CODES, decodeMessage, encodeMessage,
} from '../../src/io/message-codec.js';
import { WireError } from '../../src/io/wire-error.js';
import { FRAME_HEADER_BYTES, FrameDecoder, encodeFrame, encodeMessageFrame } from '../../src/io/wire-frame.js';
import { SeededRandom } from '../../src/util/random.js';
import {
  RawPeer, UNUSED_ADDRESS, ask, closeAll, handshakeFrame, startNode, waitFor, type Received,
} from './transport-fixtures.js';
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
  // Mutated inputs only: an input counts when its bytes differ from the valid frame it came from
  // (flips that cancel out and rewrites with the same byte do not count). Damaged bodies behind a
  // valid CRC are counted apart, and valid streams cut at random places (a check, not a mutation)
  // not at all.
  const counts = { bitFlips: 0, byteWrites: 0, truncations: 0, garbage: 0, lengths: 0 };
  let bodies = 0;
  let streams = 0;
  const began = Date.now();

  // Bit flips (1-3 bits) anywhere, with a valid frame after the damaged one.
  for (let i = 0; i < 30_000; i++) {
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
      counts.bitFlips++;
      assert.equal(outcome.frames.length, 0, 'a frame with flipped bits is never accepted (nor what follows it)');
    }
  }

  // Random bytes written at random positions (may rewrite a byte with its own value).
  for (let i = 0; i < 15_000; i++) {
    const { frame } = randomFrame(random);
    const damaged = Buffer.from(frame);
    overwrite(random, damaged, random.int(1, 6));
    const outcome = feed(random, damaged);
    if (damaged.equals(frame)) assertOnlyOriginals(outcome, [frame], 'byte writes that changed nothing');
    else {
      counts.byteWrites++;
      assert.equal(outcome.frames.length, 0, 'a frame with rewritten bytes is never accepted');
    }
  }

  // Truncation at every offset: never an error, never a frame, and exactly the prefix buffered. (The
  // empty prefix, cut 0, is not an input and does not count.)
  for (let i = 0; i < 600; i++) {
    const { frame } = randomFrame(random);
    for (let cut = 0; cut < frame.length; cut++, counts.truncations += cut > 0 ? 1 : 0) {
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
  for (let i = 0; i < 15_000; i++) {
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
    else {
      counts.lengths++;
      assert.equal(outcome.frames.length, 0, `a frame claiming length ${claimed} instead of ${actual}`);
    }
  }

  // Valid frames around damaged bodies: the message decoder sees every shape, and must cope.
  for (let i = 0; i < 15_000; i++) {
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
    if (!damaged.equals(body) || kind !== MESSAGE_KIND_CODES[message.kind]) bodies++;
    const frame = encodeFrame(kind, group, damaged);
    const outcome = feed(random, frame);
    assert.equal(outcome.error, null, 'a frame with a valid CRC passes the frame decoder');
    assertOnlyOriginals(outcome, [frame], 'damaged body');
  }

  // Streams of valid frames cut at random places come out whole and in order.
  for (let i = 0; i < 12_000; i++, streams++) {
    const frames = Array.from({ length: random.int(1, 6) }, () => randomFrame(random).frame);
    const outcome = feed(random, Buffer.concat(frames));
    assert.equal(outcome.error, null);
    assertOnlyOriginals(outcome, frames, 'valid stream');
    assert.equal(outcome.frames.length, frames.length);
  }

  // With SEED the mix is 116,050 mutated inputs: 29,961 bit flips, 14,985 byte rewrites, 42,547
  // truncations, 15,000 garbage and 13,557 length fields; besides, 14,995 damaged bodies behind a
  // valid CRC and 12,000 valid streams. The mutated inputs must stay at 100,000 or more whatever the
  // generators do.
  const mutated = Object.values(counts).reduce((sum, count) => sum + count, 0);
  assert.ok(mutated >= 100_000, `${mutated} mutated inputs: ${JSON.stringify(counts)}`);
  assert.ok(bodies >= 14_000, `${bodies} damaged bodies`);
  assert.equal(streams, 12_000);
  assert.ok(Date.now() - began < 60_000, 'the fuzz run stays quick');
});

const LIVE_FRAMES = 2_000;
const LIVE_MAX_FRAME = 64 * 1024;
const LIVE_GROUPS = 4;
/**
 * Raw connections at a time, each posing as its own node (1 to LIVE_CONCURRENCY) so that none
 * replaces another's connection; fewer than the transport's bound on handshakes per address.
 */
const LIVE_CONCURRENCY = 6;
/** The node under fuzz and its honest peer: higher ids than every poser, which dial it. */
const TARGET = 10;
const HONEST = 11;
const SENTINEL_BASE = 1_000_000_000;

type LiveMutation = 'bitFlips' | 'lengths' | 'truncations' | 'garbage' | 'bodies' | 'headers';

/** A frame from node `from`, mutated one way or another (its bytes always differ from the valid frame). */
function liveMutation(random: SeededRandom, from: number): { bytes: Buffer; mutation: LiveMutation } {
  const message = { ...randomMessage(random, 300), from } as PaxosMessage;
  const group = random.int(0, LIVE_GROUPS);
  const frame = encodeMessageFrame(group, message);
  const body = Buffer.from(encodeMessage(message));
  const kind = MESSAGE_KIND_CODES[message.kind];
  switch (random.int(0, 6)) {
    case 0: {
      const damaged = Buffer.from(frame);
      for (let flips = random.int(1, 4); flips > 0 || damaged.equals(frame); flips--) {
        const bit = random.int(0, damaged.length * 8);
        damaged[bit >> 3] = (damaged[bit >> 3] as number) ^ (1 << (bit & 7));
      }
      return { bytes: damaged, mutation: 'bitFlips' };
    }
    case 1: {
      const actual = frame.length - 4;
      const choices = [0, random.int(1, 10), 9, LIVE_MAX_FRAME + 1, 0xffff_ffff, actual + random.int(1, 9),
        actual - random.int(1, 9)];
      const damaged = Buffer.from(frame);
      damaged.writeUInt32LE((choices[random.int(0, choices.length)] as number) >>> 0, 0);
      if (damaged.equals(frame)) damaged.writeUInt32LE(actual + 1, 0);
      return { bytes: damaged, mutation: 'lengths' };
    }
    case 2:
      return { bytes: frame.subarray(0, random.int(1, frame.length)), mutation: 'truncations' };
    case 3: {
      const garbage = Buffer.alloc(random.int(1, 300));
      for (let j = 0; j < garbage.length; j++) garbage[j] = random.int(0, 256);
      if (random.chance(0.5) && garbage.length >= FRAME_HEADER_BYTES) {
        garbage.writeUInt32LE(garbage.length - 4, 0);
        garbage[4] = 1;
      }
      return { bytes: garbage, mutation: 'garbage' };
    }
    case 4: {
      // A damaged body behind a valid CRC: it may still decode, and is then delivered.
      let damaged: Buffer;
      const shape = random.int(0, 3);
      if (shape === 0) damaged = body.subarray(0, random.int(0, body.length));
      else if (shape === 1) damaged = Buffer.concat([body, Buffer.alloc(random.int(1, 9), random.int(0, 256))]);
      else {
        damaged = Buffer.from(body);
        overwrite(random, damaged, random.int(1, 4));
        if (damaged.equals(body)) damaged[12] = (damaged[12] as number) ^ 1;
      }
      return { bytes: encodeFrame(kind, group, damaged), mutation: 'bodies' };
    }
    default: {
      // Header fields behind a valid CRC: another kind, another group, or another sender.
      const field = random.int(0, 3);
      if (field === 0) {
        let other = random.int(0, 256);
        if (other === kind) other = (other + 1) & 0xff;
        return { bytes: encodeFrame(other, group, body), mutation: 'headers' };
      }
      if (field === 1) {
        const other = random.chance(0.5) ? (group + random.int(1, LIVE_GROUPS)) % LIVE_GROUPS
          : random.int(LIVE_GROUPS, 0x1_0000_0000);
        return { bytes: encodeFrame(kind, other, body), mutation: 'headers' };
      }
      const spoofed = Buffer.from(body);
      spoofed.writeUInt32LE((from + random.int(1, 0xffff_ffff)) % 0x1_0000_0000, 0);
      return { bytes: encodeFrame(kind, group, spoofed), mutation: 'headers' };
    }
  }
}

/**
 * What the transport must deliver from these bytes on an authenticated connection from node `from`,
 * by its rules: a frame that breaks framing or fails its CRC, a connection frame kind, or a body that
 * does not decode ends the connection; an unknown kind, a group out of range, or another sender drops
 * the frame alone.
 */
function deliverable(bytes: Buffer, from: number): Received[] {
  const decoder = new FrameDecoder(LIVE_MAX_FRAME);
  const delivered: Received[] = [];
  decoder.push(bytes);
  try {
    for (let frame = decoder.next(); frame !== undefined; frame = decoder.next()) {
      if (frame.kind < FIRST_MESSAGE_KIND_CODE) break;
      if (frame.group >= LIVE_GROUPS) continue;
      let message: PaxosMessage;
      try {
        message = decodeMessage(frame.kind, frame.body);
      } catch (error) {
        assert.ok(error instanceof WireError);
        if (error.reason === 'unknown-kind') continue;
        break;
      }
      if (message.from === from) delivered.push({ group: frame.group, message });
    }
  } catch (error) {
    assert.ok(error instanceof WireError);
  }
  return delivered;
}

function keyOf(entry: Received): string {
  return `${entry.group} ${JSON.stringify(entry.message, (_key, value: unknown) =>
    value instanceof Uint8Array ? Buffer.from(value).toString('hex') : value)}`;
}

test('fuzz through a live socket: mutated frames after a valid handshake', async (t) => {
  const posers = Array.from({ length: LIVE_CONCURRENCY }, (_, i) => i + 1);
  const honest = await startNode(HONEST, { [TARGET]: UNUSED_ADDRESS });
  const target = await startNode(TARGET, { ...Object.fromEntries(posers.map((id) => [id, UNUSED_ADDRESS])),
    [HONEST]: honest.address }, { maxFrameBytes: LIVE_MAX_FRAME });
  t.after(() => closeAll([target, honest]));
  await waitFor(() => target.connectedTo(HONEST), 'the honest pair connects');
  const random = new SeededRandom(SEED + 1);
  // With SEED + 1: 342 bit flips, 369 length fields, 345 truncations, 310 garbage, 331 damaged bodies
  // and 303 changed kinds, groups or senders (the last two behind a valid CRC). 40 of them are valid
  // messages and delivered, 413 connections survive to deliver their sentinel; the rest end in 724
  // CRC errors, 425 malformed frames, 315 oversized lengths, 28 bad versions and 144 truncated frames,
  // besides 80 unknown kinds, 60 groups out of range and 135 spoofed senders dropped.
  const counts: Record<LiveMutation, number> = { bitFlips: 0, lengths: 0, truncations: 0, garbage: 0, bodies: 0,
    headers: 0 };
  const streams: Buffer[] = [];
  const expected: string[] = [];
  let expectedMutated = 0;
  for (let i = 0; i < LIVE_FRAMES; i++) {
    const from = posers[i % posers.length] as number;
    const { bytes, mutation } = liveMutation(random, from);
    counts[mutation]++;
    // A valid frame after the mutated one shows whether the connection survived it (and in sync).
    const stream = Buffer.concat([bytes, encodeMessageFrame(0, ask(from, SENTINEL_BASE + i))]);
    streams.push(stream);
    const delivered = deliverable(stream, from);
    expectedMutated += delivered.filter((entry) => entry.message.instanceId < SENTINEL_BASE).length;
    expected.push(...delivered.map(keyOf));
  }
  // Poser p sends streams p - 1, p - 1 + LIVE_CONCURRENCY, ..., one connection after another.
  const worker = async (from: number): Promise<void> => {
    for (let i = from - 1; i < streams.length; i += posers.length) {
      const peer = await RawPeer.connect(target.address.port);
      peer.write(Buffer.concat([handshakeFrame(from, TARGET), streams[i] as Buffer]));
      // Ending the stream cuts short a frame still waiting for bytes (no stall timeout to wait for).
      peer.socket.end();
      await peer.waitClosed();
    }
  };
  await Promise.all(posers.map(worker));
  assert.equal(Object.values(counts).reduce((sum, count) => sum + count, 0), LIVE_FRAMES);
  assert.ok(Object.values(counts).every((count) => count >= 250), `every mutation is well represented: ${
    JSON.stringify(counts)}`);
  const actual = target.received.filter((entry) => entry.message.from !== HONEST).map(keyOf);
  assert.equal(actual.length, expected.length, 'as many deliveries as the rules allow');
  assert.deepEqual([...actual].sort(), [...expected].sort(), 'exactly the deliverable frames were delivered');
  const stats = target.stats();
  assert.equal(stats.handshakesCompleted, LIVE_FRAMES + 1, 'every raw connection handshook (and the honest peer)');
  assert.equal(stats.handshakesFailed, 0);
  assert.equal(stats.connectionsReplaced, 0);
  assert.equal(stats.handlerErrors, 0);
  assert.deepEqual(target.logger.lines.filter((line) => line.level === 'error'), [], 'no bug was hit');
  assert.ok(expectedMutated > 0, 'some mutated frames were valid messages');
  assert.ok(stats.crcErrors > 0 && stats.malformedFrames > 0 && stats.oversizedFrames > 0 && stats.truncatedFrames > 0);
  assert.equal(stats.openConnections, 1, 'only the honest peer is still connected');
  assert.equal(stats.receiveBufferBytes, 0);
  // The legitimate peer still works.
  target.transport.send(1, HONEST, ask(TARGET, 1));
  honest.transport.send(2, TARGET, ask(HONEST, 2));
  await waitFor(() => target.from(HONEST).length === 1 && honest.from(TARGET).length === 1, 'an honest round trip');
});
