// Log cleaning in a running PaxosNode over the file store: records below
// min(checkpoint) + 1 − hold go, the rest stay, and a restart replays from the checkpoint over the
// cleaned log and resumes where it stopped.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { PaxosError, PaxosNode, type ExecuteInput, type StateMachine } from '../../src/index.js';
import { LoopbackTransport } from './loopback-transport.js';

const roots: string[] = [];
after(async () => {
  for (const root of roots) await rm(root, { recursive: true, force: true });
});

/**
 * Appends every value it executes. `durable` plays a snapshot on disk: `checkpoint()` copies the
 * state there, and a new life starts from it, as a state machine restored from its snapshot would.
 */
class ListMachine implements StateMachine {
  readonly id = 7;
  values: string[];
  lastInstanceId = -1;
  constructor(readonly durable: { values: string[]; instanceId: number }) {
    this.values = [...durable.values];
  }

  execute(input: ExecuteInput): number {
    this.values.push(Buffer.from(input.value).toString());
    this.lastInstanceId = input.instanceId;
    return this.values.length;
  }

  checkpointInstanceId(): number {
    return this.durable.instanceId;
  }

  checkpoint(): void {
    this.durable.values = [...this.values];
    this.durable.instanceId = this.lastInstanceId;
  }
}

async function until(condition: () => boolean, what: string): Promise<void> {
  for (let waited = 0; !condition(); waited += 10) {
    assert.ok(waited < 10_000, `timed out waiting for ${what}`);
    await sleep(10);
  }
}

function start(dataDir: string, machine: ListMachine): Promise<PaxosNode> {
  return PaxosNode.start({
    nodeId: 1, members: [{ id: 1, host: '127.0.0.1', port: 1 }], transport: new LoopbackTransport(1), dataDir,
    stateMachines: [machine], segmentBytes: 64 * 1024, logCleaning: { holdInstances: 5, intervalMs: 20 },
  });
}

test('a node cleans its log behind the checkpoint, keeps the hold, and restarts from the cleaned log', async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'multipaxos-cleaning-'));
  roots.push(dataDir);
  const durable = { values: [] as string[], instanceId: -1 };
  const first = new ListMachine(durable);
  const node = await start(dataDir, first);
  for (let i = 0; i < 40; i++) await node.propose(0, `v${i}`);
  await sleep(100);
  assert.equal(node.minChosenInstanceId(0), 0, 'no checkpoint yet (-1): nothing is cleaned');

  first.checkpoint();
  const checkpoint = durable.instanceId;
  for (let i = 40; i < 50; i++) await node.propose(0, `v${i}`);
  const bound = checkpoint + 1 - 5;
  await until(() => node.minChosenInstanceId(0) === bound, `the log cleaned up to ${bound}`);
  assert.equal(node.status(0).minChosenInstanceId, bound);
  const group = node.metrics().groups[0];
  assert.equal(group?.instancesCleaned, bound);
  assert.ok((node.metrics().logDiskBytes ?? 0) > 0, 'the file store reports its size');
  assert.ok((node.metrics().logFlushes ?? 0) > 0, 'and its writes');
  await assert.rejects(node.instanceValues(0, bound - 1),
    (error: unknown) => error instanceof PaxosError && error.code === 'INSTANCE_UNAVAILABLE');
  for (let instanceId = bound; instanceId < node.nowInstanceId(0); instanceId++) {
    assert.ok((await node.instanceValues(0, instanceId)).length >= 0, `instance ${instanceId} is kept`);
  }
  await sleep(100);
  assert.equal(node.minChosenInstanceId(0), bound, 'the hold stays: nothing more goes without a new checkpoint');
  const stoppedAt = node.nowInstanceId(0);
  await node.stop();

  const second = new ListMachine(durable);
  const again = await start(dataDir, second);
  try {
    assert.equal(again.minChosenInstanceId(0), bound, 'the low-water mark is durable');
    // Start-up resumes at the newest logged instance and decides it again (as without cleaning).
    assert.equal(again.nowInstanceId(0), stoppedAt - 1, 'resumes where it stopped');
    await again.propose(0, 'after');
    assert.deepEqual(second.values, [...Array.from({ length: 50 }, (_, i) => `v${i}`), 'after'],
      'the checkpoint, the replayed tail and the re-decided newest instance hold every value once');
  } finally {
    await again.stop();
  }
});
