// Membership changes through PaxosNode over TCP: grow a three-node group to four with a node that
// starts from an empty disk, shrink it back, replace a member, and refuse a stale change.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { EchoStateMachine } from '../../examples/echo/echo-state-machine.js';
import { PaxosError, PaxosNode, type MemberAddress } from '../../src/index.js';
import { freePort, tempRoot } from '../support/local.js';

async function waitFor(condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`${what} within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

test('grow 3 → 4 with a fresh node, shrink back to 3, replace a member; proposals go on throughout', async () => {
  const root = await tempRoot('membership');
  const addresses: MemberAddress[] = [];
  for (let id = 1; id <= 5; id++) addresses.push({ id, host: '127.0.0.1', port: await freePort() });
  const initial = addresses.slice(0, 3);
  const echoes = new Map<number, EchoStateMachine>();
  const start = (id: number, members: MemberAddress[]): Promise<PaxosNode> => {
    const echo = new EchoStateMachine();
    echoes.set(id, echo);
    return PaxosNode.start({ nodeId: id, members, dataDir: join(root, `n${id}`), stateMachines: [echo] });
  };
  const nodes = new Map<number, PaxosNode>();
  for (const { id } of initial) nodes.set(id, await start(id, initial));
  try {
    const n1 = nodes.get(1)!;
    assert.deepEqual(n1.members(0).members.map((member) => member.id), [1, 2, 3]);
    await n1.propose(0, 'before');
    // Node 1 (the lowest id) proposed the group identity at first start, ahead of 'before'.
    assert.equal(n1.members(0).version, 0);
    const gid = n1.members(0).gid;
    assert.ok(gid > 0);

    // Grow: node 4 starts empty, configured with the members it is about to join.
    const withFour = addresses.slice(0, 4);
    nodes.set(4, await start(4, withFour));
    const grown = await n1.addMember(0, addresses[3]!);
    assert.deepEqual(grown.members.map((member) => member.id), [1, 2, 3, 4]);
    assert.equal(grown.gid, gid, 'changes keep the group identity');
    const version = grown.version;
    // Node 4 proposes only once it has executed the change that made it a member (until then it
    // answers NOT_MEMBER, rightly): addMember returned when node 1 executed it.
    await waitFor(() => nodes.get(4)!.members(0).version === version, 10_000, 'node 4 applies the change');
    for (let i = 0; i < 5; i++) await nodes.get((i % 4) + 1)!.propose(0, `grown ${i}`);
    await waitFor(() => [...nodes.values()].every((node) => node.members(0).version === version), 10_000,
      'every node applies the change');
    const four = nodes.get(4)!;
    await waitFor(() => four.nowInstanceId(0) === n1.nowInstanceId(0), 10_000, 'node 4 catches up');
    const fromFour = await four.propose(0, 'from node 4');
    assert.ok(fromFour.instanceId > version, 'node 4 proposes as a member');

    // A change made against an old version fails whole.
    const stale = { ...n1.members(0) };
    await n1.removeMember(0, 3);
    assert.deepEqual(n1.members(0).members.map((member) => member.id), [1, 2, 4]);
    await assert.rejects(
      (n1 as unknown as { changeMembership: (g: number, c: unknown, m: unknown, o: object) => Promise<unknown> })
        .changeMembership(0, stale, stale.members, {}),
      (error: unknown) => error instanceof PaxosError && error.code === 'MEMBERSHIP_CONFLICT');
    assert.deepEqual(n1.members(0).members.map((member) => member.id), [1, 2, 4], 'nothing half-applied');

    // Node 3 is out: it cannot propose, but it still learns.
    const three = nodes.get(3)!;
    await waitFor(() => three.members(0).version === n1.members(0).version, 10_000, 'node 3 learns its removal');
    await assert.rejects(three.propose(0, 'from a non-member', { timeoutMs: 2_000 }),
      (error: unknown) => error instanceof PaxosError && error.code === 'NOT_MEMBER');
    await n1.propose(0, 'after removal');

    // Replace node 2 by node 5 in one change.
    nodes.set(5, await start(5, [addresses[0]!, addresses[1]!, addresses[3]!, addresses[4]!]));
    const replaced = await n1.changeMember(0, 2, addresses[4]!);
    assert.deepEqual(replaced.members.map((member) => member.id).sort(), [1, 4, 5]);
    const five = nodes.get(5)!;
    await waitFor(() => five.members(0).version === replaced.version, 10_000, 'node 5 learns it was added');
    await five.propose(0, 'from node 5');
    await assert.rejects(n1.addMember(0, addresses[0]!), /already a member/);
    await assert.rejects(n1.removeMember(0, 2), /not a member/);

    const positions = (): number[] => [...nodes.values()].map((node) => node.nowInstanceId(0));
    await waitFor(() => new Set(positions()).size === 1, 15_000,
      'every node, members or not, reaches the same instance');
    const digests = new Set([...echoes.values()].map((echo) => echo.summary(0).digest));
    assert.equal(digests.size, 1, 'every node executed the same sequence');
  } finally {
    await Promise.all([...nodes.values()].map((node) => node.stop()));
  }
});
