// The LogStore contract against every implementation: the in-memory store, the simulator's disk,
// and the default file store (small segments, so rolling happens; reopened from its directory).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AcceptorRecord } from '../../src/core/ready.js';
import { FileLogStore } from '../../src/io/file-log-store.js';
import { MemoryLogStore } from '../../src/io/memory-log-store.js';
import type { LogStore, PendingCheckpoint } from '../../src/runtime/interfaces.js';
import { SimScheduler } from '../../src/testing/sim/scheduler.js';
import { SimDisk, type DiskFaults } from '../../src/testing/sim/sim-disk.js';
import { SeededRandom } from '../../src/util/random.js';
import { describeLogStoreContract } from './log-store-contract.js';

/**
 * A SimDisk store whose every operation runs the simulator's scheduler until that operation has
 * settled, so the contract can await it like any other store. Concurrent operations each drive the
 * scheduler; events still run one at a time, in (time, seq) order.
 */
class ScheduledStore implements LogStore {
  private readonly inner: LogStore;
  private readonly scheduler: SimScheduler;

  constructor(inner: LogStore, scheduler: SimScheduler) {
    this.inner = inner;
    this.scheduler = scheduler;
  }

  private async drive<T>(operation: () => Promise<T>): Promise<T> {
    let settled = false;
    const promise = operation();
    promise.then(() => { settled = true; }, () => { settled = true; });
    const withinBudget = await this.scheduler.run(Infinity, () => settled || this.scheduler.pending === 0, 1e7);
    if (!withinBudget) throw new Error('the simulated disk ran out of its event budget');
    if (!settled) throw new Error('a simulated disk operation never completed');
    return promise;
  }

  put(groupIndex: number, records: readonly AcceptorRecord[], options: { readonly sync: boolean }): Promise<void> {
    return this.drive(() => this.inner.put(groupIndex, records, options));
  }

  get(groupIndex: number, instanceId: number): Promise<AcceptorRecord | undefined> {
    return this.drive(() => this.inner.get(groupIndex, instanceId));
  }

  maxInstanceId(groupIndex: number): Promise<number | undefined> {
    return this.drive(() => this.inner.maxInstanceId(groupIndex));
  }

  deleteBelow(groupIndex: number, instanceId: number): Promise<void> {
    return this.drive(() => this.inner.deleteBelow(groupIndex, instanceId));
  }

  minChosenInstanceId(groupIndex: number): Promise<number> {
    return this.drive(() => this.inner.minChosenInstanceId(groupIndex));
  }

  setMinChosenInstanceId(groupIndex: number, instanceId: number): Promise<void> {
    return this.drive(() => this.inner.setMinChosenInstanceId(groupIndex, instanceId));
  }

  systemVariables(groupIndex: number): Promise<Uint8Array | undefined> {
    return this.drive(() => this.inner.systemVariables(groupIndex));
  }

  setSystemVariables(groupIndex: number, value: Uint8Array): Promise<void> {
    return this.drive(() => this.inner.setSystemVariables(groupIndex, value));
  }

  masterVariables(groupIndex: number): Promise<Uint8Array | undefined> {
    return this.drive(() => this.inner.masterVariables(groupIndex));
  }

  setMasterVariables(groupIndex: number, value: Uint8Array): Promise<void> {
    return this.drive(() => this.inner.setMasterVariables(groupIndex, value));
  }

  pendingCheckpoint(groupIndex: number): Promise<PendingCheckpoint | undefined> {
    return this.drive(() => this.inner.pendingCheckpoint(groupIndex));
  }

  setPendingCheckpoint(groupIndex: number, pending: PendingCheckpoint | undefined): Promise<void> {
    return this.drive(() => this.inner.setPendingCheckpoint(groupIndex, pending));
  }

  clear(groupIndex: number): Promise<void> {
    return this.drive(() => this.inner.clear(groupIndex));
  }

  close(): Promise<void> {
    return this.drive(() => this.inner.close());
  }
}

/** No faults; small latencies so operations really wait for the scheduler. */
const NO_FAULTS: DiskFaults = { latencyMinMs: 0.1, latencyMaxMs: 2, slowRate: 0, writeErrorRate: 0, tornTailRate: 0 };

describeLogStoreContract('MemoryLogStore', async () => {
  const store = new MemoryLogStore();
  return { store, cleanup: () => store.close() };
});

describeLogStoreContract('SimDisk', async () => {
  const scheduler = new SimScheduler();
  const disk = new SimDisk(scheduler, new SeededRandom(20240611), { ...NO_FAULTS });
  const gate = (run: () => void): void => run();
  return {
    store: new ScheduledStore(disk.open(gate), scheduler),
    // A restart after a power cut: the disk keeps what was synced (and, at random, some of the rest).
    reopen: async () => {
      disk.crash();
      return new ScheduledStore(disk.open(gate), scheduler);
    },
    cleanup: async () => {},
  };
});

describeLogStoreContract('FileLogStore (16 KiB segments)', async () => {
  const directory = await mkdtemp(join(tmpdir(), 'log-store-contract-'));
  const open = (): Promise<FileLogStore> => FileLogStore.open({ directory, segmentBytes: 16 * 1024 });
  let current = await open();
  return {
    store: current,
    reopen: async () => {
      current = await open();
      return current;
    },
    cleanup: async () => {
      await current.close();
      await rm(directory, { recursive: true, force: true });
    },
  };
});
