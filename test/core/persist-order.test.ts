// The one rule of which outbound messages wait for the Ready's records to be durable.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NULL_BALLOT } from '../../src/core/ballot.js';
import { MESSAGE_KINDS, type MessageKind, type PaxosMessage } from '../../src/core/messages.js';
import { waitsForPersist } from '../../src/core/persist-order.js';
import { utf8 } from '../../src/util/bytes.js';
import { ballot } from './fixtures.js';

const b = ballot(3, 1);
const value = utf8('v');

/** One message of each kind, a promise/accept and a rejection for the replies. */
const SAMPLES: readonly (readonly [PaxosMessage, boolean])[] = [
  [{ kind: 'prepare', from: 1, instanceId: 0, ballot: b }, true],
  [{ kind: 'prepareReply', from: 2, instanceId: 0, ballot: b, rejectedBy: 0, acceptedBallot: NULL_BALLOT,
    acceptedValue: null }, true],
  [{ kind: 'prepareReply', from: 2, instanceId: 0, ballot: b, rejectedBy: 7, acceptedBallot: NULL_BALLOT,
    acceptedValue: null }, false],
  [{ kind: 'accept', from: 1, instanceId: 0, ballot: b, value, lastChecksum: 0, previousBallot: NULL_BALLOT }, false],
  [{ kind: 'acceptReply', from: 2, instanceId: 0, ballot: b, rejectedBy: 0 }, true],
  [{ kind: 'acceptReply', from: 2, instanceId: 0, ballot: b, rejectedBy: 7 }, false],
  [{ kind: 'chosen', from: 1, instanceId: 0, ballot: b, lastChecksum: 0 }, false],
  [{ kind: 'askForLearn', from: 1, instanceId: 0 }, false],
  [{ kind: 'sendNowInstanceId', from: 1, instanceId: 0, nowInstanceId: 4, minChosenInstanceId: 0 }, false],
  [{ kind: 'confirmAskForLearn', from: 1, instanceId: 0 }, false],
  [{ kind: 'learnValue', from: 1, instanceId: 0, ballot: b, value, checksum: 0, needAck: true }, false],
  [{ kind: 'learnValueAck', from: 1, instanceId: 1 }, true],
  [{ kind: 'askForCheckpoint', from: 3, instanceId: 1 }, false],
  [{ kind: 'checkpointChunk', from: 1, instanceId: 9, session: 1, sequence: 0, part: 'begin', stateMachineId: 0,
    data: value, checksum: 0 }, false],
  [{ kind: 'checkpointAck', from: 3, instanceId: 9, session: 1, sequence: 0, ok: true }, false],
];

test('promises, accepts, learn acks and prepares wait for the disk; rejections and the rest do not', () => {
  for (const [message, expected] of SAMPLES) {
    assert.equal(waitsForPersist(message), expected, `${message.kind} ${JSON.stringify(message)}`);
  }
  const covered = new Set<MessageKind>(SAMPLES.map(([message]) => message.kind));
  assert.deepEqual(MESSAGE_KINDS.filter((kind) => !covered.has(kind)), [], 'every kind is decided here');
});
