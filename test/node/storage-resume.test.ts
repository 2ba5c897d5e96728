// A PaxosNode over a FileLogStore (real files, fsync) whose file system starts refusing every write
// with ENOSPC, then takes them again: the failing group and the idle one both halt with
// STORAGE_UNAVAILABLE, the node says why (storageFailure, metrics) and masters nothing; once writes
// work again it resumes by itself (no restart), every group takes proposals, and what was executed,
// before and after, is executed once, also on a restart from the same directory.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FileLogStore } from '../../src/io/file-log-store.js';
import { NODE_FILE_SYSTEM, type FileSystem } from '../../src/io/file-system.js';
import { PaxosError, PaxosNode, type ExecuteInput, type StateMachine } from '../../src/index.js';
import { tempDirectory } from '../io/file-store-fixtures.js';
import { FillableFileSystem } from './fillable-file-system.js';
import { LoopbackTransport } from './loopback-transport.js';

class Echo implements StateMachine {
  readonly id = 1;
  readonly executed: string[][] = [[], []];
  execute(input: ExecuteInput): string {
    const value = Buffer.from(input.value).toString();
    this.executed[input.groupIndex]?.push(value);
    return value;
  }
}

async function until(check: () => boolean, what: () => string, ms = 20_000): Promise<void> {
  const deadline = performance.now() + ms;
  while (!check()) {
    if (performance.now() > deadline) assert.fail(`timed out after ${ms} ms waiting until ${what()}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function startNode(directory: string, fileSystem: FileSystem, echo: Echo):
  Promise<{ node: PaxosNode; store: FileLogStore }> {
  const store = await FileLogStore.open({ directory, fileSystem, segmentBytes: 64 * 1024 });
  const node = await PaxosNode.start({
    nodeId: 1, members: [{ id: 1, host: '127.0.0.1', port: 1 }], groups: 2, store,
    transport: new LoopbackTransport(), stateMachines: [echo], master: { groups: [0, 1], leaseMs: 1_000 },
  });
  return { node, store };
}

test('a node whose storage refuses writes halts every group, says why, and resumes by itself', { timeout: 60_000 },
  async () => {
    const { path: directory, remove } = await tempDirectory('storage-resume-');
    try {
      const fileSystem = new FillableFileSystem();
      const echo = new Echo();
      const { node, store } = await startNode(directory, fileSystem, echo);
      try {
        await node.propose(0, 'a');
        await node.propose(1, 'a1');
        await until(() => node.isMaster(0) && node.isMaster(1), () => 'the node masters both groups');

        fileSystem.full = true;
        await assert.rejects(node.propose(0, 'b'), (error: unknown) => {
          assert.ok(error instanceof PaxosError);
          assert.equal(error.code, 'STORAGE_UNAVAILABLE', error.message);
          return true;
        });
        await until(() => node.status(0).halted?.code === 'STORAGE_UNAVAILABLE' &&
          node.status(1).halted?.code === 'STORAGE_UNAVAILABLE', () => 'both groups halted for storage');
        assert.equal(node.storageFailure()?.reason, 'ENOSPC');
        assert.equal(node.metrics().storage?.reason, 'ENOSPC');
        assert.deepEqual(node.metrics().groups.map((group) => group.halted), ['STORAGE_UNAVAILABLE', 'STORAGE_UNAVAILABLE']);
        assert.equal(node.isMaster(0), false, 'a node that cannot write masters nothing');
        assert.equal(node.isMaster(1), false);
        await assert.rejects(node.propose(1, 'b1'), /STORAGE_UNAVAILABLE|ENOSPC/);
        // It stays down while the storage refuses writes (its attempts back off: 0.5, 1, 2 s...).
        await new Promise((resolve) => setTimeout(resolve, 1_800));
        assert.equal(node.status(0).halted?.code, 'STORAGE_UNAVAILABLE');
        assert.equal(node.metrics().storageResumes, 0);

        fileSystem.full = false;
        await until(() => node.storageFailure() === undefined && node.status(0).halted === null &&
          node.status(1).halted === null, () => `the node resumed (${JSON.stringify(node.storageFailure())})`);
        assert.equal(node.metrics().storageResumes, 1);
        await node.propose(0, 'c');
        await node.propose(1, 'c1');
        assert.deepEqual(echo.executed, [['a', 'c'], ['a1', 'c1']], 'each executed once; the refused ones never');
        assert.equal(store.storageFailure(), undefined);
      } finally {
        await node.stop();
        await store.close();
      }

      // Restarted on the same directory, it executes exactly that again (the newest instance of each
      // group once the node has learned it chosen, which takes it a round of its own).
      const again = new Echo();
      const restarted = await startNode(directory, NODE_FILE_SYSTEM, again);
      try {
        await until(() => again.executed.every((values) => values.length >= 2),
          () => `the restarted node executed its log (${JSON.stringify(again.executed)})`);
        await restarted.node.propose(0, 'd');
      } finally {
        await restarted.node.stop();
        await restarted.store.close();
      }
      assert.deepEqual(again.executed, [['a', 'c', 'd'], ['a1', 'c1']]);
    } finally {
      await remove();
    }
  });
