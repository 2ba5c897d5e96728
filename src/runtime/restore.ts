/**
 * Start-up of one group (PhxPaxos Instance::Init): load the acceptor's newest record, replay chosen
 * values the state machines do not hold, and decide the instance to resume at. The protection
 * checks refuse to start on a log that cannot be consistent with the state machines' checkpoints.
 */
import type { AcceptorState } from '../core/acceptor.js';
import { NULL_BALLOT } from '../core/ballot.js';
import type { RestoredGroupState } from '../core/group-core.js';
import { hasErrorCode, NOT_CHOSEN, PaxosError } from '../errors.js';
import { EMPTY_BYTES } from '../util/bytes.js';
import type { LogStore } from './interfaces.js';
import type { StateMachineRegistry } from './state-machine-registry.js';

export async function restoreGroup(
  store: LogStore, groupIndex: number, registry: StateMachineRegistry,
  options: {
    readonly checkpointSettled?: boolean;
    /**
     * When a group is rebuilt inside a running process (after a checkpoint install), its state
     * machines still hold in memory everything executed up to here, whatever their durable
     * checkpoints say: replay must not run those instances again (simulator seed 190).
     */
    readonly executedThrough?: number;
    /**
     * Told each instance replay executed, as it goes: a rebuild that fails part way (the disk
     * refuses a write during replay) must not execute those instances again at its next attempt.
     */
    readonly onExecuted?: (instanceId: number) => void;
  } = {},
): Promise<RestoredGroupState> {
  // A caller that loads the system state machines from the store settles first (see settlePendingCheckpoint).
  if (options.checkpointSettled !== true) await settlePendingCheckpoint(store, groupIndex, registry);
  const maxInstanceId = await store.maxInstanceId(groupIndex);
  const newest = maxInstanceId === undefined ? undefined : await store.get(groupIndex, maxInstanceId);
  if (maxInstanceId !== undefined && newest === undefined) {
    throw startupError(groupIndex, `the newest instance ${maxInstanceId} has no readable record`);
  }
  const logEnd = maxInstanceId ?? 0;
  let minChosenInstanceId = await store.minChosenInstanceId(groupIndex);
  const replayFrom = registry.replayFromInstanceId(options.executedThrough);
  const promised = newest?.promised ?? NULL_BALLOT;
  let nowInstanceId: number;
  let acceptor: AcceptorState;

  if (replayFrom < logEnd) {
    if (replayFrom < minChosenInstanceId) {
      throw startupError(groupIndex, `state machines need instance ${replayFrom}, but the log starts at ` +
        `${minChosenInstanceId}; a checkpoint is required`);
    }
    // In a running process (a rebuild), a failed execution is tried again as live execution
    // would; at a real start-up the process fails and its supervisor starts it again.
    await replay(store, groupIndex, registry, { from: replayFrom, to: logEnd,
      attempts: options.executedThrough === undefined ? 1 : 3, onExecuted: options.onExecuted });
    nowInstanceId = logEnd;
    acceptor = stateOf(newest);
  } else if (replayFrom > logEnd) {
    const logIsEmpty = maxInstanceId === undefined;
    if (!logIsEmpty && replayFrom > logEnd + 1) {
      throw startupError(groupIndex, `state machine checkpoint is at instance ${replayFrom - 1} but the log ends ` +
        `at ${logEnd}: the log is behind the checkpoint. Do not wipe the log of a node that has voted (it ` +
        'would forget its promises); restore the log, or replace the node with a fresh one under a new id');
    }
    if (logIsEmpty) {
      minChosenInstanceId = replayFrom;
      await store.setMinChosenInstanceId(groupIndex, replayFrom);
    }
    nowInstanceId = replayFrom;
    acceptor = { promised, accepted: NULL_BALLOT, value: EMPTY_BYTES, checksum: 0 };
  } else {
    nowInstanceId = logEnd;
    acceptor = stateOf(newest);
  }

  let lastChecksum = 0;
  if (nowInstanceId > 0 && nowInstanceId > minChosenInstanceId) {
    lastChecksum = (await store.get(groupIndex, nowInstanceId - 1))?.checksum ?? 0;
  }
  return { nowInstanceId, acceptor, lastChecksum, minChosenInstanceId };
}

/**
 * A checkpoint install that a crash (or a failure) interrupted is finished or undone here, before
 * anything reads the log. The marker was set before any state machine began to install, and is
 * cleared only after the log below the checkpoint is gone. If every state machine now reports the
 * checkpoint, the install took: the log below it goes (its instances are all chosen, and the state
 * machines hold their effects), and the checkpoint's system and master variables, kept with the
 * marker, replace the group's. Otherwise some state machine still has its old state, so the log
 * that leads from it stays whole, the variables stay those of that log, and the node will ask for a
 * checkpoint again. System state machines loaded before a completion must be loaded again.
 *
 * The acceptor's promise lives in the newest record, which lies at or below the checkpoint (an
 * install refuses a log that reaches above it), so deleting the log would forget it, and the node
 * could then accept a lower ballot than it promised (promises carry over to later instances). It is
 * first written, durably, as a promise-only record at the checkpoint + 1, which the delete keeps.
 */
export async function settlePendingCheckpoint(
  store: LogStore, groupIndex: number, registry: StateMachineRegistry,
): Promise<'none' | 'completed' | 'abandoned'> {
  const pending = await store.pendingCheckpoint(groupIndex);
  if (pending === undefined) return 'none';
  const took = registry.lowestCheckpoint() >= pending.instanceId;
  if (took) {
    // Each step can be repeated: a crash before the marker is cleared settles it again.
    if (pending.systemVariables !== undefined) await store.setSystemVariables(groupIndex, pending.systemVariables);
    if (pending.masterVariables !== undefined) await store.setMasterVariables(groupIndex, pending.masterVariables);
    await keepPromise(store, groupIndex, pending.instanceId + 1);
    await store.deleteBelow(groupIndex, pending.instanceId + 1);
  }
  await store.setPendingCheckpoint(groupIndex, undefined);
  return took ? 'completed' : 'abandoned';
}

/** Carry the newest record's promise to a promise-only record at `instanceId` (if it is not there yet). */
async function keepPromise(store: LogStore, groupIndex: number, instanceId: number): Promise<void> {
  const newestId = await store.maxInstanceId(groupIndex);
  if (newestId === undefined || newestId >= instanceId) return;
  const newest = await store.get(groupIndex, newestId);
  if (newest === undefined || newest.promised.proposalId === 0) return;
  await store.put(groupIndex, [{
    instanceId, promised: newest.promised, accepted: NULL_BALLOT, value: EMPTY_BYTES, checksum: 0,
  }], { sync: true });
}

function stateOf(record: { promised: AcceptorState['promised']; accepted: AcceptorState['accepted'];
  value: Uint8Array; checksum: number } | undefined): AcceptorState {
  if (record === undefined) return { promised: NULL_BALLOT, accepted: NULL_BALLOT, value: EMPTY_BYTES, checksum: 0 };
  return { promised: record.promised, accepted: record.accepted, value: record.value, checksum: record.checksum };
}

async function replay(
  store: LogStore, groupIndex: number, registry: StateMachineRegistry,
  { from, to, attempts, onExecuted }: {
    readonly from: number; readonly to: number; readonly attempts: number;
    readonly onExecuted: ((instanceId: number) => void) | undefined;
  },
): Promise<void> {
  for (let instanceId = from; instanceId < to; instanceId++) {
    const record = await store.get(groupIndex, instanceId);
    if (record === undefined || record.accepted.proposalId === 0) {
      throw startupError(groupIndex, `instance ${instanceId} is below the log's end but has no chosen value`);
    }
    for (let attempt = 1; ; attempt++) {
      try {
        // A batch resumes after its last entry that succeeded (the registry keeps its progress).
        await registry.execute(instanceId, record.value, undefined);
        onExecuted?.(instanceId);
        break;
      } catch (error) {
        if (attempt >= attempts) {
          const failure = startupError(groupIndex, `replaying instance ${instanceId} failed: ${String(error)}`, error);
          replayExecutionFailures.add(failure);
          throw failure;
        }
      }
    }
  }
}

/** Errors that say a state machine threw while the log was replayed (see isReplayExecutionFailure). */
const replayExecutionFailures = new WeakSet<object>();

/**
 * A group could not be restored because one of its state machines threw while the log was
 * replayed: not a broken log, so trying again later may succeed (as executions are retried while
 * a node runs). Its code is still STARTUP_FAILED.
 */
export function isReplayExecutionFailure(error: unknown): boolean {
  return typeof error === 'object' && error !== null && replayExecutionFailures.has(error);
}

function startupError(groupIndex: number, detail: string, cause?: unknown): PaxosError {
  // A disk that refuses writes is not a broken log: say so, so the caller can wait for room.
  const code = hasErrorCode(cause, 'STORAGE_UNAVAILABLE') ? 'STORAGE_UNAVAILABLE' : 'STARTUP_FAILED';
  return new PaxosError(code, `group ${groupIndex}: ${detail}`, { ...NOT_CHOSEN, cause });
}
