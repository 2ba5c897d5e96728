// The simulated network's version of the transport's chosen elision (io/chosen-elision.ts): a
// notification waits for the end of the event it was sent in, is left out when the next accept on
// the same link answers it, and otherwise goes out; with elision off, every notification goes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AcceptMessage, ChosenMessage, PaxosMessage } from '../../src/core/messages.js';
import { SimNetwork } from '../../src/testing/sim/sim-network.js';
import { SimScheduler } from '../../src/testing/sim/scheduler.js';
import { SeededRandom } from '../../src/util/random.js';

const B = { proposalId: 5, nodeId: 1 };
const RELIABLE = { lossRate: 0, duplicateRate: 0, minDelayMs: 1, maxDelayMs: 2, slowRate: 0 };

function chosen(instanceId: number, ballot = B): ChosenMessage {
  return { kind: 'chosen', from: 1, instanceId, ballot, lastChecksum: 0 };
}

function accept(instanceId: number, previousBallot = B): AcceptMessage {
  return { kind: 'accept', from: 1, instanceId, ballot: B, value: new Uint8Array(4), lastChecksum: 0, previousBallot };
}

interface Sent { readonly group: number; readonly to: number; readonly message: PaxosMessage }

/** Runs `sends` as one event of node 1, then everything after it; returns what each peer received. */
async function oneEvent(elide: boolean, sends: readonly Sent[]): Promise<{ received: string[]; elided: number }> {
  const scheduler = new SimScheduler();
  const network = new SimNetwork(scheduler, new SeededRandom(7), { ...RELIABLE }, () => {}, elide);
  const received: string[] = [];
  for (const id of [2, 3]) {
    network.transportFor(id, () => true).onMessage((group, message) => {
      received.push(`${id}:g${group}:${message.kind}:${message.instanceId}`);
    });
  }
  scheduler.at(10, () => {
    for (const { group, to, message } of sends) network.send(group, to, message);
  });
  assert.equal(await scheduler.run(1_000, () => false, 1_000), true);
  return { received: received.sort(), elided: network.stats.chosenElided };
}

test('a notification the next accept on the same link answers is left out; any other still goes', async () => {
  const { received, elided } = await oneEvent(true, [
    { group: 0, to: 2, message: chosen(6) },
    { group: 0, to: 3, message: chosen(6) },
    { group: 1, to: 2, message: chosen(6) },
    { group: 2, to: 2, message: chosen(6) },
    { group: 0, to: 2, message: accept(7) }, // answers group 0's notification to node 2 only
    { group: 1, to: 3, message: accept(7) }, // another link: group 1's notification to node 2 stays
    { group: 2, to: 2, message: accept(7, { proposalId: 4, nodeId: 3 }) }, // another ballot: it stays
  ]);
  assert.equal(elided, 1);
  assert.deepEqual(received, [
    '2:g0:accept:7', '2:g1:chosen:6', '2:g2:accept:7', '2:g2:chosen:6', '3:g0:chosen:6', '3:g1:accept:7',
  ]);
});

test('a held notification with no accept after it goes out once the event is over', async () => {
  const { received, elided } = await oneEvent(true, [{ group: 0, to: 2, message: chosen(6) }]);
  assert.deepEqual([received, elided], [['2:g0:chosen:6'], 0]);
});

test('with elision off (odd seeds), every notification goes out', async () => {
  const { received, elided } = await oneEvent(false, [
    { group: 0, to: 2, message: chosen(6) },
    { group: 0, to: 2, message: accept(7) },
  ]);
  assert.deepEqual([received, elided], [['2:g0:accept:7', '2:g0:chosen:6'], 0]);
});
