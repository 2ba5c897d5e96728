/**
 * The echo state machine (PhxPaxos's PhxEcho sample): every node executes each chosen value in
 * the same order; the node that proposed it gets the value back as the result of its proposal.
 *
 * It also keeps a running CRC-32 over everything it executed (instance id and value), so nodes
 * can be compared: two nodes that executed the same sequence have the same digest.
 */
import { crc32 } from 'node:zlib';
import type { ExecuteInput, StateMachine } from '../../src/index.js';

export const ECHO_STATE_MACHINE_ID = 1;

export interface EchoRecord {
  readonly groupIndex: number;
  readonly instanceId: number;
  readonly value: Uint8Array;
}

export class EchoStateMachine implements StateMachine {
  readonly id = ECHO_STATE_MACHINE_ID;
  /** Per group: how many values were executed, and the digest of all of them in order. */
  private readonly progress = new Map<number, { executed: number; digest: number; lastInstanceId: number }>();
  private readonly onExecute: ((record: EchoRecord) => void) | undefined;

  constructor(onExecute?: (record: EchoRecord) => void) {
    this.onExecute = onExecute;
  }

  execute({ groupIndex, instanceId, value }: ExecuteInput): Uint8Array {
    const progress = this.progress.get(groupIndex) ?? { executed: 0, digest: 0, lastInstanceId: -1 };
    const header = Buffer.alloc(8);
    header.writeDoubleLE(instanceId);
    progress.digest = crc32(value, crc32(header, progress.digest));
    progress.executed++;
    progress.lastInstanceId = instanceId;
    this.progress.set(groupIndex, progress);
    this.onExecute?.({ groupIndex, instanceId, value });
    return value;
  }

  /** What this node executed in a group since it started (including the replay at start-up). */
  summary(groupIndex: number): { executed: number; digest: number; lastInstanceId: number } {
    return { ...(this.progress.get(groupIndex) ?? { executed: 0, digest: 0, lastInstanceId: -1 }) };
  }
}
