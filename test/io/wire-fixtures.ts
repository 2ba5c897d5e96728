// Messages for wire tests: one of every kind with chosen field values, and random ones from a seed.
import type { Ballot } from '../../src/core/ballot.js';
import type { PaxosMessage } from '../../src/core/messages.js';
import type { SeededRandom } from '../../src/util/random.js';

export const MAX_SAFE = Number.MAX_SAFE_INTEGER;
export const MAX_U32 = 0xffff_ffff;

export function bytes(length: number, seed = 1): Uint8Array {
  const value = new Uint8Array(length);
  for (let i = 0; i < length; i++) value[i] = (i * 31 + seed * 7) & 0xff;
  return value;
}

/** One message of every kind; `n` picks between edge values (0: smallest, 1: largest, 2: ordinary). */
export function everyKind(n: 0 | 1 | 2): PaxosMessage[] {
  const id = [0, MAX_SAFE, 1234567][n] as number;
  const node = [1, MAX_U32, 3][n] as number;
  const ballot: Ballot = { proposalId: id, nodeId: [0, MAX_U32, 2][n] as number };
  const checksum = [0, MAX_U32, 0xdeadbeef][n] as number;
  const value = bytes([0, 70_000, 300][n] as number, n);
  return [
    { kind: 'prepare', from: node, instanceId: id, ballot },
    { kind: 'prepareReply', from: node, instanceId: id, ballot, rejectedBy: id, acceptedBallot: ballot, acceptedValue: null },
    { kind: 'prepareReply', from: node, instanceId: id, ballot, rejectedBy: 0, acceptedBallot: ballot, acceptedValue: value },
    { kind: 'accept', from: node, instanceId: id, ballot, value, lastChecksum: checksum, previousBallot: ballot },
    { kind: 'acceptReply', from: node, instanceId: id, ballot, rejectedBy: id },
    { kind: 'chosen', from: node, instanceId: id, ballot, lastChecksum: checksum },
    { kind: 'askForLearn', from: node, instanceId: id },
    { kind: 'sendNowInstanceId', from: node, instanceId: id, nowInstanceId: id, minChosenInstanceId: id },
    { kind: 'confirmAskForLearn', from: node, instanceId: id },
    { kind: 'learnValue', from: node, instanceId: id, ballot, value, checksum, needAck: n !== 0 },
    { kind: 'learnValueAck', from: node, instanceId: id },
    { kind: 'askForCheckpoint', from: node, instanceId: id },
    {
      kind: 'checkpointChunk', from: node, instanceId: id, session: [0, MAX_U32, 77][n] as number, sequence: id,
      part: (['begin', 'end', 'data'] as const)[n], stateMachineId: [0, MAX_U32, 5][n] as number, data: value, checksum,
    },
    { kind: 'checkpointAck', from: node, instanceId: id, session: [0, MAX_U32, 77][n] as number, sequence: id, ok: n !== 0 },
  ];
}

function randomSafe(random: SeededRandom): number {
  switch (random.int(0, 4)) {
    case 0: return 0;
    case 1: return MAX_SAFE - random.int(0, 3);
    case 2: return random.int(0, 1000);
    default: return Math.floor(random.float() * MAX_SAFE);
  }
}

function randomBallot(random: SeededRandom): Ballot {
  return { proposalId: randomSafe(random), nodeId: random.chance(0.2) ? 0 : random.next32() };
}

function randomValue(random: SeededRandom, maxLength: number): Uint8Array {
  const value = new Uint8Array(random.chance(0.2) ? 0 : random.int(0, maxLength + 1));
  for (let i = 0; i < value.length; i++) value[i] = random.next32() & 0xff;
  return value;
}

/** A random message of a random kind, values up to `maxValue` bytes. */
export function randomMessage(random: SeededRandom, maxValue = 200): PaxosMessage {
  const from = random.chance(0.1) ? MAX_U32 : random.int(1, 10);
  const instanceId = randomSafe(random);
  switch (random.int(0, 13)) {
    case 0: return { kind: 'prepare', from, instanceId, ballot: randomBallot(random) };
    case 1: return {
      kind: 'prepareReply', from, instanceId, ballot: randomBallot(random), rejectedBy: randomSafe(random),
      acceptedBallot: randomBallot(random), acceptedValue: random.chance(0.3) ? null : randomValue(random, maxValue),
    };
    case 2: return {
      kind: 'accept', from, instanceId, ballot: randomBallot(random), value: randomValue(random, maxValue),
      lastChecksum: random.next32(), previousBallot: randomBallot(random),
    };
    case 3: return { kind: 'acceptReply', from, instanceId, ballot: randomBallot(random), rejectedBy: randomSafe(random) };
    case 4: return { kind: 'chosen', from, instanceId, ballot: randomBallot(random), lastChecksum: random.next32() };
    case 5: return { kind: 'askForLearn', from, instanceId };
    case 6: return {
      kind: 'sendNowInstanceId', from, instanceId, nowInstanceId: randomSafe(random),
      minChosenInstanceId: randomSafe(random),
    };
    case 7: return { kind: 'confirmAskForLearn', from, instanceId };
    case 8: return {
      kind: 'learnValue', from, instanceId, ballot: randomBallot(random), value: randomValue(random, maxValue),
      checksum: random.next32(), needAck: random.chance(0.5),
    };
    case 9: return { kind: 'learnValueAck', from, instanceId };
    case 10: return { kind: 'askForCheckpoint', from, instanceId };
    case 11: return {
      kind: 'checkpointChunk', from, instanceId, session: random.next32(), sequence: randomSafe(random),
      part: (['begin', 'data', 'end'] as const)[random.int(0, 3)] ?? 'data', stateMachineId: random.next32(),
      data: randomValue(random, maxValue), checksum: random.next32(),
    };
    default: return {
      kind: 'checkpointAck', from, instanceId, session: random.next32(), sequence: randomSafe(random),
      ok: random.chance(0.5),
    };
  }
}
