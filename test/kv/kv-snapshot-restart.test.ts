// End to end: a KV node writes, snapshots, writes more and restarts; it comes back with the same
// state having replayed only the instances after its snapshots, falls back to the previous
// snapshot when the newest is damaged, and refuses to start from a snapshot ahead of its log.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { PaxosError } from '../../src/errors.js';
import { KvService } from '../../src/kv/kv-service.js';
import { snapshotDirectory, snapshotFileName, writeSnapshotFile } from '../../src/kv/kv-snapshot-files.js';
import { KvStateMachine, type KvEntry } from '../../src/kv/kv-state-machine.js';
import type { ExecuteInput } from '../../src/runtime/interfaces.js';
import { freePort, tempRoot } from '../support/local.js';

const GROUPS = 2;

async function startNode(dataDir: string, port: number): Promise<KvService> {
  return await KvService.start({
    nodeId: 1, members: [{ id: 1, host: '127.0.0.1', port }], dataDir, groups: GROUPS, masterLeaseMs: 1_000,
    httpEndpoint: 'http://127.0.0.1:1', snapshots: { intervalMs: 0, everyInstances: 0 },
  });
}

async function serving(service: KvService): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!service.status().every((group) => group.serving)) {
    if (Date.now() > deadline) throw new Error('the node does not serve every group');
    await sleep(20);
  }
}

async function writeBatch(service: KvService, from: number, to: number): Promise<void> {
  await Promise.all(Array.from({ length: to - from }, (_, i) => service.put(`key-${from + i}`, `value-${from + i}-${to}`)));
}

/** Every group's entries, by key. */
function contents(service: KvService): Map<string, KvEntry>[] {
  return Array.from({ length: GROUPS }, (_, group) => {
    const { keys, entries } = service.machine.captureSnapshot(group, service.node.nowInstanceId(group) - 1);
    return new Map(keys.map((key, index) => [key, entries[index] as KvEntry]));
  });
}

/** Start the node while recording which instances its KV state machine executes during start-up. */
async function startRecording(dataDir: string, port: number): Promise<{ service: KvService; replayed: number[][] }> {
  const replayed: number[][] = Array.from({ length: GROUPS }, () => []);
  const original = KvStateMachine.prototype.execute;
  KvStateMachine.prototype.execute = function (this: KvStateMachine, input: ExecuteInput) {
    replayed[input.groupIndex]?.push(input.instanceId);
    return original.call(this, input);
  };
  try {
    return { service: await startNode(dataDir, port), replayed };
  } finally {
    KvStateMachine.prototype.execute = original;
  }
}

test('a restart loads the snapshots and replays only the tail of the log', async () => {
  const dataDir = join(await tempRoot('kv-snapshot-restart'), 'node-1');
  const port = await freePort();
  let service = await startNode(dataDir, port);
  try {
    await serving(service);
    await writeBatch(service, 0, 60);
    await Promise.all([service.delete('key-3'), service.delete('key-4')]);
    const first = await service.snapshot();
    assert.deepEqual(first.map((taken) => taken.group), [0, 1]);
    for (const taken of first) {
      assert.ok(taken.path !== undefined && taken.bytes > 0);
      assert.equal(service.status()[taken.group]?.checkpointInstanceId, taken.instanceId);
    }
    // The second snapshot is cut while writes execute: it must still hold whole instances only.
    const writing = writeBatch(service, 40, 90);
    // Cut once both groups executed some of the batch (under load, 5 ms was sometimes none of it,
    // and a group with nothing new takes no second snapshot).
    const firstAt = first.map((taken) => taken.instanceId);
    while (firstAt.some((instanceId, group) => service.node.nowInstanceId(group) <= instanceId + 2)) await sleep(1);
    const second = await service.snapshot();
    assert.ok(second.every((taken, group) => taken.instanceId > (firstAt[group] as number)), 'a second snapshot each');
    await writing;
    await writeBatch(service, 80, 120);
    await service.delete('key-100');
    const before = contents(service);
    await service.stop();

    // Damage group 0's newest snapshot: group 0 must fall back to its first one, group 1 use its second.
    const damaged = join(snapshotDirectory(dataDir, 0), snapshotFileName(second[0]?.instanceId as number));
    const bytes = await readFile(damaged);
    bytes[bytes.length - 10] = (bytes[bytes.length - 10] as number) ^ 1;
    await writeFile(damaged, bytes);

    const started = await startRecording(dataDir, port);
    service = started.service;
    const checkpoints = [first[0]?.instanceId, second[1]?.instanceId] as number[];
    assert.deepEqual(service.status().map((group) => group.checkpointInstanceId), checkpoints);
    for (let group = 0; group < GROUPS; group++) {
      const replayed = started.replayed[group] as number[];
      assert.ok(replayed.length > 0, `group ${group} replayed its tail`);
      assert.ok(replayed.every((instanceId) => instanceId > (checkpoints[group] as number)),
        `group ${group} replayed only above its checkpoint ${checkpoints[group]}: ${replayed.join(',')}`);
    }
    await serving(service);
    assert.deepEqual(contents(service), before, 'the state after the restart is the state before it');
    assert.equal(service.machine.read(service.groupOf('key-100'), 'key-100').version, 2, 'a tombstone survives');
  } finally {
    await service.stop();
  }
});

test('a snapshot ahead of the end of the log refuses to start', async () => {
  const dataDir = join(await tempRoot('kv-snapshot-ahead'), 'node-1');
  const port = await freePort();
  const service = await startNode(dataDir, port);
  await serving(service);
  await writeBatch(service, 0, 10);
  const logEnd = service.node.nowInstanceId(0);
  await service.stop();
  // A snapshot of an empty group claiming to cover far more of group 0 than its log holds.
  const ahead = new KvStateMachine({ groups: GROUPS }).captureSnapshot(0, logEnd + 10);
  await writeSnapshotFile(snapshotDirectory(dataDir, 0), ahead);
  await assert.rejects(startNode(dataDir, port), (error: unknown) => {
    assert.ok(error instanceof PaxosError && error.code === 'STARTUP_FAILED', String(error));
    assert.match(error.message, /log is behind the checkpoint/);
    return true;
  });
});
