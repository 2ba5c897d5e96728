// The checkpoint sender and receiver wired to each other through a hand-driven "network": every
// piece can be inspected, dropped, corrupted or replayed, and time moves only when the test says.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { crc32 } from 'node:zlib';
import type {
  AskForCheckpointMessage, CheckpointAckMessage, CheckpointChunkMessage,
} from '../../src/core/messages.js';
import {
  CheckpointFormatError, decodeManifest, decodeTotals, encodeManifest, encodeTotals, manifestInstanceId,
  type CheckpointManifest,
} from '../../src/runtime/checkpoint/checkpoint-manifest.js';
import { CheckpointReceiver, type VerifiedCheckpoint } from '../../src/runtime/checkpoint/checkpoint-receiver.js';
import { CheckpointSender, type OpenedCheckpoint } from '../../src/runtime/checkpoint/checkpoint-sender.js';
import {
  DEFAULT_CHECKPOINT_TRANSFER_TIMING, type CheckpointTransferTiming,
} from '../../src/runtime/checkpoint/checkpoint-timing.js';
import { SILENT_LOGGER, type StateMachineSnapshot } from '../../src/runtime/interfaces.js';
import { SeededRandom } from '../../src/util/random.js';

const TIMING: CheckpointTransferTiming = {
  ...DEFAULT_CHECKPOINT_TRANSFER_TIMING, chunkBytes: 10, windowChunks: 3, ackTimeoutMs: 1_000, pieceTimeoutMs: 1_000,
  askTimeoutMs: 500,
};

const MANIFEST: CheckpointManifest = {
  entries: [{ stateMachineId: 5, instanceId: 40 }, { stateMachineId: 9, instanceId: 42 }],
  systemVariables: Uint8Array.of(1, 2, 3), masterVariables: undefined,
};

function bytes(length: number, seed: number): Uint8Array {
  return Uint8Array.from({ length }, (_, index) => (index * 13 + seed) & 0xff);
}

function snapshot(instanceId: number, data: Uint8Array, closed: number[]): StateMachineSnapshot {
  return {
    instanceId,
    chunks: (async function* chunks() {
      // Uneven source chunks: the sender re-cuts them into pieces of chunkBytes.
      yield data.subarray(0, 7);
      yield data.subarray(7);
    })(),
    close: () => { closed.push(instanceId); },
  };
}

class Harness {
  now = 0;
  readonly toReceiver: CheckpointChunkMessage[] = [];
  readonly toSender: (AskForCheckpointMessage | CheckpointAckMessage)[] = [];
  readonly installed: VerifiedCheckpoint[] = [];
  readonly closed: number[] = [];
  receiverInstance = 30;
  senderMinChosen = 35;
  readonly data = [bytes(45, 1), bytes(23, 2)];
  readonly sender: CheckpointSender;
  readonly receiver: CheckpointReceiver;
  installResult: Promise<void> = Promise.resolve();

  constructor(open?: () => Promise<OpenedCheckpoint | undefined>) {
    const clock = { now: () => this.now };
    this.sender = new CheckpointSender({
      groupIndex: 0, nodeId: 1, clock, random: new SeededRandom(1), logger: SILENT_LOGGER, timing: TIMING,
      send: (_to, message) => this.toReceiver.push(message),
      open: open ?? (async () => ({
        manifest: MANIFEST,
        snapshots: [
          snapshot(40, this.data[0] as Uint8Array, this.closed), snapshot(42, this.data[1] as Uint8Array, this.closed),
        ],
      })),
      minChosenInstanceId: () => this.senderMinChosen,
      onTimersChanged: () => {},
    });
    this.receiver = new CheckpointReceiver({
      groupIndex: 0, nodeId: 3, clock, logger: SILENT_LOGGER, timing: TIMING,
      send: (_to, message) => this.toSender.push(message),
      nowInstanceId: () => this.receiverInstance,
      install: async (checkpoint) => {
        this.installed.push(checkpoint);
        await this.installResult;
      },
      onTimersChanged: () => {},
    });
  }

  /** The receiver asks node 1, and the sender begins: its first window is in flight, undelivered. */
  async askAndStart(): Promise<void> {
    this.receiver.needCheckpoint(1);
    await settle();
    this.sender.onAsk(this.toSender.shift() as AskForCheckpointMessage);
    await settle();
  }

  /** Deliver everything in flight both ways until quiet; `tamper` may change or drop a piece. */
  async run(tamper: (piece: CheckpointChunkMessage) => CheckpointChunkMessage | null = (piece) => piece,
  ): Promise<void> {
    for (let round = 0; round < 1_000; round++) {
      await settle();
      if (this.toReceiver.length === 0 && this.toSender.length === 0) return;
      for (const message of this.toSender.splice(0)) {
        if (message.kind === 'askForCheckpoint') this.sender.onAsk(message);
        else this.sender.onAck(message);
      }
      for (const piece of this.toReceiver.splice(0)) {
        const delivered = tamper(piece);
        if (delivered !== null) this.receiver.onChunk(delivered);
      }
    }
    assert.fail('the transfer never went quiet');
  }
}

async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  return Uint8Array.from(parts.flatMap((part) => [...part]));
}

test('a checkpoint crosses whole: manifest, every snapshot byte in order, verified totals', async () => {
  const harness = new Harness();
  harness.receiver.needCheckpoint(1);
  await harness.run();
  assert.equal(harness.installed.length, 1);
  const checkpoint = harness.installed[0] as VerifiedCheckpoint;
  assert.equal(checkpoint.instanceId, 40, 'the lowest state machine instance');
  assert.deepEqual(checkpoint.manifest, MANIFEST);
  assert.deepEqual(checkpoint.snapshots.map((received) => concat(received.pieces)), harness.data);
  assert.ok(checkpoint.snapshots[0]!.pieces.every((piece) => piece.length <= TIMING.chunkBytes));
  assert.deepEqual(harness.closed, [40, 42], 'every snapshot is closed');
  assert.equal(harness.sender.stats.completed, 1);
  assert.equal(harness.sender.sendingTo, null);
  await settle();
  assert.equal(harness.receiver.phase, 'idle');
});

test('the sender keeps at most windowChunks pieces beyond the last ack', async () => {
  const harness = new Harness();
  await harness.askAndStart();
  // begin (0) + pieces 1..3: the window allows sequence ≤ acked (-1) + 3.
  assert.deepEqual(harness.toReceiver.map((piece) => piece.sequence), [0, 1, 2]);
});

test('a corrupted piece abandons the transfer on both sides; nothing is installed', async () => {
  const harness = new Harness();
  harness.receiver.needCheckpoint(1);
  const flipped = (piece: CheckpointChunkMessage): CheckpointChunkMessage =>
    ({ ...piece, data: Uint8Array.from(piece.data, (b) => b ^ 1) });
  await harness.run((piece) => (piece.sequence === 3 ? flipped(piece) : piece));
  assert.equal(harness.installed.length, 0);
  assert.equal(harness.receiver.stats.abandoned, 1);
  assert.equal(harness.sender.stats.abandoned, 1);
  assert.deepEqual(harness.closed, [40, 42]);
});

test('a lost piece (a gap) stalls the transfer until the piece timeout abandons it', async () => {
  const harness = new Harness();
  harness.receiver.needCheckpoint(1);
  await harness.run((piece) => (piece.sequence === 2 ? null : piece));
  assert.equal(harness.installed.length, 0);
  // Pieces after the gap wait for it; nothing arrives, so the receiver gives up after pieceTimeoutMs.
  assert.equal(harness.receiver.stats.abandoned, 0);
  harness.now += TIMING.pieceTimeoutMs;
  harness.receiver.tick();
  assert.equal(harness.receiver.stats.abandoned, 1);
  assert.equal(harness.receiver.phase, 'idle');
});

// Found by the simulator (checkpoint seeds on a network that reorders): every transfer whose window
// of pieces arrived out of order was abandoned, so a node behind every log never caught up.
test('pieces that arrive out of order within the window wait for the gap and the checkpoint installs', async () => {
  const harness = new Harness();
  harness.receiver.needCheckpoint(1);
  let held: CheckpointChunkMessage | null = null;
  await harness.run((piece) => {
    if (piece.sequence === 1 && held === null) {
      held = piece;
      return null;
    }
    if (piece.sequence === 3 && held !== null) {
      // Deliver 3, then the held 1 after it: 1 and 2 and 3 are kept in order.
      harness.receiver.onChunk(piece);
      const late = held;
      held = { ...late, sequence: -1 };
      return late;
    }
    return piece;
  });
  assert.equal(harness.receiver.stats.abandoned, 0);
  assert.equal(harness.installed.length, 1);
  assert.deepEqual(harness.installed[0]!.snapshots.map((received) => concat(received.pieces)), harness.data);
});

// Found by the simulator (seeds 71 and 135, with the node's log cleaner): pieces that overtook the
// begin were refused, which ended the sender's session as the begin started the receiver's; the
// receiver then waited in vain, every time, and a node behind every log never caught up.
test('pieces that arrive ahead of the begin wait for it and the checkpoint installs', async () => {
  const harness = new Harness();
  await harness.askAndStart();
  const window = harness.toReceiver.splice(0);
  assert.deepEqual(window.map((piece) => piece.sequence), [0, 1, 2]);
  for (const piece of window.reverse()) harness.receiver.onChunk(piece);
  assert.equal(harness.receiver.phase, 'receiving');
  assert.ok(harness.toSender.every((ack) => ack.kind === 'checkpointAck' && ack.ok), 'nothing is refused');
  await harness.run();
  assert.equal(harness.sender.stats.abandoned, 0);
  assert.equal(harness.receiver.stats.abandoned, 0);
  assert.equal(harness.installed.length, 1);
  assert.deepEqual(harness.installed[0]!.snapshots.map((received) => concat(received.pieces)), harness.data);
});

test('pieces from a peer not asked, before any begin, are still refused', async () => {
  const harness = new Harness();
  harness.receiver.needCheckpoint(2);
  await settle();
  harness.toSender.splice(0);
  harness.receiver.onChunk({
    kind: 'checkpointChunk', from: 1, instanceId: 40, session: 7, sequence: 1, part: 'data', stateMachineId: 5,
    data: Uint8Array.of(1), checksum: 0,
  });
  assert.deepEqual(harness.toSender.map((ack) => ack.kind === 'checkpointAck' && ack.ok), [false]);
});

test('totals that disagree with what arrived are refused', async () => {
  const harness = new Harness();
  harness.receiver.needCheckpoint(1);
  await harness.run((piece) => {
    if (piece.part !== 'end') return piece;
    const totals = decodeTotals(piece.data).map((total) => ({ ...total, crc32: total.crc32 ^ 1 }));
    const data = encodeTotals(totals);
    return { ...piece, data, checksum: crc32(data) };
  });
  assert.equal(harness.installed.length, 0);
  assert.equal(harness.receiver.stats.abandoned, 1);
});

test('one transfer at a time: a second sender is refused while one is under way', async () => {
  const harness = new Harness();
  await harness.askAndStart();
  harness.receiver.onChunk(harness.toReceiver.shift() as CheckpointChunkMessage);
  const intruder: CheckpointChunkMessage = {
    kind: 'checkpointChunk', from: 2, instanceId: 40, session: 99, sequence: 0, part: 'begin', stateMachineId: 0,
    data: encodeManifest(MANIFEST), checksum: crc32(encodeManifest(MANIFEST)),
  };
  harness.receiver.onChunk(intruder);
  const refusal = harness.toSender.at(-1) as CheckpointAckMessage;
  assert.equal(refusal.session, 99);
  assert.equal(refusal.ok, false);
  // And the sender serves one asker at a time.
  harness.sender.onAsk({ kind: 'askForCheckpoint', from: 4, instanceId: 1 });
  assert.equal(harness.sender.sendingTo, 3);
});

test('a begin nobody asked for, or from another peer than the one asked, is refused', async () => {
  const harness = new Harness();
  const begin: CheckpointChunkMessage = {
    kind: 'checkpointChunk', from: 1, instanceId: 40, session: 7, sequence: 0, part: 'begin', stateMachineId: 0,
    data: encodeManifest(MANIFEST), checksum: crc32(encodeManifest(MANIFEST)),
  };
  harness.receiver.onChunk(begin);
  assert.equal((harness.toSender.at(-1) as CheckpointAckMessage).ok, false, 'unsolicited');
  harness.receiver.needCheckpoint(2);
  harness.receiver.onChunk(begin);
  assert.equal((harness.toSender.at(-1) as CheckpointAckMessage).ok, false, 'node 2 was asked, not node 1');
  assert.equal(harness.receiver.phase, 'asked');
});

test('a checkpoint below the receiver\'s instance is refused; an asker the log can teach is not served', async () => {
  const harness = new Harness();
  harness.receiverInstance = 41; // above the manifest's 40: installing it would take the group back
  harness.receiver.needCheckpoint(1);
  const begin: CheckpointChunkMessage = {
    kind: 'checkpointChunk', from: 1, instanceId: 40, session: 7, sequence: 0, part: 'begin', stateMachineId: 0,
    data: encodeManifest(MANIFEST), checksum: crc32(encodeManifest(MANIFEST)),
  };
  harness.receiver.onChunk(begin);
  assert.equal((harness.toSender.at(-1) as CheckpointAckMessage).ok, false);
  assert.equal(harness.receiver.phase, 'asked', 'still waiting for a checkpoint it can use');

  const other = new Harness();
  other.sender.onAsk({ kind: 'askForCheckpoint', from: 3, instanceId: 35 }); // == min chosen: learn from the log
  await settle();
  assert.equal(other.toReceiver.length, 0);
  assert.equal(other.sender.stats.started, 0);
});

test('silence ends a transfer: the sender after ackTimeoutMs, the receiver after pieceTimeoutMs', async () => {
  const harness = new Harness();
  await harness.askAndStart();
  harness.receiver.onChunk(harness.toReceiver.shift() as CheckpointChunkMessage);
  assert.equal(harness.receiver.phase, 'receiving');
  harness.now = 999;
  harness.sender.tick();
  harness.receiver.tick();
  assert.equal(harness.sender.sendingTo, 3);
  harness.now = 1_000;
  harness.sender.tick();
  harness.receiver.tick();
  assert.equal(harness.sender.sendingTo, null);
  assert.equal(harness.receiver.phase, 'idle');
  await settle();
  assert.deepEqual(harness.closed, [40, 42], 'the snapshots are closed when the sender gives up');
});

test('an unanswered ask is repeated only after askTimeoutMs', async () => {
  const harness = new Harness();
  harness.receiver.needCheckpoint(1);
  harness.receiver.needCheckpoint(2);
  assert.equal(harness.toSender.length, 1);
  harness.now = 500;
  harness.receiver.tick();
  harness.receiver.needCheckpoint(2);
  assert.equal(harness.toSender.length, 2);
});

test('a sender with no snapshot to give abandons without sending anything', async () => {
  const harness = new Harness(async () => undefined);
  harness.sender.onAsk({ kind: 'askForCheckpoint', from: 3, instanceId: 1 });
  await settle();
  assert.equal(harness.toReceiver.length, 0);
  assert.equal(harness.sender.stats.abandoned, 1);
  assert.equal(harness.sender.sendingTo, null);
});

test('manifests and totals round-trip and refuse every other shape', () => {
  const encoded = encodeManifest(MANIFEST);
  assert.deepEqual(decodeManifest(encoded), MANIFEST);
  assert.equal(manifestInstanceId(MANIFEST), 40);
  for (let length = 0; length < encoded.length; length++) {
    assert.throws(() => decodeManifest(encoded.subarray(0, length)), CheckpointFormatError, `cut to ${length}`);
  }
  assert.throws(() => decodeManifest(concat([encoded, Uint8Array.of(0)])), CheckpointFormatError);
  const twice = encodeManifest({ ...MANIFEST, entries: [MANIFEST.entries[0]!, MANIFEST.entries[0]!] });
  assert.throws(() => decodeManifest(twice), /listed twice/);
  const badVersion = encoded.slice();
  badVersion[0] = 9;
  assert.throws(() => decodeManifest(badVersion), /version 9/);
  const totals = [{ stateMachineId: 5, bytes: 2 ** 40, crc32: 0xffff_ffff }];
  assert.deepEqual(decodeTotals(encodeTotals(totals)), totals);
  assert.throws(() => decodeTotals(encodeTotals(totals).subarray(1)), CheckpointFormatError);
});
