// Writing and loading KV snapshot files: crash leftovers, damaged newest snapshots (fallback or
// refusal), pruning, and the snapshotter's rule that a checkpoint is reported only once durable.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readdir as readdirUnsorted, readFile, rename, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PaxosError } from '../../src/errors.js';
import { encodeKvCommand } from '../../src/kv/kv-command.js';
import { decodeKvSnapshot } from '../../src/kv/kv-snapshot-codec.js';
import {
  loadNewestSnapshot, snapshotDirectory, snapshotFileName, writeSnapshotFile,
} from '../../src/kv/kv-snapshot-files.js';
import { KvCheckpoints } from '../../src/kv/kv-checkpoints.js';
import { KvSnapshotter, resolveSnapshotOptions } from '../../src/kv/kv-snapshotter.js';
import { KvStateMachine } from '../../src/kv/kv-state-machine.js';
import type { PaxosNode } from '../../src/node/paxos-node.js';
import { SILENT_LOGGER, type Logger } from '../../src/runtime/interfaces.js';
import { tempRoot } from '../support/local.js';

const readdir = async (directory: string): Promise<string[]> => (await readdirUnsorted(directory)).sort();
const EXPECTED = { group: 0, groups: 1 };
const FENCE = { nodeId: 1, masterVersion: 1 };

/** A one-group machine that executed a fence and `puts` puts at instances 0.. */
function machineWith(puts: number): KvStateMachine {
  const machine = new KvStateMachine({ groups: 1 });
  const run = (instanceId: number, value: Uint8Array): void => {
    machine.execute({ groupIndex: 0, instanceId, value, context: undefined });
  };
  run(0, encodeKvCommand({ kind: 'fence', fence: FENCE, httpAddress: 'http://h:1' }));
  for (let i = 1; i <= puts; i++) {
    run(i, encodeKvCommand({ kind: 'put', key: `k${i}`, value: Buffer.from(`v${i}`), expectedVersion: undefined,
      fence: FENCE }));
  }
  return machine;
}

async function directoryWith(instances: readonly number[]): Promise<string> {
  const directory = join(await tempRoot('kv-snapshot-files'), 'g0');
  for (const instanceId of instances) {
    await writeSnapshotFile(directory, machineWith(instanceId).captureSnapshot(0, instanceId));
  }
  return directory;
}

function recordingLogger(): Logger & { warnings: string[] } {
  const warnings: string[] = [];
  return { ...SILENT_LOGGER, warnings, warn: (message, fields) => warnings.push(`${message} ${JSON.stringify(fields)}`) };
}

async function flipByte(path: string, offset: number): Promise<void> {
  const bytes = await readFile(path);
  bytes[offset] = (bytes[offset] as number) ^ 0xff;
  await writeFile(path, bytes);
}

describe('KV snapshot files', () => {
  test('the newest two are kept, and the newest intact one is loaded', async () => {
    const directory = await directoryWith([3, 7, 12]);
    assert.deepEqual(await readdir(directory), [snapshotFileName(7), snapshotFileName(12)]);
    const loaded = await loadNewestSnapshot(directory, EXPECTED, SILENT_LOGGER);
    assert.equal(loaded?.instanceId, 12);
    assert.equal(loaded?.entries.size, 12);
  });

  test('no directory or no snapshot: nothing to load', async () => {
    const root = await tempRoot('kv-snapshot-files');
    assert.equal(await loadNewestSnapshot(join(root, 'missing'), EXPECTED, SILENT_LOGGER), undefined);
    assert.equal(snapshotDirectory(root, 2), join(root, 'kv-snapshots', 'g2'));
  });

  test('a temporary file left by a crash mid-write is removed and never loaded', async () => {
    const directory = await directoryWith([4]);
    const leftover = join(directory, `${snapshotFileName(9)}.tmp`);
    await writeFile(leftover, 'half a snapshot');
    assert.equal((await loadNewestSnapshot(directory, EXPECTED, SILENT_LOGGER))?.instanceId, 4);
    assert.equal(existsSync(leftover), false);
  });

  for (const damage of ['corrupt', 'torn'] as const) {
    test(`a ${damage} newest snapshot is set aside and the previous one is used`, async () => {
      const directory = await directoryWith([5, 8]);
      const newest = join(directory, snapshotFileName(8));
      if (damage === 'corrupt') await flipByte(newest, 60);
      else await truncate(newest, 30);
      const logger = recordingLogger();
      const loaded = await loadNewestSnapshot(directory, EXPECTED, logger);
      assert.equal(loaded?.instanceId, 5);
      assert.deepEqual(await readdir(directory), [snapshotFileName(5), `${snapshotFileName(8)}.corrupt`]);
      assert.match(logger.warnings.join('\n'), /damaged KV snapshot was set aside/);
      // The file set aside takes no part in pruning: the next snapshots keep the two newest intact ones.
      await writeSnapshotFile(directory, machineWith(9).captureSnapshot(0, 9));
      await writeSnapshotFile(directory, machineWith(10).captureSnapshot(0, 10));
      assert.deepEqual(await readdir(directory),
        [snapshotFileName(10), `${snapshotFileName(8)}.corrupt`, snapshotFileName(9)].sort());
    });
  }

  test('when no snapshot is intact, start-up is refused and the files are left as they are', async () => {
    const directory = await directoryWith([5, 8]);
    await flipByte(join(directory, snapshotFileName(5)), 50);
    await truncate(join(directory, snapshotFileName(8)), 10);
    await assert.rejects(loadNewestSnapshot(directory, EXPECTED, SILENT_LOGGER), (error: unknown) => {
      assert.ok(error instanceof PaxosError && error.code === 'STARTUP_FAILED');
      assert.match(error.message, /no intact KV snapshot .*too short.*CRC mismatch.*Refusing to start/);
      return true;
    });
    assert.deepEqual(await readdir(directory), [snapshotFileName(5), snapshotFileName(8)]);
  });

  test('a snapshot that cannot be read (not damaged) refuses start-up and is never set aside', async () => {
    const directory = await directoryWith([3]);
    // A directory under a snapshot's name: reading it fails with EISDIR, which says nothing of damage.
    await mkdir(join(directory, snapshotFileName(9)));
    const logger = recordingLogger();
    await assert.rejects(loadNewestSnapshot(directory, EXPECTED, logger),
      (error: unknown) => error instanceof PaxosError && error.code === 'STARTUP_FAILED' && /cannot read/.test(error.message));
    assert.deepEqual(await readdir(directory), [snapshotFileName(3), snapshotFileName(9)]);
    assert.deepEqual(logger.warnings, []);
  });

  test('a snapshot under another instance\'s name is refused', async () => {
    const directory = await directoryWith([5]);
    await rename(join(directory, snapshotFileName(5)), join(directory, snapshotFileName(6)));
    await assert.rejects(loadNewestSnapshot(directory, EXPECTED, SILENT_LOGGER),
      /covers instance 5, not the one its name/);
  });

  test('an abandoned write leaves neither the snapshot nor its temporary file', async () => {
    const directory = await directoryWith([2]);
    await assert.rejects(writeSnapshotFile(directory, machineWith(6).captureSnapshot(0, 6), () => true), /abandoned/);
    assert.deepEqual(await readdir(directory), [snapshotFileName(2)]);
  });
});

function files(dataDir: string): KvCheckpoints {
  return new KvCheckpoints(dataDir, 1, SILENT_LOGGER);
}

/** A stand-in for the node: the snapshotter reads only the group's current instance and membership version. */
function fakeNode(now: number[]): PaxosNode {
  return { nowInstanceId: (group: number) => now[group], members: () => ({ version: -1 }) } as unknown as PaxosNode;
}

describe('KvSnapshotter', () => {
  const manualOnly = resolveSnapshotOptions({ intervalMs: 0, everyInstances: 0 });

  test('the checkpoint advances only once the snapshot file is durable in place', async () => {
    const dataDir = await tempRoot('kv-snapshotter');
    const machine = machineWith(4);
    const now = [5];
    const snapshotter = new KvSnapshotter(machine, fakeNode(now), files(dataDir), SILENT_LOGGER, manualOnly);
    const path = join(snapshotDirectory(dataDir, 0), snapshotFileName(4));
    const record = machine.recordCheckpoint.bind(machine);
    let checkedAt: number | undefined;
    machine.recordCheckpoint = (group, instanceId) => {
      // At this moment the final file must be in place and whole, and its temporary gone.
      assert.equal(decodeKvSnapshot(new Uint8Array(readFileSync(path)), EXPECTED).instanceId, instanceId);
      assert.equal(existsSync(`${path}.tmp`), false);
      checkedAt = instanceId;
      record(group, instanceId);
    };
    const pending = snapshotter.snapshotNow(0);
    assert.equal(machine.checkpointInstanceId(0), -1, 'not before the write');
    const [taken] = await pending;
    assert.equal(checkedAt, 4);
    assert.equal(taken?.instanceId, 4);
    assert.equal(machine.checkpointInstanceId(0), 4);
    const [again] = await snapshotter.snapshotNow(0);
    assert.equal(again?.path, undefined, 'nothing executed since: nothing written');
    await snapshotter.stop();
  });

  test('a failed write leaves the checkpoint where it was', async () => {
    const root = await tempRoot('kv-snapshotter');
    const dataDir = join(root, 'not-a-directory');
    await writeFile(dataDir, 'a file');
    const machine = machineWith(3);
    const snapshotter = new KvSnapshotter(machine, fakeNode([4]), files(dataDir), SILENT_LOGGER, manualOnly);
    await assert.rejects(snapshotter.snapshotNow(0));
    assert.equal(machine.checkpointInstanceId(0), -1);
    await snapshotter.stop();
  });

  test('a cut waits while the current instance is part-way through its execution', async () => {
    const dataDir = await tempRoot('kv-snapshotter');
    const machine = machineWith(4);
    // Instance 4 executed KV entries but has not finished (a batch waiting on another state machine).
    const now = [4];
    const snapshotter = new KvSnapshotter(machine, fakeNode(now), files(dataDir), SILENT_LOGGER, manualOnly);
    const pending = snapshotter.snapshotNow(0);
    await new Promise((resolve) => setTimeout(resolve, 30));
    assert.equal(machine.checkpointInstanceId(0), -1);
    now[0] = 5;
    const [taken] = await pending;
    assert.equal(taken?.instanceId, 4, 'the cut is taken once instance 4 is complete');
    await snapshotter.stop();
  });

  test('every N instances triggers a snapshot in the background', async () => {
    const dataDir = await tempRoot('kv-snapshotter');
    const machine = machineWith(9);
    const snapshotter = new KvSnapshotter(machine, fakeNode([10]), files(dataDir), SILENT_LOGGER,
      resolveSnapshotOptions({ intervalMs: 0, everyInstances: 5 }));
    const deadline = Date.now() + 5_000;
    while (machine.checkpointInstanceId(0) !== 9 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.equal(machine.checkpointInstanceId(0), 9);
    await snapshotter.stop();
  });

  test('bad options are refused before anything starts', () => {
    assert.throws(() => resolveSnapshotOptions({ intervalMs: -1 }), /snapshots.intervalMs must be an integer/);
    assert.throws(() => resolveSnapshotOptions({ everyInstances: 1.5 }), /snapshots.everyInstances/);
  });
});
