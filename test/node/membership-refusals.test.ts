// Membership and election calls a node refuses at run time: each has its own code, and nothing
// was proposed, so nothing can be chosen.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryLogStore } from '../../src/building-blocks.js';
import { PaxosError, PaxosNode } from '../../src/index.js';
import { LoopbackTransport, waitFor } from './loopback-transport.js';

let node: PaxosNode;
before(async () => {
  node = await PaxosNode.start({
    nodeId: 1, members: [{ id: 1, host: '127.0.0.1', port: 1 }], groups: 2, master: { groups: [1] },
    transport: new LoopbackTransport(), store: new MemoryLogStore(),
  });
  await waitFor(() => node.members(0).gid !== 0, 'the group identity is created');
});
after(async () => {
  await node.stop();
});

function refusedWith(code: string): (error: unknown) => boolean {
  return (error) => {
    assert.ok(error instanceof PaxosError, String(error));
    assert.equal(error.code, code, error.message);
    assert.equal(error.mayBeChosen, false, 'nothing was proposed');
    return true;
  };
}

test('adding a node that is already a member is ALREADY_MEMBER', async () => {
  await assert.rejects(node.addMember(0, { id: 1, host: 'h', port: 2 }), refusedWith('ALREADY_MEMBER'));
});

test('removing or replacing a node that is not a member is NO_SUCH_MEMBER', async () => {
  await assert.rejects(node.removeMember(0, 9), refusedWith('NO_SUCH_MEMBER'));
  await assert.rejects(node.changeMember(0, 9, { id: 3, host: 'h', port: 3 }), refusedWith('NO_SUCH_MEMBER'));
});

test('replacing a member by one that is already a member is ALREADY_MEMBER', async () => {
  await assert.rejects(node.changeMember(0, 1, { id: 1, host: 'h', port: 3 }), refusedWith('ALREADY_MEMBER'));
});

test('removing the last member is LAST_MEMBER', async () => {
  await assert.rejects(node.removeMember(0, 1), refusedWith('LAST_MEMBER'));
});

test('master calls where this node does not take part in the election are NOT_ELECTING', () => {
  assert.throws(() => node.dropMaster(0), refusedWith('NOT_ELECTING'));
  assert.throws(() => node.setMasterLease(0, 5_000), refusedWith('NOT_ELECTING'));
  assert.doesNotThrow(() => node.setMasterLease(1, 5_000));
});

test('a malformed argument is still BAD_OPTIONS', async () => {
  await assert.rejects(node.addMember(0, { id: 0, host: 'h', port: 2 }), refusedWith('BAD_OPTIONS'));
  assert.throws(() => node.setMasterLease(1, 10), refusedWith('BAD_OPTIONS'));
});
