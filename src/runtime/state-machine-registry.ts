/**
 * Routes chosen values to the state machines of one group by their id, and answers which instance
 * start-up must replay from.
 */
import { proposalBody } from '../core/proposal-identity.js';
import { BatchContexts, BatchEntryError, decodeBatch } from './batch-value.js';
import type { ExecuteInput, StateMachine } from './interfaces.js';
import { BATCH_STATE_MACHINE_ID, isUserStateMachineId, NO_STATE_MACHINE_ID, unframeValue } from './value-frame.js';

/** How far a batch got before one of its entries failed: a retry resumes after the last success. */
interface BatchProgress {
  readonly instanceId: number;
  readonly results: unknown[];
}

export class StateMachineRegistry {
  private readonly byId = new Map<number, StateMachine>();
  private readonly groupIndex: number;
  /** Each state machine's checkpoint as of start-up: instances at or below it are never re-executed. */
  private readonly startCheckpoints = new Map<number, number>();
  private batchProgress: BatchProgress | null = null;
  private readonly systemIds = new Set<number>();

  constructor(groupIndex: number, stateMachines: readonly StateMachine[] = []) {
    this.groupIndex = groupIndex;
    for (const stateMachine of stateMachines) this.add(stateMachine);
  }

  add(stateMachine: StateMachine): void {
    if (!isUserStateMachineId(stateMachine.id)) {
      throw new RangeError(`state machine id ${stateMachine.id} is outside 1..99999999 (higher ids are reserved)`);
    }
    if (this.byId.has(stateMachine.id)) throw new RangeError(`state machine id ${stateMachine.id} is already registered`);
    this.byId.set(stateMachine.id, stateMachine);
  }

  /**
   * Register one of the library's own state machines (a reserved id). It keeps its state durably
   * as it executes and skips what it already applied, so it neither limits where start-up replay
   * begins nor has values skipped for it.
   */
  addSystem(stateMachine: StateMachine): void {
    if (isUserStateMachineId(stateMachine.id) || this.byId.has(stateMachine.id)) {
      throw new RangeError(`state machine id ${stateMachine.id} is not a free reserved id`);
    }
    this.byId.set(stateMachine.id, stateMachine);
    this.systemIds.add(stateMachine.id);
  }

  /**
   * Take over another registry's half-executed batch (a group rebuilt in the same process): its
   * retry must resume after the entries that already ran, not run them again.
   */
  carryOver(previous: StateMachineRegistry): void {
    this.batchProgress = previous.batchProgress;
  }

  /** The user's state machines. */
  get stateMachines(): readonly StateMachine[] {
    return [...this.byId.values()].filter((stateMachine) => !this.systemIds.has(stateMachine.id));
  }

  /**
   * Replay must start above the *lowest* checkpoint, so every state machine sees every value it
   * has not kept; each one then skips what its own checkpoint already covers.
   */
  replayFromInstanceId(executedThrough = -1): number {
    this.captureCheckpoints(executedThrough);
    let lowest = Infinity;
    for (const checkpoint of this.startCheckpoints.values()) lowest = Math.min(lowest, checkpoint);
    return lowest === Infinity ? 0 : lowest + 1;
  }

  /**
   * The lowest checkpoint the user's state machines report right now (-1 when any has none, or
   * when there is no state machine): every instance at or below it is durable in all of them.
   */
  lowestCheckpoint(): number {
    const machines = this.stateMachines;
    if (machines.length === 0) return -1;
    let lowest = Infinity;
    for (const stateMachine of machines) {
      lowest = Math.min(lowest, stateMachine.checkpointInstanceId?.(this.groupIndex) ?? -1);
    }
    return lowest;
  }

  /**
   * Remember every state machine's checkpoint as start-up sees it. Start-up resumes at the newest
   * logged instance, which may be at or below some state machine's checkpoint (its effects are
   * already durable there); that instance is then decided again live and must be skipped for it.
   */
  captureCheckpoints(executedThrough = -1): void {
    this.startCheckpoints.clear();
    for (const stateMachine of this.stateMachines) {
      const checkpoint = stateMachine.checkpointInstanceId?.(this.groupIndex) ?? -1;
      this.startCheckpoints.set(stateMachine.id, Math.max(checkpoint, executedThrough));
    }
  }

  /**
   * Execute one chosen value. Throws when the addressed state machine fails or does not exist here:
   * an unknown id is a configuration error, and skipping it would silently diverge this node.
   * A batch executes its entries in order and returns their results as an array; when an entry
   * fails, the retry resumes at that entry, so no entry ever runs twice.
   */
  async execute(instanceId: number, chosen: Uint8Array, context: unknown): Promise<unknown> {
    // The proposal's identity only tells its proposer the value is its own; state machines see the body.
    const value = proposalBody(chosen);
    const { stateMachineId, payload } = unframeValue(value);
    if (stateMachineId !== BATCH_STATE_MACHINE_ID) return await this.executeOne(instanceId, value, context);
    const entries = decodeBatch(payload);
    const contexts = context instanceof BatchContexts ? context.contexts : [];
    const progress = this.batchProgress?.instanceId === instanceId
      ? this.batchProgress : { instanceId, results: [] };
    this.batchProgress = progress;
    for (let index = progress.results.length; index < entries.length; index++) {
      try {
        progress.results.push(await this.executeOne(instanceId, entries[index] as Uint8Array, contexts[index]));
      } catch (error) {
        throw new BatchEntryError(index, [...progress.results], error);
      }
    }
    this.batchProgress = null;
    return progress.results;
  }

  private async executeOne(instanceId: number, value: Uint8Array, context: unknown): Promise<unknown> {
    const { stateMachineId, payload } = unframeValue(value);
    if (stateMachineId === NO_STATE_MACHINE_ID) return undefined;
    const stateMachine = this.byId.get(stateMachineId);
    if (stateMachine === undefined) {
      throw new Error(`group ${this.groupIndex} instance ${instanceId}: no state machine with id ${stateMachineId}`);
    }
    if (instanceId <= (this.startCheckpoints.get(stateMachineId) ?? -1)) return undefined;
    const input: ExecuteInput = { groupIndex: this.groupIndex, instanceId, value: payload, context };
    return await stateMachine.execute(input);
  }
}
