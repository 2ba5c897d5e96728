/**
 * The timing of a simulated disk: operations complete one after another, each after a random
 * latency (sometimes a much longer one), through the gate of the process that issued them. It can
 * also arm a trap on the next write, so that a fault injector can crash a node mid-write.
 */
import type { SeededRandom } from '../../util/random.js';
import type { SimScheduler } from './scheduler.js';

export interface DeviceLatency {
  latencyMinMs: number;
  latencyMaxMs: number;
  /** Share of operations that take up to 20x the maximum latency. */
  slowRate: number;
}

/** Runs a completion for the process that issued it, or not at all if that process is gone. */
export type ProcessGate = (run: () => void) => void;

export class SimDevice {
  /** Called once, with the completion time, when the next write is issued (to crash mid-write). */
  onNextWrite: ((completeAt: number) => void) | null = null;
  private busyUntil = 0;
  private readonly scheduler: SimScheduler;
  private readonly random: SeededRandom;
  private readonly latency: () => DeviceLatency;

  constructor(scheduler: SimScheduler, random: SeededRandom, latency: () => DeviceLatency) {
    this.scheduler = scheduler;
    this.random = random;
    this.latency = latency;
  }

  /** Run `operation` when the device completes it; its result or error settles the promise. */
  schedule<T>(gate: ProcessGate, operation: () => T, isWrite = false): Promise<T> {
    const { latencyMinMs, latencyMaxMs, slowRate } = this.latency();
    let latency = latencyMinMs + this.random.float() * (latencyMaxMs - latencyMinMs);
    if (this.random.chance(slowRate)) latency *= 1 + this.random.float() * 20;
    const completeAt = Math.max(this.scheduler.now, this.busyUntil) + latency;
    this.busyUntil = completeAt;
    if (isWrite && this.onNextWrite !== null) {
      const trap = this.onNextWrite;
      this.onNextWrite = null;
      trap(completeAt);
    }
    return new Promise<T>((resolve, reject) => {
      this.scheduler.at(completeAt, () => gate(() => {
        try {
          resolve(operation());
        } catch (error) {
          reject(error);
        }
      }));
    });
  }
}
