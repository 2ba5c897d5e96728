/**
 * A LogStore that keeps everything in memory: for examples, tests and nodes whose durability comes
 * from elsewhere. It survives nothing; use the file store for real deployments.
 */
import type { AcceptorRecord } from '../core/ready.js';
import type { LogStore, PendingCheckpoint } from '../runtime/interfaces.js';

interface GroupLog {
  readonly records: Map<number, AcceptorRecord>;
  maxInstanceId: number | undefined;
  minChosenInstanceId: number;
  systemVariables: Uint8Array | undefined;
  masterVariables: Uint8Array | undefined;
  pendingCheckpoint: PendingCheckpoint | undefined;
}

export class MemoryLogStore implements LogStore {
  private readonly groups = new Map<number, GroupLog>();
  private closed = false;

  async put(groupIndex: number, records: readonly AcceptorRecord[]): Promise<void> {
    const log = this.group(groupIndex);
    for (const record of records) {
      log.records.set(record.instanceId, copyRecord(record));
      if (log.maxInstanceId === undefined || record.instanceId > log.maxInstanceId) {
        log.maxInstanceId = record.instanceId;
      }
    }
  }

  async get(groupIndex: number, instanceId: number): Promise<AcceptorRecord | undefined> {
    const record = this.group(groupIndex).records.get(instanceId);
    return record === undefined ? undefined : copyRecord(record);
  }

  async maxInstanceId(groupIndex: number): Promise<number | undefined> {
    return this.group(groupIndex).maxInstanceId;
  }

  async deleteBelow(groupIndex: number, instanceId: number): Promise<void> {
    const log = this.group(groupIndex);
    for (const key of log.records.keys()) if (key < instanceId) log.records.delete(key);
    if (instanceId > log.minChosenInstanceId) log.minChosenInstanceId = instanceId;
    if (log.records.size === 0) log.maxInstanceId = undefined;
  }

  async minChosenInstanceId(groupIndex: number): Promise<number> {
    return this.group(groupIndex).minChosenInstanceId;
  }

  async setMinChosenInstanceId(groupIndex: number, instanceId: number): Promise<void> {
    this.group(groupIndex).minChosenInstanceId = instanceId;
  }

  async systemVariables(groupIndex: number): Promise<Uint8Array | undefined> {
    return this.group(groupIndex).systemVariables?.slice();
  }

  async setSystemVariables(groupIndex: number, value: Uint8Array): Promise<void> {
    this.group(groupIndex).systemVariables = value.slice();
  }

  async masterVariables(groupIndex: number): Promise<Uint8Array | undefined> {
    return this.group(groupIndex).masterVariables?.slice();
  }

  async setMasterVariables(groupIndex: number, value: Uint8Array): Promise<void> {
    this.group(groupIndex).masterVariables = value.slice();
  }

  async pendingCheckpoint(groupIndex: number): Promise<PendingCheckpoint | undefined> {
    return this.group(groupIndex).pendingCheckpoint;
  }

  async setPendingCheckpoint(groupIndex: number, pending: PendingCheckpoint | undefined): Promise<void> {
    this.group(groupIndex).pendingCheckpoint = pending;
  }

  async clear(groupIndex: number): Promise<void> {
    const log = this.group(groupIndex);
    log.records.clear();
    log.maxInstanceId = undefined;
    log.minChosenInstanceId = 0;
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  private group(groupIndex: number): GroupLog {
    if (this.closed) throw new Error('MemoryLogStore is closed');
    let log = this.groups.get(groupIndex);
    if (log === undefined) {
      log = { records: new Map(), maxInstanceId: undefined, minChosenInstanceId: 0,
        systemVariables: undefined, masterVariables: undefined, pendingCheckpoint: undefined };
      this.groups.set(groupIndex, log);
    }
    return log;
  }
}

export function copyRecord(record: AcceptorRecord): AcceptorRecord {
  return { ...record, value: record.value.slice() };
}
