// PaxosNode with every seam injected (clock, timer host, randomness, store, transport), as the
// simulator runs it: nothing real is read or armed, and one seed gives one node.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryLogStore, SeededRandom } from '../../src/building-blocks.js';
import { PaxosNode, type Membership, type PaxosMessage, type Transport } from '../../src/index.js';
import type { TimerHost } from '../../src/runtime/interfaces.js';

interface ManualTimers extends TimerHost {
  readonly armed: { at: number; run: () => void; cancelled: boolean }[];
}

function manualTimers(): ManualTimers {
  const armed: ManualTimers['armed'] = [];
  return {
    armed,
    setTimer(at, run) {
      const timer = { at, run, cancelled: false };
      armed.push(timer);
      return () => { timer.cancelled = true; };
    },
  };
}

/** A one-node cluster's transport: its messages to itself come back on the next microtask. */
function loopback(): Transport {
  let receive: ((groupIndex: number, message: PaxosMessage) => void) | undefined;
  return {
    send: (groupIndex, _to, message) => queueMicrotask(() => receive?.(groupIndex, message)),
    onMessage: (handler) => { receive = handler; },
  };
}

async function startNode(seed: number): Promise<{ node: PaxosNode; timers: ManualTimers; changes: Membership[] }> {
  const timers = manualTimers();
  const changes: Membership[] = [];
  const node = await PaxosNode.start({
    nodeId: 1, members: [{ id: 1, host: 'h', port: 1 }], store: new MemoryLogStore(), transport: loopback(),
    clock: { now: () => 1_000 }, timers, random: new SeededRandom(seed),
    onMembershipChange: (_groupIndex, membership) => changes.push(membership),
  });
  return { node, timers, changes };
}

async function until(condition: () => boolean): Promise<void> {
  for (let turn = 0; turn < 1_000 && !condition(); turn++) await new Promise((resolve) => setImmediate(resolve));
  assert.ok(condition(), 'condition not reached');
}

test('an injected clock, timer host and Random drive the node; the group identity follows the seed', async () => {
  const first = await startNode(7);
  await until(() => first.changes.length === 1);
  const gid = first.changes[0]?.gid ?? 0;
  assert.ok(gid > 0, 'the group identity was created at first start');
  assert.equal(first.node.members(0).gid, gid);
  assert.ok(first.timers.armed.length > 0, 'the node armed its timer on the injected host');
  assert.equal(first.node.status(0).halted, null);
  const proposal = first.node.propose(0, 'hello');
  assert.equal((await proposal).instanceId, first.node.nowInstanceId(0) - 1);
  // While it runs, every timer but the newest was cancelled when the next was armed.
  const live = first.timers.armed.filter((timer) => !timer.cancelled);
  assert.ok(first.timers.armed.length > 1 && live.length === 1 && live[0] === first.timers.armed.at(-1),
    `one timer armed at a time (${live.length} live of ${first.timers.armed.length})`);
  await first.node.stop();
  assert.ok(first.timers.armed.every((timer) => timer.cancelled), 'stop() cancels the timer');

  const again = await startNode(7);
  await until(() => again.changes.length === 1);
  assert.equal(again.changes[0]?.gid, gid, 'the same seed creates the same group identity');
  await again.node.stop();
});
