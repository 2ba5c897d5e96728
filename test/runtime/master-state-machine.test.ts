import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryLogStore } from '../../src/io/memory-log-store.js';
import { decodeMasterBid, encodeMasterBid } from '../../src/runtime/master/master-bid.js';
import { MasterManager } from '../../src/runtime/master/master-manager.js';
import { MasterStateMachine } from '../../src/runtime/master/master-state-machine.js';
import { unframeValue } from '../../src/runtime/value-frame.js';
import { SeededRandom } from '../../src/util/random.js';

class ManualClock {
  ms = 1_000;
  now(): number {
    return this.ms;
  }
}

function bid(nodeId: number, version: number, leaseMs = 5_000): Uint8Array {
  return encodeMasterBid({ nodeId, version, leaseMs, nonce: 7 });
}

test('a bid round-trips; a malformed one is refused', () => {
  assert.deepEqual(decodeMasterBid(bid(7, -1, 3000)), { nodeId: 7, version: -1, leaseMs: 3000, nonce: 7 });
  assert.deepEqual(decodeMasterBid(bid(7, 2 ** 40, 3000)), { nodeId: 7, version: 2 ** 40, leaseMs: 3000, nonce: 7 });
  assert.throws(() => decodeMasterBid(new Uint8Array(16)), /20 bytes/);
});

test('the first bid with the current version wins; stale bids change nothing', async () => {
  const clock = new ManualClock();
  const store = new MemoryLogStore();
  const machine = await MasterStateMachine.load({ groupIndex: 0, nodeId: 1, store, clock });
  assert.equal(machine.master(), undefined);
  assert.equal(await machine.execute({ groupIndex: 0, instanceId: 4, value: bid(2, -1), context: undefined }), true);
  assert.deepEqual(machine.master(), { nodeId: 2, version: 4, leaseExpiresAt: 6_000 }, 'a full lease from execution');
  // Node 3 bid having seen no master: stale now.
  assert.equal(await machine.execute({ groupIndex: 0, instanceId: 5, value: bid(3, -1), context: undefined }), false);
  assert.equal(machine.master()?.nodeId, 2);
  clock.ms = 6_000;
  assert.equal(machine.master(), undefined, 'the lease ran out');
  assert.equal(await machine.execute({ groupIndex: 0, instanceId: 9, value: bid(3, 4), context: undefined }), true);
  assert.deepEqual(machine.master(), { nodeId: 3, version: 9, leaseExpiresAt: 11_000 });
});

test('the master counts its own lease from its bid context, and not at all without it (replay)', async () => {
  const clock = new ManualClock();
  const store = new MemoryLogStore();
  const machine = await MasterStateMachine.load({ groupIndex: 0, nodeId: 1, store, clock });
  await machine.execute({ groupIndex: 0, instanceId: 0, value: bid(1, -1), context: { leaseEndsAt: 4_000 } });
  assert.equal(machine.isMaster(), true);
  assert.equal(machine.master()?.leaseExpiresAt, 4_000);
  const replay = await MasterStateMachine.load({ groupIndex: 0, nodeId: 1, store: new MemoryLogStore(), clock });
  await replay.execute({ groupIndex: 0, instanceId: 0, value: bid(1, -1), context: undefined });
  assert.equal(replay.isMaster(), false, 'a bid seen without its context gives no lease');
  machine.drop(clock.ms + 10_000);
  assert.equal(machine.isMaster(), false, 'drop steps down at once');
  assert.equal(machine.isDropped(), true);
});

test('after a restart a node never believes it is master, and grants another master a full lease from now', async () => {
  const clock = new ManualClock();
  const store = new MemoryLogStore();
  const first = await MasterStateMachine.load({ groupIndex: 0, nodeId: 1, store, clock });
  await first.execute({ groupIndex: 0, instanceId: 3, value: bid(1, -1), context: { leaseEndsAt: 9_000 } });
  const restarted = await MasterStateMachine.load({ groupIndex: 0, nodeId: 1, store, clock });
  assert.equal(restarted.master(), undefined);
  assert.equal(restarted.masterVersion, 3, 'the version survives');
  const other = await MasterStateMachine.load({ groupIndex: 0, nodeId: 2, store, clock });
  clock.ms = 2_000;
  assert.equal(other.master()?.nodeId, 1);
  assert.equal(other.master()?.leaseExpiresAt, 1_000 + 5_000);
  assert.equal(await restarted.execute({ groupIndex: 0, instanceId: 3, value: bid(1, -1), context: undefined }), false,
    'replaying an applied bid is stale');
});

test('the manager bids with the version it saw and a lease shortened by the drift bound', async () => {
  const clock = new ManualClock();
  const machine = await MasterStateMachine.load({ groupIndex: 0, nodeId: 1, store: new MemoryLogStore(), clock });
  const bids: { value: Uint8Array; leaseEndsAt: number }[] = [];
  const manager = new MasterManager({
    nodeId: 1, machine, clock, random: new SeededRandom(1), settings: { leaseMs: 10_000, driftBound: 0.05 },
    propose: async (value, context) => { bids.push({ value, leaseEndsAt: context.leaseEndsAt }); },
    onTimersChanged: () => {},
  });
  manager.tick();
  assert.equal(bids.length, 1);
  const { stateMachineId, payload } = unframeValue(bids[0]!.value);
  assert.equal(stateMachineId, 100_000_001);
  const decoded = decodeMasterBid(payload);
  assert.deepEqual({ ...decoded, nonce: 0 }, { nodeId: 1, version: -1, leaseMs: 10_000, nonce: 0 });
  assert.ok(Math.abs(bids[0]!.leaseEndsAt - (1_000 + 10_000 * 0.95 / 1.05 - 100)) < 1e-6);
  const next = manager.nextTimerAt() as number;
  assert.ok(next > clock.ms + 1_000 && next < clock.ms + 4_000, `next bid in a quarter lease or so: ${next}`);
  await new Promise((resolve) => setImmediate(resolve));
  // Another node is master with a live lease: no bid.
  await machine.execute({ groupIndex: 0, instanceId: 0, value: bid(2, -1), context: undefined });
  clock.ms = next;
  manager.tick();
  assert.equal(bids.length, 1, 'quiet while another master holds a live lease');
  manager.drop();
  clock.ms += 30_000;
  manager.tick();
  assert.equal(bids.length, 2, 'bids again once the lease ran out and the drop is over');
});

test('a bid of ours that wins while we dropped the lease does not make us master', async () => {
  const clock = new ManualClock();
  const machine = await MasterStateMachine.load({ groupIndex: 0, nodeId: 1, store: new MemoryLogStore(), clock });
  machine.drop(clock.ms + 10_000);
  const context = { leaseEndsAt: clock.ms + 5_000 };
  await machine.execute({ groupIndex: 0, instanceId: 0, value: bid(1, -1), context });
  clock.ms += 10_001;
  assert.equal(machine.isMaster(), false);
  assert.equal(machine.masterVersion, 0, 'the bid still won: the version moved');
  assert.equal(await machine.execute({ groupIndex: 0, instanceId: 1, value: Uint8Array.of(9), context: undefined }),
    false, 'a malformed bid is ignored, never thrown');
});
