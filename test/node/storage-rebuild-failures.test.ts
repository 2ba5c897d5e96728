// Storage recovery waits only for the storage. A group whose rebuild fails for another reason
// (here its state machine's checkpoint is ahead of its log: "the log is behind the checkpoint")
// halts for good with GROUP_HALTED, is not retried, and does not keep the node saying it cannot
// write: the other group resumes and the node reports no storage failure. A store found damaged
// as it resumes (STORAGE_CORRUPT) is not retried either: every group halts for good and the node
// says why.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FileLogStore } from '../../src/io/file-log-store.js';
import { PaxosError, PaxosNode, type ExecuteInput, type Logger, type StateMachine } from '../../src/index.js';
import { tempDirectory } from '../io/file-store-fixtures.js';
import { FillableFileSystem } from './fillable-file-system.js';
import { LoopbackTransport } from './loopback-transport.js';

/** Executes values; its checkpoint per group can be moved by the test. */
class Checkpointed implements StateMachine {
  readonly id = 1;
  readonly executed: string[][] = [[], []];
  readonly checkpoints = [-1, -1];
  execute(input: ExecuteInput): string {
    const value = Buffer.from(input.value).toString();
    this.executed[input.groupIndex]?.push(value);
    return value;
  }

  checkpointInstanceId(groupIndex: number): number {
    return this.checkpoints[groupIndex] ?? -1;
  }
}

class CountingLogger implements Logger {
  readonly lines: string[] = [];
  info(): void {}
  warn(message: string): void { this.lines.push(message); }
  error(message: string): void { this.lines.push(message); }
  count(pattern: RegExp): number {
    return this.lines.filter((line) => pattern.test(line)).length;
  }
}

async function until(check: () => boolean, what: () => string, ms = 30_000): Promise<void> {
  const deadline = performance.now() + ms;
  while (!check()) {
    if (performance.now() > deadline) assert.fail(`timed out after ${ms} ms waiting until ${what()}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function startHalted(directory: string, fileSystem: FillableFileSystem, machine: Checkpointed,
  logger: CountingLogger): Promise<{ node: PaxosNode; store: FileLogStore }> {
  const store = await FileLogStore.open({ directory, fileSystem, segmentBytes: 64 * 1024 });
  const node = await PaxosNode.start({
    nodeId: 1, members: [{ id: 1, host: '127.0.0.1', port: 1 }], groups: 2, store, logger,
    transport: new LoopbackTransport(), stateMachines: [machine], master: { groups: [] },
  });
  await node.propose(0, 'a');
  await node.propose(1, 'a1');
  fileSystem.full = true;
  await assert.rejects(node.propose(0, 'refused'), (error: unknown) =>
    error instanceof PaxosError && error.code === 'STORAGE_UNAVAILABLE');
  await until(() => node.status(0).halted?.code === 'STORAGE_UNAVAILABLE' &&
    node.status(1).halted?.code === 'STORAGE_UNAVAILABLE', () => 'both groups halted for storage');
  return { node, store };
}

test('a group whose rebuild fails for another reason than the storage halts for good; the rest resumes',
  { timeout: 60_000 }, async () => {
    const { path: directory, remove } = await tempDirectory('rebuild-failure-');
    const fileSystem = new FillableFileSystem();
    const machine = new Checkpointed();
    const logger = new CountingLogger();
    const { node, store } = await startHalted(directory, fileSystem, machine, logger);
    try {
      // Group 1's state machine now claims a checkpoint far above its log: no rebuild can start it.
      machine.checkpoints[1] = 1_000;
      fileSystem.full = false;
      await until(() => node.status(0).halted === null && node.status(1).halted?.code === 'GROUP_HALTED',
        () => `group 0 resumed and group 1 halted for good (${JSON.stringify([node.status(0).halted,
          node.status(1).halted])})`);
      assert.match(node.status(1).halted?.message ?? '', /behind the checkpoint/);
      assert.equal(node.storageFailure(), undefined, 'the storage takes writes: the node does not say otherwise');
      assert.equal(node.metrics().storageResumes, 1);
      await node.propose(0, 'b');
      await assert.rejects(node.propose(1, 'b1'), (error: unknown) =>
        error instanceof PaxosError && error.code === 'GROUP_HALTED');
      // Not retried: no attempt is logged any more.
      const attempts = logger.count(/could not be rebuilt|still refuses/);
      await new Promise((resolve) => setTimeout(resolve, 2_500));
      assert.equal(logger.count(/could not be rebuilt|still refuses/), attempts);
      assert.equal(logger.count(/still refuses/), 0, 'never taken for a storage failure');
      assert.deepEqual(machine.executed, [['a', 'b'], ['a1']]);
    } finally {
      await node.stop();
      await store.close();
      await remove();
    }
  });

test('a store found damaged as it resumes is not retried: every group halts for good, the node says why',
  { timeout: 60_000 }, async () => {
    const { path: directory, remove } = await tempDirectory('resume-corrupt-');
    const fileSystem = new FillableFileSystem();
    const logger = new CountingLogger();
    const { node, store } = await startHalted(directory, fileSystem, new Checkpointed(), logger);
    try {
      // The metadata file is damaged meanwhile (a bad sector, another process...).
      await writeFile(join(directory, 'meta'), Buffer.from('not the metadata at all'));
      fileSystem.full = false;
      await until(() => node.status(0).halted?.code === 'GROUP_HALTED' && node.status(1).halted?.code === 'GROUP_HALTED',
        () => `both groups halted for good (${JSON.stringify([node.status(0).halted, node.status(1).halted])})`);
      assert.equal(node.storageFailure()?.reason, 'STORAGE_CORRUPT');
      assert.equal(store.storageFailure()?.reason, 'STORAGE_CORRUPT');
      await assert.rejects(store.resume(), (error: unknown) =>
        error instanceof PaxosError && error.code === 'STORAGE_CORRUPT');
      const attempts = logger.count(/still refuses|damaged/);
      await new Promise((resolve) => setTimeout(resolve, 2_500));
      assert.equal(logger.count(/still refuses|damaged/), attempts, 'no attempt after the damage was found');
      assert.equal(node.metrics().storageResumes, 0);
    } finally {
      await node.stop();
      await store.close();
      await remove();
    }
  });
