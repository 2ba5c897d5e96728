// StorageRecovery alone, over a fake store and fake group runtimes (the parts it drives): a halt
// that arrives after the store resumed (the group's write was refused before the resume) rebuilds
// that group only, raises no second failure (no made-up EIO) and counts no second resume; the
// reason of the last failure is kept for the metrics' labels.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { HaltReason } from '../../src/core/ready.js';
import type { GroupRuntime } from '../../src/node/group-runtime.js';
import { StorageRecovery, type ResumableStore, type StorageFailure } from '../../src/node/storage-recovery.js';
import type { LogStore } from '../../src/runtime/interfaces.js';
import { SILENT_LOGGER } from '../../src/runtime/interfaces.js';

class FakeStore implements ResumableStore {
  failure: StorageFailure | undefined;
  resumes = 0;
  storageFailure(): StorageFailure | undefined { return this.failure; }
  resume(): Promise<void> {
    this.resumes++;
    this.failure = undefined;
    return Promise.resolve();
  }

  onFailure(): void {}
}

interface FakeDriver { halted: HaltReason | null; haltForStorage(reason: HaltReason): void }

function fakeGroup(groupIndex: number): GroupRuntime {
  const driver: FakeDriver = {
    halted: null,
    haltForStorage(reason) { this.halted ??= reason; },
  };
  return { groupIndex, driver } as unknown as GroupRuntime;
}

const REFUSED: HaltReason = { code: 'STORAGE_UNAVAILABLE', message: 'log write failed: ENOSPC' };

test('a halt after the store resumed rebuilds that group only: no second failure, one resume', async () => {
  let now = 0;
  const store = new FakeStore();
  const groups = [fakeGroup(0), fakeGroup(1)];
  const rebuilt: number[] = [];
  const recovery = new StorageRecovery({
    store: store as unknown as LogStore & ResumableStore, clock: { now: () => now }, logger: SILENT_LOGGER,
    groups: () => groups,
    rebuild: (groupIndex) => {
      rebuilt.push(groupIndex);
      groups[groupIndex] = fakeGroup(groupIndex);
      return Promise.resolve();
    },
    busy: () => false,
    haltForGood: () => assert.fail('nothing halts for good here'),
    onTimersChanged: () => {},
  });
  const tickAt = async (at: number): Promise<void> => {
    now = at;
    recovery.tick();
    await recovery.whenIdle();
  };

  store.failure = { reason: 'ENOSPC', message: 'log write failed: ENOSPC' };
  recovery.onGroupHalted(REFUSED);
  assert.equal(recovery.failure?.reason, 'ENOSPC');
  assert.deepEqual(groups.map(({ driver }) => driver.halted?.code), ['STORAGE_UNAVAILABLE', 'STORAGE_UNAVAILABLE']);
  await tickAt(500);
  assert.equal(store.resumes, 1);
  assert.deepEqual(rebuilt, [0, 1]);
  assert.equal(recovery.failure, undefined);
  assert.equal(recovery.resumes, 1);

  // Group 1's write was refused before the resume; its halt is reported only now.
  (groups[1] as GroupRuntime).driver.haltForStorage(REFUSED);
  recovery.onGroupHalted(REFUSED);
  assert.equal(recovery.failure, undefined, 'the store takes writes: no new failure');
  assert.equal((groups[0] as GroupRuntime).driver.halted, null, 'the other group goes on');
  assert.ok(recovery.nextTimerAt() !== undefined, 'the halted group is rebuilt soon');
  await tickAt(recovery.nextTimerAt() as number);
  assert.deepEqual(rebuilt, [0, 1, 1]);
  assert.equal((groups[1] as GroupRuntime).driver.halted, null);
  assert.equal(recovery.resumes, 1, 'one failure, one resume');
  assert.equal(recovery.lastReason, 'ENOSPC', 'kept after the resume, for the metrics');
});

/** The error restoreGroup gives when a state machine throws on every try of a replayed instance. */
async function replayFailure(): Promise<Error> {
  const { restoreGroup } = await import('../../src/runtime/restore.js');
  const { MemoryLogStore } = await import('../../src/io/memory-log-store.js');
  const { StateMachineRegistry } = await import('../../src/runtime/state-machine-registry.js');
  const { frameValue } = await import('../../src/runtime/value-frame.js');
  const log = new MemoryLogStore();
  const ballot = { proposalId: 1, nodeId: 1 };
  await log.put(0, [0, 1].map((instanceId) => ({
    instanceId, promised: ballot, accepted: ballot, value: frameValue(1, new Uint8Array([instanceId + 1])), checksum: 0,
  })));
  const failing = new StateMachineRegistry(0, [{ id: 1, execute: () => { throw new Error('busy'); } }]);
  const failure = await restoreGroup(log, 0, failing, { executedThrough: -1 }).catch((error: unknown) => error);
  assert.ok(failure instanceof Error, 'the replay failed');
  return failure;
}

/**
 * Group 0 halted for its storage, the store resumed, and a rebuild whose replay fails `failures`
 * times: the recovery, the clock it runs on, and how many rebuilds were tried.
 */
function failingReplays(failure: Error, failures: number): {
  recovery: StorageRecovery; groups: GroupRuntime[]; clock: { now: number }; attempts: () => number;
} {
  const clock = { now: 0 };
  const store = new FakeStore();
  const groups = [fakeGroup(0)];
  let attempts = 0;
  const recovery = new StorageRecovery({
    store: store as unknown as LogStore & ResumableStore, clock: { now: () => clock.now }, logger: SILENT_LOGGER,
    groups: () => groups,
    rebuild: (groupIndex) => {
      attempts++;
      if (attempts <= failures) return Promise.reject(failure);
      groups[groupIndex] = fakeGroup(groupIndex);
      return Promise.resolve();
    },
    busy: () => false,
    haltForGood: () => assert.fail('a state machine that fails its replay must not halt the group for good'),
    onTimersChanged: () => {},
  });
  store.failure = { reason: 'ENOSPC', message: 'log write failed: ENOSPC' };
  (groups[0] as GroupRuntime).driver.haltForStorage(REFUSED);
  recovery.onGroupHalted(REFUSED);
  clock.now = 500;
  return { recovery, groups, clock, attempts: () => attempts };
}

test('a rebuild whose replay a state machine failed is tried again soon, not halted for good', async () => {
  const { recovery, groups, clock, attempts } = failingReplays(await replayFailure(), 1);
  recovery.tick();
  await recovery.whenIdle();
  assert.equal(attempts(), 1);
  assert.equal(recovery.failure, undefined, 'the storage itself is fine: no failure is reported for it');
  const next = recovery.nextTimerAt();
  assert.ok(next !== undefined, 'another attempt is planned');
  clock.now = next;
  recovery.tick();
  await recovery.whenIdle();
  assert.equal(attempts(), 2);
  assert.equal((groups[0] as GroupRuntime).driver.halted, null, 'rebuilt');
});

test('a replay a state machine keeps failing is retried, backing off from 1 s to 8 s', async () => {
  const { recovery, groups, clock, attempts } = failingReplays(await replayFailure(), 6);
  const gaps: number[] = [];
  while (attempts() < 7) {
    recovery.tick();
    await recovery.whenIdle();
    const next = recovery.nextTimerAt();
    if (next === undefined) break;
    gaps.push(next - clock.now);
    clock.now = next;
  }
  assert.equal(attempts(), 7, 'tried until the state machine stopped failing');
  assert.deepEqual(gaps.slice(0, 6), [1_000, 2_000, 4_000, 8_000, 8_000, 8_000]);
  assert.equal((groups[0] as GroupRuntime).driver.halted, null, 'rebuilt');
});
