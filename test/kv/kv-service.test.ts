// The KV service on real nodes: versioned writes on the master, linearizable and stale reads,
// NOT_MASTER elsewhere, and the fence that keeps a deposed master's writes out.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeKvCommand, type Fence } from '../../src/kv/kv-command.js';
import { KvError } from '../../src/kv/kv-error.js';
import { KvService } from '../../src/kv/kv-service.js';
import { PaxosError } from '../../src/errors.js';
import { join } from 'node:path';
import { freePort, tempRoot } from '../support/local.js';
import type { KvOutcome } from '../../src/kv/kv-state-machine.js';
import { keyInGroup, startKvCluster } from './kv-fixtures.js';

function isKvError(code: string): (error: unknown) => boolean {
  return (error: unknown) => error instanceof KvError && error.code === code;
}

test('the master writes with versions, reads its own writes, and other nodes refuse or read stale', async () => {
  const cluster = await startKvCluster({ groups: 2 });
  const onMaster = <T>(call: (master: KvService) => Promise<T>): Promise<T> => cluster.onMaster(0, call);
  try {
    const key = keyInGroup(await cluster.serving(0), 0);
    assert.deepEqual(await onMaster((master) => master.put(key, 'one')), { version: 1 });
    assert.deepEqual(await onMaster((master) => master.put(key, 'two', { version: 1 })), { version: 2 });
    await assert.rejects(onMaster((master) => master.put(key, 'stale', { version: 1 })), (error: unknown) =>
      error instanceof KvError && error.code === 'VERSION_CONFLICT' && error.version === 2 && !error.mayHaveBeenApplied);
    const read = await onMaster((master) => master.get(key));
    assert.equal(Buffer.from(read.value as Uint8Array).toString(), 'two');
    assert.equal(read.version, 2);
    assert.deepEqual(await onMaster((master) => master.delete(key, { version: 2 })), { version: 3 });
    const deleted = await onMaster((master) => master.get(key));
    assert.equal(deleted.value, undefined);
    assert.equal(deleted.version, 3, 'a deleted key keeps its version');
    assert.deepEqual(await onMaster((master) => master.put(key, 'back', { version: 3 })), { version: 4 });
    const aborted = AbortSignal.abort();
    await assert.rejects(onMaster((master) => master.get(key, { signal: aborted })), isKvError('ABORTED'));
    await assert.rejects(onMaster((master) => master.get(key, { stale: true, signal: aborted })), isKvError('ABORTED'));
    const never = keyInGroup(await cluster.serving(0), 0, 'never');
    assert.deepEqual(await onMaster((master) => master.get(never)), { key: never, value: undefined, version: 0 });

    const master = await cluster.serving(0);
    const other = cluster.services.find((service) => service !== master && !service.node.isMaster(0));
    assert.ok(other !== undefined);
    // The master's endpoint reaches the others in its fence; wait until this one has executed it.
    const fenceSeen = Date.now() + 5_000;
    while (other.machine.fence(0)?.nodeId !== master.nodeId) {
      assert.ok(Date.now() < fenceSeen, 'the other node executes the master fence');
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    await assert.rejects(other.put(key, 'x'), (error: unknown) => error instanceof KvError &&
      error.code === 'NOT_MASTER' && error.master?.nodeId === master.nodeId &&
      error.master.endpoint === cluster.endpoints[master.nodeId - 1]);
    await assert.rejects(other.get(key), isKvError('NOT_MASTER'));
    // A stale read eventually sees the write: every node executes every chosen value.
    const deadline = Date.now() + 5_000;
    while ((await other.get(key, { stale: true })).version !== 4) {
      assert.ok(Date.now() < deadline, 'the other node executes the write');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await assert.rejects(master.put('', 'x'), isKvError('BAD_REQUEST'));
    await assert.rejects(master.put('k'.repeat(4097), 'x'), isKvError('KEY_TOO_LARGE'));
    await assert.rejects(master.put(key, Buffer.alloc(1024 * 1024 + 1)), isKvError('VALUE_TOO_LARGE'));
    await assert.rejects(master.put(key, 'x', { version: -1 }), isKvError('BAD_REQUEST'));
    await assert.rejects(master.put('\ud800', 'x'), isKvError('BAD_REQUEST'));
  } finally {
    await cluster.stop();
  }
});

test('after the master drops its lease, the new master fences and writes; the old one is refused', async () => {
  const cluster = await startKvCluster({ groups: 1 });
  try {
    const first = await cluster.serving(0);
    const key = 'fenced';
    await first.put(key, 'by the first master');
    const oldFence = first.machine.fence(0);
    assert.equal(oldFence?.nodeId, first.nodeId);
    first.node.dropMaster(0);
    await assert.rejects(first.put(key, 'after the drop'), (error: unknown) =>
      error instanceof KvError && (error.code === 'NO_MASTER' || error.code === 'NOT_MASTER'));
    const second = await cluster.serving(0);
    assert.notEqual(second.nodeId, first.nodeId);
    const fence = second.machine.fence(0);
    assert.equal(fence?.nodeId, second.nodeId);
    const read = await second.get(key);
    assert.equal(Buffer.from(read.value as Uint8Array).toString(), 'by the first master');
    assert.deepEqual(await second.put(key, 'by the second master', { version: 1 }), { version: 2 });
    // A write the deposed master proposes under its old fence (as a late proposal would be) is
    // chosen but refused by the state machine, and changes nothing.
    const late = encodeKvCommand({
      kind: 'put', key, value: Buffer.from('late'), expectedVersion: undefined,
      fence: { nodeId: first.nodeId, masterVersion: (oldFence as Fence).masterVersion },
    });
    const { result } = await first.node.propose(0, late);
    assert.equal((result as KvOutcome).ok, false);
    assert.equal((result as { code: string }).code, 'FENCED');
    assert.equal(Buffer.from((await second.get(key)).value as Uint8Array).toString(), 'by the second master');
    // A stale fence from the deposed master does not take the group back either.
    const staleFence = encodeKvCommand({ kind: 'fence', fence: oldFence as Fence, httpAddress: 'http://127.0.0.1:1' });
    assert.equal(((await first.node.propose(0, staleFence)).result as { code: string }).code, 'FENCED');
    assert.equal(second.machine.fence(0)?.nodeId, second.nodeId);
    assert.deepEqual(await second.put(key, 'still writable', { version: 2 }), { version: 3 });
  } finally {
    await cluster.stop();
  }
});

test('a follower serves stale reads of every write and points writes and linearizable reads to the master', async () => {
  const cluster = await startKvCluster({ groups: 1, followers: 1 });
  try {
    const follower = cluster.services[3];
    assert.ok(follower !== undefined && follower.node.isFollower);
    for (let i = 0; i < 20; i++) await cluster.onMaster(0, (master) => master.put(`f-${i}`, `value ${i}`));
    const master = await cluster.serving(0);
    const deadline = Date.now() + 5_000;
    while ((await follower.get('f-19', { stale: true })).version !== 1) {
      assert.ok(Date.now() < deadline, 'the follower executes every write');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    for (let i = 0; i < 20; i++) {
      const read = await follower.get(`f-${i}`, { stale: true });
      assert.equal(Buffer.from(read.value as Uint8Array).toString(), `value ${i}`);
    }
    await assert.rejects(follower.put('f-0', 'from a follower'), (error: unknown) => error instanceof KvError &&
      error.code === 'NOT_MASTER' && error.master?.nodeId === master.nodeId);
    await assert.rejects(follower.get('f-0'), isKvError('NOT_MASTER'));
    assert.equal(follower.status()[0]?.isMaster, false);
  } finally {
    await cluster.stop();
  }
});

test('a node refuses to start with another group count than its data was written with, a bad endpoint or placement',
  async () => {
  const root = await tempRoot('kv-groups');
  const port = await freePort();
  const members = [{ id: 1, host: '127.0.0.1', port }];
  const options = { nodeId: 1, members, dataDir: join(root, 'n1'), httpEndpoint: 'http://127.0.0.1:1' };
  const first = await KvService.start({ ...options, groups: 3 });
  await first.stop();
  await assert.rejects(KvService.start({ ...options, groups: 2 }), (error: unknown) =>
    error instanceof PaxosError && error.code === 'BAD_OPTIONS' && /written with 3 groups/.test(error.message));
  const again = await KvService.start({ ...options, groups: 3 });
  await again.stop();
  for (const httpEndpoint of ['x'.repeat(300), 'ftp://host', 'not a url']) {
    await assert.rejects(KvService.start({ ...options, groups: 3, httpEndpoint }), (error: unknown) =>
      error instanceof PaxosError && error.code === 'BAD_OPTIONS', httpEndpoint);
  }
  await assert.rejects(KvService.start({ ...options, groups: 3, masterPlacement: 'sideways' as 'spread' }),
    (error: unknown) => error instanceof PaxosError && error.code === 'BAD_OPTIONS' && /masterPlacement/.test(error.message));
  const together = await KvService.start({ ...options, groups: 3, masterPlacement: 'together' });
  await together.stop();
});

test('an onMasterChange callback that throws changes nothing: the node still fences, serves and writes', async () => {
  const root = await tempRoot('kv-callback');
  const members = [{ id: 1, host: '127.0.0.1', port: await freePort() }];
  let calls = 0;
  const service = await KvService.start({
    nodeId: 1, members, dataDir: join(root, 'n1'), groups: 1, masterLeaseMs: 1_000, httpEndpoint: 'http://127.0.0.1:1',
    onMasterChange: () => {
      calls++;
      throw new Error('a careless callback');
    },
  });
  try {
    const deadline = Date.now() + 10_000;
    while (service.status()[0]?.serving !== true) {
      assert.ok(Date.now() < deadline, 'the node serves');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.ok(calls >= 1);
    assert.deepEqual(await service.put('k', 'v'), { version: 1 });
    assert.equal((await service.get('k')).version, 1);
  } finally {
    await service.stop();
  }
});
