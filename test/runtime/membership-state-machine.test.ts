import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryLogStore } from '../../src/io/memory-log-store.js';
import { decodeMembership, encodeMembership, type Member } from '../../src/runtime/membership/membership-codec.js';
import { MembershipStateMachine } from '../../src/runtime/membership/membership-state-machine.js';
import { resumeAfterMembershipChange } from '../../src/runtime/membership/resume-after-change.js';

const member = (id: number): Member => ({ id, host: `node-${id}.example`, port: 7000 + id });

test('a membership round-trips; malformed records are refused', () => {
  const membership = { gid: 2 ** 40 + 3, version: 17, members: [member(1), member(2), member(30)], nonce: 99 };
  assert.deepEqual(decodeMembership(encodeMembership(membership)), membership);
  assert.deepEqual(decodeMembership(encodeMembership({ ...membership, version: -1 })).version, -1);
  const bytes = encodeMembership(membership);
  for (let cut = 0; cut < bytes.length; cut++) assert.throws(() => decodeMembership(bytes.subarray(0, cut)));
  const none = Uint8Array.from(encodeMembership(membership));
  new DataView(none.buffer).setUint16(20, 0, true);
  assert.throws(() => decodeMembership(none), /lists 0 members/);
  assert.throws(() => decodeMembership(encodeMembership({ ...membership, members: [member(1), member(1)] })),
    /lists a node twice/);
  const trailing = new Uint8Array(bytes.length + 1);
  trailing.set(bytes);
  assert.throws(() => decodeMembership(trailing), /trailing/);
});

test('changes apply against the version and gid they were made for; the state is durable', async () => {
  const store = new MemoryLogStore();
  const applied: number[][] = [];
  const load = (): Promise<MembershipStateMachine> => MembershipStateMachine.load({
    groupIndex: 0, store, configured: [member(1), member(2), member(3)],
    onApplied: (next) => applied.push(next.members.map((m) => m.id)),
  });
  const machine = await load();
  assert.deepEqual(machine.membership, { gid: 0, version: -1, members: [member(1), member(2), member(3)], nonce: 0 });
  const change = (gid: number, version: number, ids: number[]): Uint8Array =>
    encodeMembership({ gid, version, members: ids.map(member), nonce: 5 });
  const execute = (instanceId: number, value: Uint8Array): Promise<unknown> =>
    machine.execute({ groupIndex: 0, instanceId, value, context: undefined });

  assert.deepEqual(await execute(4, change(77, -1, [1, 2, 3, 4])), { applied: true, version: 4 });
  assert.equal(machine.membership.gid, 77, 'the first change creates the identity');
  const stale = await execute(5, change(77, -1, [1, 2])) as { applied: boolean; reason: string };
  assert.equal(stale.applied, false);
  assert.equal(stale.reason, 'version');
  const foreign = await execute(6, change(78, 4, [1])) as { applied: boolean; reason: string };
  assert.equal(foreign.reason, 'gid');
  assert.deepEqual(await execute(7, change(77, 4, [1, 2, 4])), { applied: true, version: 7 });
  assert.deepEqual(applied, [[1, 2, 3, 4], [1, 2, 4]]);

  const restarted = await load();
  assert.equal(restarted.membership.version, 7, 'restored from the store, not from the configuration');
  assert.deepEqual(restarted.membership.members.map((m) => m.id), [1, 2, 4]);
});

test('a malformed change is refused the same way everywhere, never thrown (which would wedge the group)', async () => {
  const store = new MemoryLogStore();
  const machine = await MembershipStateMachine.load({ groupIndex: 0, store, configured: [member(1)] });
  const value = Uint8Array.of(1, 2, 3);
  const outcome = await machine.execute({ groupIndex: 0, instanceId: 3, value, context: undefined });
  assert.deepEqual((outcome as { applied: boolean; reason: string }).reason, 'malformed');
  assert.equal(machine.membership.version, -1);
  const longHost = [{ id: 1, host: 'h'.repeat(256), port: 1 }];
  assert.throws(() => encodeMembership({ gid: 1, version: 0, nonce: 0, members: longHost }), /more than 255 bytes/);
  assert.throws(() => encodeMembership({ gid: 1, version: 0, nonce: 0, members: [] }), /1 to 1000 members/);
});

test('the configured members are written down at first start; a restart configured otherwise is refused', async () => {
  const store = new MemoryLogStore();
  await MembershipStateMachine.load({ groupIndex: 0, store, configured: [member(1), member(2), member(3)] });
  assert.ok(await store.systemVariables(0) !== undefined, 'persisted at first start');
  await MembershipStateMachine.load({ groupIndex: 0, store, configured: [member(3), member(1), member(2)] });
  await assert.rejects(MembershipStateMachine.load({ groupIndex: 0, store, configured: [member(1), member(2)] }),
    /members \{1,2\} differ from \{1,2,3\}, which this node first started with/);
  const three = [member(1), member(2), member(3)];
  const machine = await MembershipStateMachine.load({ groupIndex: 0, store, configured: three });
  await machine.execute({ groupIndex: 0, instanceId: 0, context: undefined,
    value: encodeMembership({ gid: 5, version: -1, members: [member(1), member(2)], nonce: 1 }) });
  const afterChange = await MembershipStateMachine.load({ groupIndex: 0, store, configured: [member(1), member(9)] });
  assert.deepEqual(afterChange.membership.members.map((m) => m.id), [1, 2], 'after a change the log wins');
});

test('a node that restarts at the instance of a change it executed resumes after it, keeping its promise', async () => {
  const store = new MemoryLogStore();
  const promised = { proposalId: 9, nodeId: 2 };
  await store.put(0, [{ instanceId: 7, promised, accepted: { proposalId: 8, nodeId: 2 }, value: Uint8Array.of(1),
    checksum: 1234 }]);
  const restored = {
    nowInstanceId: 7, lastChecksum: 99, minChosenInstanceId: 0,
    acceptor: { promised, accepted: { proposalId: 8, nodeId: 2 }, value: Uint8Array.of(1), checksum: 1234 },
  };
  const resumed = await resumeAfterMembershipChange(store, 0, restored, 7);
  assert.equal(resumed.nowInstanceId, 8);
  assert.equal(resumed.lastChecksum, 1234, 'the chain continues from the change');
  assert.deepEqual(resumed.acceptor.promised, promised, 'the promise is kept');
  assert.equal(resumed.acceptor.accepted.proposalId, 0, 'nothing accepted in the new instance');
  assert.equal(await resumeAfterMembershipChange(store, 0, restored, 6), restored, 'an older change: unchanged');
  assert.equal(await resumeAfterMembershipChange(store, 0, restored, -1), restored, 'no change yet: unchanged');
});
