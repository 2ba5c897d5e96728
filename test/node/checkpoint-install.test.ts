// installCheckpoint and start-up's settling of it, on a memory store: the group's system and master
// variables (membership, master) change with the state machines, never ahead of them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NULL_BALLOT } from '../../src/core/ballot.js';
import type { AcceptorRecord } from '../../src/core/ready.js';
import { MemoryLogStore } from '../../src/io/memory-log-store.js';
import { installCheckpoint } from '../../src/node/checkpoint-install.js';
import type { GroupRuntime } from '../../src/node/group-runtime.js';
import type { VerifiedCheckpoint } from '../../src/runtime/checkpoint/checkpoint-receiver.js';
import type { ExecuteInput, ReceivedSnapshot, StateMachine } from '../../src/runtime/interfaces.js';
import { settlePendingCheckpoint } from '../../src/runtime/restore.js';
import { StateMachineRegistry } from '../../src/runtime/state-machine-registry.js';
import { fromUtf8, utf8 } from '../../src/util/bytes.js';
import { decodeMembership, encodeMembership } from '../../src/runtime/membership/membership-codec.js';

class Installer implements StateMachine {
  checkpoint = -1;
  failInstall = false;
  installs = 0;
  constructor(readonly id: number) {}
  execute(_input: ExecuteInput): unknown {
    return undefined;
  }
  checkpointInstanceId(): number {
    return this.checkpoint;
  }
  async installSnapshot(_groupIndex: number, received: ReceivedSnapshot): Promise<void> {
    for await (const _piece of received.chunks) { /* read whole */ }
    if (this.failInstall) throw new Error(`state machine ${this.id} cannot install`);
    this.installs++;
    this.checkpoint = received.instanceId;
  }
}

function record(instanceId: number, accepted: boolean): AcceptorRecord {
  return {
    instanceId, promised: { proposalId: 4, nodeId: 2 }, accepted: accepted ? { proposalId: 3, nodeId: 2 } : NULL_BALLOT,
    value: accepted ? utf8(`v${instanceId}`) : new Uint8Array(0), checksum: 0,
  };
}

const MEMBERS = [1, 2, 3].map((id) => ({ id, host: '127.0.0.1', port: 7000 + id }));
const OWN_MEMBERSHIP = encodeMembership({ gid: 77, version: 0, members: MEMBERS, nonce: 0 });
/** A membership changed at instance 6, below the checkpoint at 9. */
const CHECKPOINT_MEMBERSHIP = encodeMembership({ gid: 77, version: 6, members: MEMBERS.slice(0, 2), nonce: 0 });

/**
 * A node at instance 2 (0 and 1 chosen, a promise at 2) with its own variables installs a checkpoint
 * at 9 that carries others. `rebuild` does what start-up does first: settle the pending install.
 */
async function install(
  secondFails: boolean, secondCheckpoint = -1,
): Promise<{ store: MemoryLogStore; failure: unknown; machines: Installer[] }> {
  const store = new MemoryLogStore();
  await store.put(0, [record(0, true), record(1, true), record(2, false)]);
  await store.setSystemVariables(0, OWN_MEMBERSHIP);
  await store.setMasterVariables(0, utf8('own master'));
  const first = new Installer(1);
  const second = new Installer(2);
  second.failInstall = secondFails;
  second.checkpoint = secondCheckpoint;
  const registry = new StateMachineRegistry(0, [first, second]);
  const runtime = {
    registry, driver: { nowInstanceId: 2 }, membership: { membership: decodeMembership(OWN_MEMBERSHIP) },
  } as unknown as GroupRuntime;
  const checkpoint: VerifiedCheckpoint = {
    from: 3, instanceId: 9, bytes: 2,
    manifest: {
      entries: [{ stateMachineId: 1, instanceId: 9 }, { stateMachineId: 2, instanceId: 9 }],
      systemVariables: CHECKPOINT_MEMBERSHIP, masterVariables: utf8('checkpoint master'),
    },
    snapshots: [1, 2].map((stateMachineId) => ({
      stateMachineId, instanceId: 9, pieces: [utf8('x')], bytes: 1, crc32: 0,
    })),
  };
  let failure: unknown = null;
  try {
    await installCheckpoint({
      groupIndex: 0, store, current: () => runtime, quiesce: async () => {},
      rebuild: async () => {
        await settlePendingCheckpoint(store, 0, registry);
        return runtime;
      },
      replace: () => {},
    }, checkpoint);
  } catch (error) {
    failure = error;
  }
  return { store, failure, machines: [first, second] };
}

const text = (bytes: Uint8Array | undefined): string | undefined => (bytes === undefined ? undefined : fromUtf8(bytes));
const version = (bytes: Uint8Array | undefined): number | undefined =>
  (bytes === undefined ? undefined : decodeMembership(bytes).version);

test('an install abandoned half way leaves the group its own system and master variables', async () => {
  // Sim seed 11: they were written before the state machines installed, so after an abandoned
  // install the membership claimed an instance the node never learned, and start-up skipped it.
  const { store, failure } = await install(true);
  assert.match(String(failure), /cannot install/);
  assert.equal(await store.pendingCheckpoint(0), undefined, 'the install was abandoned');
  assert.equal(version(await store.systemVariables(0)), 0, 'its own membership');
  assert.equal(text(await store.masterVariables(0)), 'own master');
  assert.equal(await store.maxInstanceId(0), 2, 'the log is whole');
  assert.equal(await store.minChosenInstanceId(0), 0);
});

test('an install that took gives the group the checkpoint\'s variables, and the log below it goes', async () => {
  const { store, failure } = await install(false);
  assert.equal(failure, null);
  assert.equal(await store.pendingCheckpoint(0), undefined, 'the install was completed');
  assert.equal(version(await store.systemVariables(0)), 6, 'the checkpoint\'s membership');
  assert.equal(text(await store.masterVariables(0)), 'checkpoint master');
  assert.equal(await store.minChosenInstanceId(0), 10);
  const kept = await store.get(0, 10);
  assert.deepEqual(kept?.promised, { proposalId: 4, nodeId: 2 }, 'the promise is kept above the checkpoint');
});

test('a state machine already past the checkpoint keeps its state; the others install', async () => {
  // Sim seeds 1367 and 1439: an earlier install gave it a newer snapshot than this one carries;
  // installing took it back, and the rebuilt group skipped its instances up to its checkpoint.
  const { store, failure, machines } = await install(false, 12);
  const [first, second] = machines as [Installer, Installer];
  assert.equal(failure, null);
  assert.equal(first.installs, 1);
  assert.equal(first.checkpoint, 9);
  assert.equal(second.installs, 0, 'not taken back');
  assert.equal(second.checkpoint, 12);
  assert.equal(await store.pendingCheckpoint(0), undefined, 'the install was completed');
  assert.equal(await store.minChosenInstanceId(0), 10);
});

test('settling a completed install writes the checkpoint\'s variables, once', async () => {
  const store = new MemoryLogStore();
  await store.put(0, [record(0, true), record(1, false)]);
  await store.setSystemVariables(0, utf8('own system'));
  await store.setPendingCheckpoint(0, { instanceId: 5, systemVariables: utf8('checkpoint system') });
  const machine = new Installer(1);
  machine.checkpoint = 5;
  const registry = new StateMachineRegistry(0, [machine]);
  assert.equal(await settlePendingCheckpoint(store, 0, registry), 'completed');
  assert.equal(text(await store.systemVariables(0)), 'checkpoint system');
  assert.equal(await settlePendingCheckpoint(store, 0, registry), 'none');
  assert.equal(await store.minChosenInstanceId(0), 6);
});

test('a checkpoint whose membership is newer than it, or of another cluster, is refused before anything stops', async () => {
  for (const [membership, reason] of [
    [encodeMembership({ gid: 77, version: 12, members: MEMBERS, nonce: 0 }), /newer than the checkpoint/],
    [encodeMembership({ gid: 99, version: 3, members: MEMBERS, nonce: 0 }), /another cluster/],
    [utf8('not a membership'), /malformed/],
  ] as const) {
    const store = new MemoryLogStore();
    await store.put(0, [record(0, true), record(1, true), record(2, false)]);
    const registry = new StateMachineRegistry(0, [new Installer(1)]);
    const runtime = {
      registry, driver: { nowInstanceId: 2 }, membership: { membership: decodeMembership(OWN_MEMBERSHIP) },
    } as unknown as GroupRuntime;
    let quiesced = false;
    const checkpoint: VerifiedCheckpoint = {
      from: 3, instanceId: 9, bytes: 1,
      manifest: {
        entries: [{ stateMachineId: 1, instanceId: 9 }], systemVariables: membership, masterVariables: undefined,
      },
      snapshots: [{ stateMachineId: 1, instanceId: 9, pieces: [utf8('x')], bytes: 1, crc32: 0 }],
    };
    await assert.rejects(installCheckpoint({
      groupIndex: 0, store, current: () => runtime, quiesce: async () => { quiesced = true; },
      rebuild: async () => runtime, replace: () => {},
    }, checkpoint), reason);
    assert.equal(quiesced, false, 'the group was never stopped');
    assert.equal(await store.pendingCheckpoint(0), undefined);
  }
});
