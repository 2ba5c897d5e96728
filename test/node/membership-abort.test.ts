// Membership changes wait for their proposal: a caller's AbortSignal ends the wait.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { MemoryLogStore } from '../../src/building-blocks.js';
import { PaxosError, PaxosNode } from '../../src/index.js';
import { LoopbackTransport, waitFor } from './loopback-transport.js';

function abortedWith(mayBeChosen: boolean): (error: unknown) => boolean {
  return (error) => error instanceof PaxosError && error.code === 'ABORTED' && error.mayBeChosen === mayBeChosen;
}

test('addMember, removeMember and changeMember take a signal that gives up waiting', async () => {
  const node = await PaxosNode.start({
    nodeId: 1, members: [{ id: 1, host: '127.0.0.1', port: 1 }], transport: new LoopbackTransport(),
    store: new MemoryLogStore(),
  });
  try {
    await waitFor(() => node.members(0).gid !== 0, 'the group identity is created');
    const aborted = AbortSignal.abort();
    await assert.rejects(node.addMember(0, { id: 2, host: 'h', port: 2 }, { signal: aborted }), abortedWith(false));
    // Node 2 never answers: once it is a member, no change can gather a majority.
    await node.addMember(0, { id: 2, host: 'h', port: 2 });
    const controller = new AbortController();
    const removal = node.removeMember(0, 2, { signal: controller.signal, timeoutMs: 60_000 });
    const change = node.changeMember(0, 2, { id: 3, host: 'h', port: 3 }, { signal: controller.signal });
    await sleep(50);
    controller.abort();
    await assert.rejects(removal, abortedWith(true), 'the removal was sent: it may still be chosen');
    await assert.rejects(change, abortedWith(false), 'the change waited behind it, unsent');
  } finally {
    await node.stop();
  }
});
