/**
 * Checkpoint transfer for one group of a node: its sender (for peers too far behind) and its
 * receiver (for when this node is), outliving the group runtimes that an install replaces.
 */
import type { CheckpointMessage } from '../core/messages.js';
import type { OpenedCheckpoint } from '../runtime/checkpoint/checkpoint-sender.js';
import { CheckpointSender } from '../runtime/checkpoint/checkpoint-sender.js';
import { CheckpointReceiver, type VerifiedCheckpoint } from '../runtime/checkpoint/checkpoint-receiver.js';
import type { CheckpointTransferTiming } from '../runtime/checkpoint/checkpoint-timing.js';
import type { Clock, LogStore, Logger, StateMachineSnapshot } from '../runtime/interfaces.js';
import type { Random } from '../util/random.js';
import { decodeMembership } from '../runtime/membership/membership-codec.js';
import type { GroupRuntime } from './group-runtime.js';

export interface GroupCheckpointsOptions {
  readonly groupIndex: number;
  readonly nodeId: number;
  readonly store: LogStore;
  readonly clock: Clock;
  readonly random: Random;
  readonly logger: Logger;
  readonly timing: CheckpointTransferTiming;
  readonly runtime: () => GroupRuntime;
  readonly send: (to: number, message: CheckpointMessage) => void;
  readonly install: (checkpoint: VerifiedCheckpoint) => Promise<void>;
  readonly onTimersChanged: () => void;
}

export class GroupCheckpoints {
  readonly sender: CheckpointSender;
  readonly receiver: CheckpointReceiver;

  constructor(options: GroupCheckpointsOptions) {
    const { groupIndex, nodeId, clock, logger, timing, onTimersChanged } = options;
    this.sender = new CheckpointSender({
      groupIndex, nodeId, clock, random: options.random, logger, timing, onTimersChanged,
      send: options.send,
      open: () => openCheckpoint(options.runtime(), options.store),
      minChosenInstanceId: () => options.runtime().driver.minChosenInstanceId,
    });
    this.receiver = new CheckpointReceiver({
      groupIndex, nodeId, clock, logger, timing, onTimersChanged,
      send: options.send,
      nowInstanceId: () => options.runtime().driver.nowInstanceId,
      install: options.install,
    });
  }

  /** While a checkpoint installs, nothing of the group may act on a message. */
  get installing(): boolean {
    return this.receiver.installing;
  }

  /** A peer's log starts above our next instance. */
  needCheckpoint(peer: number): void {
    this.receiver.needCheckpoint(peer);
  }

  onMessage(message: CheckpointMessage): void {
    switch (message.kind) {
      case 'askForCheckpoint': this.sender.onAsk(message); return;
      case 'checkpointChunk': this.receiver.onChunk(message); return;
      case 'checkpointAck': this.sender.onAck(message); return;
    }
  }

  nextTimerAt(): number | undefined {
    const sender = this.sender.nextTimerAt();
    const receiver = this.receiver.nextTimerAt();
    if (sender === undefined) return receiver;
    return receiver === undefined ? sender : Math.min(sender, receiver);
  }

  tick(): void {
    this.sender.tick();
    this.receiver.tick();
  }

  stop(): void {
    this.sender.stop();
  }
}

/**
 * Every user state machine's snapshot and the group's system variables. Undefined when the group
 * cannot send one: no state machine, one without snapshot support, or one with no snapshot yet.
 */
async function openCheckpoint(runtime: GroupRuntime, store: LogStore): Promise<OpenedCheckpoint | undefined> {
  const { groupIndex } = runtime;
  const machines = runtime.registry.stateMachines;
  if (machines.length === 0) return undefined;
  if (machines.some((machine) => machine.openSnapshot === undefined || machine.installSnapshot === undefined)) {
    return undefined;
  }
  const snapshots: StateMachineSnapshot[] = [];
  try {
    for (const machine of machines) {
      const snapshot = await machine.openSnapshot?.(groupIndex);
      if (snapshot === undefined) {
        await closeQuietly(snapshots);
        return undefined;
      }
      snapshots.push(snapshot);
    }
    const systemVariables = await store.systemVariables(groupIndex);
    const instanceId = Math.min(...snapshots.map((snapshot) => snapshot.instanceId));
    if (systemVariables !== undefined && decodeMembership(systemVariables).version > instanceId) {
      // The membership changed after the snapshot: wait for a newer one (see checkpoint-install.ts).
      await closeQuietly(snapshots);
      return undefined;
    }
    return {
      manifest: {
        entries: machines.map((machine, index) => ({
          stateMachineId: machine.id, instanceId: (snapshots[index] as StateMachineSnapshot).instanceId,
        })),
        systemVariables,
        masterVariables: await store.masterVariables(groupIndex),
      },
      snapshots,
    };
  } catch (error) {
    await closeQuietly(snapshots);
    throw error;
  }
}

async function closeQuietly(snapshots: readonly StateMachineSnapshot[]): Promise<void> {
  for (const snapshot of snapshots) await Promise.resolve(snapshot.close?.()).catch(() => undefined);
}
