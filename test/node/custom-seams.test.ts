// PaxosNode over a caller's own Transport and LogStore: the optional parts of each seam are used.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryLogStore } from '../../src/building-blocks.js';
import { PaxosNode } from '../../src/index.js';
import { LoopbackTransport, waitFor } from './loopback-transport.js';

class SyncSwitchStore extends MemoryLogStore {
  readonly syncCalls: boolean[] = [];
  setSync(enabled: boolean): void {
    this.syncCalls.push(enabled);
  }
}

test('a custom transport learns a new member\'s address and the group identity', async () => {
  const transport = new LoopbackTransport();
  const node = await PaxosNode.start({
    nodeId: 1, members: [{ id: 1, host: '127.0.0.1', port: 1 }], transport, store: new MemoryLogStore(),
  });
  try {
    await waitFor(() => node.members(0).gid !== 0, 'the group identity is created');
    assert.equal(transport.identities.get(0), node.members(0).gid);
    await node.addMember(0, { id: 2, host: '10.0.0.2', port: 7002 });
    assert.deepEqual(transport.peers.get(2), { host: '10.0.0.2', port: 7002 });
    assert.equal(transport.peers.has(1), false, 'a node is never told its own address');
  } finally {
    await node.stop();
  }
});

test('a transport that refuses an address does not turn an applied membership change into a refusal', async () => {
  const transport = new LoopbackTransport();
  const errors: string[] = [];
  const node = await PaxosNode.start({
    nodeId: 1, members: [{ id: 1, host: '127.0.0.1', port: 1 }], transport, store: new MemoryLogStore(),
    logger: { info: () => {}, warn: () => {}, error: (message) => errors.push(message) },
  });
  try {
    await waitFor(() => node.members(0).gid !== 0, 'the group identity is created');
    transport.setPeerAddress = () => {
      throw new Error('no route to 10.0.0.2');
    };
    const membership = await node.addMember(0, { id: 2, host: '10.0.0.2', port: 7002 });
    assert.deepEqual(membership.members.map((member) => member.id), [1, 2]);
    assert.ok(errors.some((message) => message.includes('refused a membership change')), errors.join('; '));
  } finally {
    await node.stop();
  }
});

test('after a restart the transport learns the members the log holds, not only the configured ones', async () => {
  const store = new MemoryLogStore();
  const members = [{ id: 1, host: '127.0.0.1', port: 1 }];
  const first = await PaxosNode.start({ nodeId: 1, members, transport: new LoopbackTransport(), store });
  await waitFor(() => first.members(0).gid !== 0, 'the group identity is created');
  await first.addMember(0, { id: 2, host: '10.0.0.2', port: 7002 });
  await first.stop();
  const transport = new LoopbackTransport();
  // stop() leaves a store the caller gave open, so the second life reads the first one's log.
  const second = await PaxosNode.start({ nodeId: 1, members, transport, store });
  try {
    assert.deepEqual(transport.peers.get(2), { host: '10.0.0.2', port: 7002 });
    assert.equal(transport.identities.get(0), second.members(0).gid);
  } finally {
    await second.stop();
  }
});

test('setLogSync reaches a custom store that has its own sync switch', async () => {
  const store = new SyncSwitchStore();
  const node = await PaxosNode.start({
    nodeId: 1, members: [{ id: 1, host: '127.0.0.1', port: 1 }], transport: new LoopbackTransport(), store,
  });
  try {
    node.setLogSync(false);
    node.setLogSync(true);
    assert.deepEqual(store.syncCalls, [false, true]);
  } finally {
    await node.stop();
  }
});
