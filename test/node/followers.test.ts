// Followers over TCP: a follower receives every chosen value pushed by the member it follows,
// executes it in order, and never proposes or votes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EchoStateMachine } from '../../examples/echo/echo-state-machine.js';
import { PaxosError, PaxosNode, type MemberAddress } from '../../src/index.js';
import { freePort, tempRoot } from '../support/local.js';

test('a follower learns every value by push, executes it in order, and cannot propose', async () => {
  const root = await tempRoot('followers');
  const members: MemberAddress[] = [];
  for (let id = 1; id <= 3; id++) members.push({ id, host: '127.0.0.1', port: await freePort() });
  const followers = [{ id: 9, host: '127.0.0.1', port: await freePort(), follows: 2 }];
  const echoes = new Map<number, EchoStateMachine>();
  const ids = [1, 2, 3, 9];
  const nodes = await Promise.all(ids.map((id) => {
    const echo = new EchoStateMachine();
    echoes.set(id, echo);
    return PaxosNode.start({ nodeId: id, members, followers, dataDir: join(root, `n${id}`), stateMachines: [echo] });
  }));
  try {
    const follower = nodes[3]!;
    assert.equal(follower.isFollower, true);
    assert.equal(nodes[0]!.isFollower, false);
    await assert.rejects(follower.propose(0, 'not allowed'), (error: unknown) => error instanceof PaxosError &&
      error.code === 'FOLLOWER_CANNOT_PROPOSE' && !error.mayBeChosen);
    await assert.rejects(follower.addMember(0, { id: 10, host: '127.0.0.1', port: 1 }),
      (error: unknown) => error instanceof PaxosError && error.code === 'FOLLOWER_CANNOT_PROPOSE');
    for (let i = 0; i < 30; i++) await nodes[i % 3]!.propose(0, `value ${i}`);
    const target = nodes[0]!.nowInstanceId(0);
    // Pushed as each value executes on node 2: far sooner than the 2.5-3 s ask-for-learn.
    const deadline = Date.now() + 1_500;
    while (follower.nowInstanceId(0) < target && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.ok(follower.nowInstanceId(0) >= target, `the follower is at ${follower.nowInstanceId(0)}, not ${target}`);
    assert.equal(echoes.get(9)!.summary(0).digest, echoes.get(2)!.summary(0).digest, 'the same sequence, executed');
    assert.deepEqual(nodes[0]!.members(0).members.map((member) => member.id), [1, 2, 3], 'a follower is no member');
    await assert.rejects(nodes[0]!.addMember(0, { id: 9, host: '127.0.0.1', port: 1 }), /configured as a follower/);
  } finally {
    await Promise.all(nodes.map((node) => node.stop()));
  }
});

test('follower options are validated', async () => {
  const member = { id: 1, host: '127.0.0.1', port: 7001 };
  const base = { members: [member], dataDir: join(tmpdir(), 'unused-follower-options') };
  await assert.rejects(PaxosNode.start({ ...base, nodeId: 1, followers: [{ ...member, follows: 1 }] }),
    /option followers\[0\]\.id 1 is listed twice/);
  await assert.rejects(PaxosNode.start({ ...base, nodeId: 5, followers: [{ id: 5, host: 'h', port: 2, follows: 4 }] }),
    /option followers\[0\]\.follows node 4 is not a member/);
  await assert.rejects(PaxosNode.start({
    ...base, nodeId: 5, followers: [{ id: 5, host: 'h', port: 2, follows: 1 }], master: { groups: 'all' },
  }), /option master\.groups must be empty on a follower/);
});
