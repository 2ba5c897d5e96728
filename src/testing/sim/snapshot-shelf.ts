/**
 * A simulated node's durable snapshots: what its state machines saved, kept across crashes (it
 * belongs to the node's disk, not to a process life). A snapshot is saved as a real one would be,
 * to a temporary file that is fsynced and then renamed over the old one: one atomic step that
 * completes after the write's latency, or never, if the process crashes first. Until then the old
 * snapshot stands, so a crash at any moment leaves the old state or the new one.
 */
import type { SimScheduler } from './scheduler.js';
import type { ProcessGate, SimDevice } from './sim-device.js';

/** A state machine's state after executing `count` values, the last at or below `instanceId`. */
export interface MachineSnapshot {
  readonly instanceId: number;
  readonly count: number;
  readonly digest: number;
}

export class SnapshotShelf {
  private readonly durable = new Map<string, MachineSnapshot>();
  /** Saves issued, and saves that became durable. */
  saves = 0;
  saved = 0;

  /** The newest durable snapshot of a state machine, as a restarted process finds it. */
  read(groupIndex: number, machineId: number): MachineSnapshot | undefined {
    return this.durable.get(`${groupIndex}:${machineId}`);
  }

  /**
   * Save a snapshot: it becomes durable when the returned promise resolves (through `gate`: never,
   * if the process that issued it is gone). A snapshot file is larger than a log record, so the
   * write and its fsync take `extraMs` longer than the device's own latency. An older snapshot never
   * replaces a newer one (the newest file wins, as a real store would pick it at start-up).
   */
  save(scheduler: SimScheduler, device: SimDevice, gate: ProcessGate, groupIndex: number, machineId: number,
    snapshot: MachineSnapshot, extraMs: number): Promise<void> {
    this.saves++;
    return new Promise<void>((resolve) => {
      scheduler.after(extraMs, () => gate(() => {
        void device.schedule(gate, () => {
          const key = `${groupIndex}:${machineId}`;
          const older = this.durable.get(key);
          if (older === undefined || older.instanceId <= snapshot.instanceId) this.durable.set(key, snapshot);
          this.saved++;
        }, true).then(resolve);
      }));
    });
  }
}
