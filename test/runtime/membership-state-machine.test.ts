import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryLogStore } from '../../src/io/memory-log-store.js';
import { decodeMembership, encodeMembership, type Member } from '../../src/runtime/membership/membership-codec.js';
import { MembershipStateMachine } from '../../src/runtime/membership/membership-state-machine.js';

const member = (id: number): Member => ({ id, host: `node-${id}.example`, port: 7000 + id });

test('a membership round-trips; malformed records are refused', () => {
  const membership = { gid: 2 ** 40 + 3, version: 17, members: [member(1), member(2), member(30)], nonce: 99 };
  assert.deepEqual(decodeMembership(encodeMembership(membership)), membership);
  assert.deepEqual(decodeMembership(encodeMembership({ ...membership, version: -1 })).version, -1);
  const bytes = encodeMembership(membership);
  for (let cut = 0; cut < bytes.length; cut++) assert.throws(() => decodeMembership(bytes.subarray(0, cut)));
  assert.throws(() => decodeMembership(encodeMembership({ ...membership, members: [] })), /lists 0 members/);
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
