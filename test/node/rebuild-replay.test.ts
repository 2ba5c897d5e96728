// A group rebuilt after its storage failed replays the chosen values its state machines have not
// executed. When that replay fails part way (the disk refuses a metadata write again, here while a
// membership change executes), the next attempt must go on from where the failed one stopped: the
// state machines are the same objects and keep in memory what the failed attempt executed. Without
// it the value before the failure is executed twice (a KV put applied twice).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FileLogStore } from '../../src/io/file-log-store.js';
import { PaxosError, PaxosNode, type ExecuteInput, type StateMachine } from '../../src/index.js';
import { encodeMembership } from '../../src/runtime/membership/membership-codec.js';
import { frameValue, SYSTEM_STATE_MACHINE_ID } from '../../src/runtime/value-frame.js';
import { ballot } from '../contract/log-store-contract.js';
import { tempDirectory } from '../io/file-store-fixtures.js';
import { FillableFileSystem } from './fillable-file-system.js';
import { LoopbackTransport } from './loopback-transport.js';

class Echo implements StateMachine {
  readonly id = 1;
  readonly executed: string[] = [];
  execute(input: ExecuteInput): string {
    const value = Buffer.from(input.value).toString();
    this.executed.push(value);
    return value;
  }
}

async function until(check: () => boolean, what: () => string, ms = 30_000): Promise<void> {
  const deadline = performance.now() + ms;
  while (!check()) {
    if (performance.now() > deadline) assert.fail(`timed out after ${ms} ms waiting until ${what()}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

test('a rebuild whose replay the disk fails part way does not execute those instances again', { timeout: 60_000 },
  async () => {
    const { path: directory, remove } = await tempDirectory('rebuild-replay-');
    const fileSystem = new FillableFileSystem();
    const store = await FileLogStore.open({ directory, fileSystem, segmentBytes: 64 * 1024 });
    const echo = new Echo();
    const node = await PaxosNode.start({
      nodeId: 1, members: [{ id: 1, host: '127.0.0.1', port: 1 }], groups: 1, store,
      transport: new LoopbackTransport(), stateMachines: [echo], master: { groups: [] },
    });
    try {
      await node.propose(0, 'a');
      await until(() => node.members(0).gid !== 0, () => 'the group identity is created');

      fileSystem.full = true;
      await assert.rejects(node.propose(0, 'refused'), (error: unknown) =>
        error instanceof PaxosError && error.code === 'STORAGE_UNAVAILABLE');
      await until(() => node.status(0).halted?.code === 'STORAGE_UNAVAILABLE', () => 'the group halted');
      const next = node.nowInstanceId(0);

      // The storage resumes, and the log then holds three chosen values the state machines never
      // executed (as a node that learned them before the failure would): a value for Echo, a
      // membership change (whose execution writes the metadata) and one more value. The rebuild
      // replays the first two (the newest is decided again live); the disk refuses the metadata
      // write of the second once, so the first attempt fails after executing 'x'.
      const realResume = store.resume.bind(store);
      let seeded = false;
      store.resume = async () => {
        await realResume();
        if (seeded) return;
        seeded = true;
        const newest = await store.get(0, (await store.maxInstanceId(0)) as number);
        const chosen = ballot((newest?.promised.proposalId ?? 0) + 1, 1);
        const membership = node.members(0);
        const values = [
          frameValue(1, Buffer.from('x')),
          frameValue(SYSTEM_STATE_MACHINE_ID, encodeMembership({ ...membership, nonce: 7 })),
          frameValue(1, Buffer.from('y')),
        ];
        await store.put(0, values.map((value, offset) => ({
          instanceId: next + offset, promised: chosen, accepted: chosen, value, checksum: 0,
        })), { sync: true });
        fileSystem.failMetadataWrites = 1;
      };
      fileSystem.full = false;

      await until(() => node.storageFailure() === undefined && node.status(0).halted === null,
        () => `the node resumed (${JSON.stringify(node.storageFailure())}, ${JSON.stringify(node.status(0).halted)})`);
      assert.equal(fileSystem.metadataWritesRefused, 1, 'the first rebuild failed on the metadata write');
      assert.equal(node.members(0).version, next + 1, 'the membership change was executed');
      await node.propose(0, 'c');
      assert.deepEqual(echo.executed, ['a', 'x', 'y', 'c'], 'each value executed once, in order');
    } finally {
      await node.stop();
      await store.close();
      await remove();
    }
  });
