// One owner per group: a group halted because its storage refuses writes is rebuilt by the node's
// storage recovery, and a checkpoint install may not run into it meanwhile (both would replace the
// group's runtime, and the loser, never stopped, could go on writing acceptor records). An install
// arriving while the group is halted for storage, or while storage recovery is rebuilding it, is
// refused with STORAGE_UNAVAILABLE and touches no state machine; the group resumes by itself.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FileLogStore } from '../../src/io/file-log-store.js';
import { PaxosError, PaxosNode, type ExecuteInput, type StateMachine } from '../../src/index.js';
import type { VerifiedCheckpoint } from '../../src/runtime/checkpoint/checkpoint-receiver.js';
import { tempDirectory } from '../io/file-store-fixtures.js';
import { FillableFileSystem } from './fillable-file-system.js';
import { LoopbackTransport } from './loopback-transport.js';

/** Executes values and could install a snapshot (it records any attempt). */
class Installable implements StateMachine {
  readonly id = 1;
  readonly executed: string[] = [];
  installs = 0;
  execute(input: ExecuteInput): string {
    const value = Buffer.from(input.value).toString();
    this.executed.push(value);
    return value;
  }

  checkpointInstanceId(): number {
    return -1;
  }

  installSnapshot(): Promise<void> {
    this.installs++;
    return Promise.resolve();
  }
}

/** The node's install entry point, as the checkpoint receiver calls it once a transfer is verified. */
function install(node: PaxosNode, checkpoint: VerifiedCheckpoint): Promise<void> {
  return (node as unknown as { install(groupIndex: number, checkpoint: VerifiedCheckpoint): Promise<void> })
    .install(0, checkpoint);
}

function checkpointAt(instanceId: number): VerifiedCheckpoint {
  return {
    from: 2, instanceId, bytes: 0,
    manifest: { entries: [{ stateMachineId: 1, instanceId }], systemVariables: undefined, masterVariables: undefined },
    snapshots: [{ stateMachineId: 1, instanceId, pieces: [], bytes: 0, crc32: 0 }],
  };
}

async function until(check: () => boolean, what: () => string, ms = 30_000): Promise<void> {
  const deadline = performance.now() + ms;
  while (!check()) {
    if (performance.now() > deadline) assert.fail(`timed out after ${ms} ms waiting until ${what()}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function refusedForStorage(error: unknown): boolean {
  assert.ok(error instanceof PaxosError, String(error));
  assert.equal(error.code, 'STORAGE_UNAVAILABLE', error.message);
  return true;
}

test('no checkpoint installs into a group halted for storage or being rebuilt after it', { timeout: 60_000 },
  async () => {
    const { path: directory, remove } = await tempDirectory('storage-install-');
    const fileSystem = new FillableFileSystem();
    const store = await FileLogStore.open({ directory, fileSystem, segmentBytes: 64 * 1024 });
    const machine = new Installable();
    const node = await PaxosNode.start({
      nodeId: 1, members: [{ id: 1, host: '127.0.0.1', port: 1 }], groups: 1, store,
      transport: new LoopbackTransport(), stateMachines: [machine], master: { groups: [] },
    });
    let releaseReads = (): void => {};
    try {
      await node.propose(0, 'a');
      fileSystem.full = true;
      await assert.rejects(node.propose(0, 'refused'), refusedForStorage);
      await until(() => node.status(0).halted?.code === 'STORAGE_UNAVAILABLE', () => 'the group halted');

      // Halted for storage: refused.
      await assert.rejects(install(node, checkpointAt(1_000)), refusedForStorage);
      assert.equal(node.status(0).halted?.code, 'STORAGE_UNAVAILABLE', 'the group is left to storage recovery');

      // Being rebuilt (held part way: its reads of the log wait): refused as well.
      fileSystem.readGate = new Promise<void>((resolve) => { releaseReads = resolve; });
      fileSystem.full = false;
      await until(() => fileSystem.readsWaiting > 0 && node.status(0).halted !== null,
        () => 'the rebuild reads the log');
      await assert.rejects(install(node, checkpointAt(1_000)), refusedForStorage);
      fileSystem.readGate = null;
      releaseReads();

      await until(() => node.storageFailure() === undefined && node.status(0).halted === null,
        () => 'the node resumed');
      await node.propose(0, 'b');
      assert.equal(machine.installs, 0, 'no refused install reached a state machine');
      assert.deepEqual(machine.executed, ['a', 'b']);
    } finally {
      releaseReads();
      await node.stop();
      await store.close();
      await remove();
    }
  });
