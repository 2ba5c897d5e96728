/**
 * A simulated disk for one node. It outlives the node's processes. Writes are appended in order;
 * a write is durable once a sync covering it completed. A crash keeps everything durable, a random
 * prefix of the rest (writes in flight or completed without sync: the OS may have flushed some),
 * and possibly only part of the last write it keeps (a torn tail, which a real log store detects by
 * CRC and truncates). Operations complete in order after a random latency; a process that crashed
 * never sees its pending operations complete, and a paused one sees them only when it resumes.
 */
import type { AcceptorRecord } from '../../core/ready.js';
import type { LogStore, PendingCheckpoint } from '../../runtime/interfaces.js';
import type { SeededRandom } from '../../util/random.js';
import type { SimScheduler } from './scheduler.js';
import { SimDevice, type DeviceLatency, type ProcessGate } from './sim-device.js';

export interface DiskFaults extends DeviceLatency {
  /** Share of writes that fail with an I/O error (the group halts). */
  writeErrorRate: number;
  /** Chance that the last surviving write that was not yet durable is torn at a crash. */
  tornTailRate: number;
}

interface GroupData {
  records: Map<number, AcceptorRecord>;
  minChosenInstanceId: number;
  systemVariables: Uint8Array | undefined;
  masterVariables: Uint8Array | undefined;
  pendingCheckpoint: PendingCheckpoint | undefined;
}

interface VolatileWrite {
  readonly groupIndex: number;
  readonly records: readonly AcceptorRecord[];
  completed: boolean;
}

export type { ProcessGate };

export class SimDisk {
  faults: DiskFaults;
  private durable = new Map<number, GroupData>();
  private visible = new Map<number, GroupData>();
  /** Writes not yet durable, in issue order: in flight, or completed without a sync. */
  private volatile: VolatileWrite[] = [];
  private readonly random: SeededRandom;
  writes = 0;
  syncs = 0;
  writeErrors = 0;
  /** Timing of this disk's operations; its trap crashes a node in the middle of its next write. */
  readonly device: SimDevice;

  constructor(scheduler: SimScheduler, random: SeededRandom, faults: DiskFaults) {
    this.random = random;
    this.faults = faults;
    this.device = new SimDevice(scheduler, random, () => this.faults);
  }

  /** The LogStore one process life sees. */
  open(gate: ProcessGate): LogStore {
    return new SimDiskStore(this, gate);
  }

  /** Power loss: decide what of the writes that were not durable reached the platter. */
  crash(): { lostWrites: number; torn: boolean } {
    const kept = this.random.int(0, this.volatile.length + 1);
    const survivors = this.volatile.slice(0, kept);
    let torn = false;
    const last = survivors[survivors.length - 1];
    if (last !== undefined && last.records.length > 1 && this.random.chance(this.faults.tornTailRate)) {
      const keptRecords = last.records.slice(0, this.random.int(1, last.records.length));
      survivors[survivors.length - 1] = { ...last, records: keptRecords };
      torn = true;
    }
    for (const write of survivors) applyRecords(groupOf(this.durable, write.groupIndex), write.records);
    const lostWrites = this.volatile.length - kept;
    this.volatile = [];
    this.visible = cloneAll(this.durable);
    this.device.onNextWrite = null;
    return { lostWrites, torn };
  }

  /** Every record that is durable now, for checkers and debugging. */
  durableRecords(groupIndex: number): ReadonlyMap<number, AcceptorRecord> {
    return groupOf(this.durable, groupIndex).records;
  }

  schedule<T>(gate: ProcessGate, operation: () => T, isWrite = false): Promise<T> {
    return this.device.schedule(gate, operation, isWrite);
  }


  /** Append records; with `sync`, they and every completed write before them become durable. */
  put(gate: ProcessGate, groupIndex: number, records: readonly AcceptorRecord[], sync: boolean): Promise<void> {
    const write: VolatileWrite = { groupIndex, records, completed: false };
    this.volatile.push(write);
    return this.schedule(gate, () => {
      if (this.random.chance(this.faults.writeErrorRate)) {
        this.writeErrors++;
        this.volatile = this.volatile.filter((entry) => entry !== write);
        throw new Error('EIO: simulated write error');
      }
      this.writes++;
      write.completed = true;
      applyRecords(groupOf(this.visible, groupIndex), records);
      if (sync) this.sync();
    }, true);
  }

  /**
   * fsync: every completed write becomes durable (one log file, so one flush covers all groups).
   * Operations complete in order, so the completed writes are a prefix of the volatile ones.
   */
  sync(): void {
    this.syncs++;
    while (this.volatile[0]?.completed === true) {
      const write = this.volatile.shift() as VolatileWrite;
      applyRecords(groupOf(this.durable, write.groupIndex), write.records);
    }
  }

  read(groupIndex: number): GroupData {
    return groupOf(this.visible, groupIndex);
  }

  /** Metadata updates are written and synced at once (PhxPaxos writes them with sync). */
  updateMetadata(groupIndex: number, update: (data: GroupData) => void): void {
    this.sync();
    update(groupOf(this.visible, groupIndex));
    update(groupOf(this.durable, groupIndex));
  }
}

class SimDiskStore implements LogStore {
  private readonly disk: SimDisk;
  private readonly gate: ProcessGate;

  constructor(disk: SimDisk, gate: ProcessGate) {
    this.disk = disk;
    this.gate = gate;
  }

  put(groupIndex: number, records: readonly AcceptorRecord[], options: { readonly sync: boolean }): Promise<void> {
    // Copied at issue, as a real write captures its buffer: later changes by the caller do not reach the disk.
    return this.disk.put(this.gate, groupIndex, records.map(copyRecord), options.sync);
  }

  get(groupIndex: number, instanceId: number): Promise<AcceptorRecord | undefined> {
    return this.disk.schedule(this.gate, () => {
      const record = this.disk.read(groupIndex).records.get(instanceId);
      return record === undefined ? undefined : copyRecord(record);
    });
  }

  maxInstanceId(groupIndex: number): Promise<number | undefined> {
    return this.disk.schedule(this.gate, () => {
      let max: number | undefined;
      for (const key of this.disk.read(groupIndex).records.keys()) if (max === undefined || key > max) max = key;
      return max;
    });
  }

  deleteBelow(groupIndex: number, instanceId: number): Promise<void> {
    return this.disk.schedule(this.gate, () => this.disk.updateMetadata(groupIndex, (data) => {
      for (const key of data.records.keys()) if (key < instanceId) data.records.delete(key);
      data.minChosenInstanceId = Math.max(data.minChosenInstanceId, instanceId);
    }));
  }

  minChosenInstanceId(groupIndex: number): Promise<number> {
    return this.disk.schedule(this.gate, () => this.disk.read(groupIndex).minChosenInstanceId);
  }

  setMinChosenInstanceId(groupIndex: number, instanceId: number): Promise<void> {
    return this.disk.schedule(this.gate, () => this.disk.updateMetadata(groupIndex, (data) => {
      data.minChosenInstanceId = instanceId;
    }));
  }

  systemVariables(groupIndex: number): Promise<Uint8Array | undefined> {
    return this.disk.schedule(this.gate, () => this.disk.read(groupIndex).systemVariables?.slice());
  }

  setSystemVariables(groupIndex: number, value: Uint8Array): Promise<void> {
    value = value.slice();
    return this.disk.schedule(this.gate, () => this.disk.updateMetadata(groupIndex, (data) => {
      data.systemVariables = value;
    }));
  }

  masterVariables(groupIndex: number): Promise<Uint8Array | undefined> {
    return this.disk.schedule(this.gate, () => this.disk.read(groupIndex).masterVariables?.slice());
  }

  setMasterVariables(groupIndex: number, value: Uint8Array): Promise<void> {
    value = value.slice();
    return this.disk.schedule(this.gate, () => this.disk.updateMetadata(groupIndex, (data) => {
      data.masterVariables = value;
    }));
  }

  pendingCheckpoint(groupIndex: number): Promise<PendingCheckpoint | undefined> {
    return this.disk.schedule(this.gate, () => this.disk.read(groupIndex).pendingCheckpoint);
  }

  setPendingCheckpoint(groupIndex: number, pending: PendingCheckpoint | undefined): Promise<void> {
    return this.disk.schedule(this.gate, () => this.disk.updateMetadata(groupIndex, (data) => {
      data.pendingCheckpoint = pending;
    }));
  }

  clear(groupIndex: number): Promise<void> {
    return this.disk.schedule(this.gate, () => this.disk.updateMetadata(groupIndex, (data) => {
      data.records.clear();
      data.minChosenInstanceId = 0;
    }));
  }

  async close(): Promise<void> {}
}

function groupOf(groups: Map<number, GroupData>, groupIndex: number): GroupData {
  let data = groups.get(groupIndex);
  if (data === undefined) {
    data = {
      records: new Map(), minChosenInstanceId: 0, systemVariables: undefined, masterVariables: undefined,
      pendingCheckpoint: undefined,
    };
    groups.set(groupIndex, data);
  }
  return data;
}

function copyRecord(record: AcceptorRecord): AcceptorRecord {
  return { ...record, value: record.value.slice() };
}

function applyRecords(data: GroupData, records: readonly AcceptorRecord[]): void {
  for (const record of records) data.records.set(record.instanceId, record);
}

function cloneAll(groups: Map<number, GroupData>): Map<number, GroupData> {
  const copy = new Map<number, GroupData>();
  for (const [groupIndex, data] of groups) copy.set(groupIndex, { ...data, records: new Map(data.records) });
  return copy;
}
