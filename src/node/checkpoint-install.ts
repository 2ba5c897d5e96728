/**
 * Installing a verified checkpoint in place: no process exit, no supervisor (PhxPaxos calls
 * exit(-1) and relies on a restart), and the node's other groups go on serving.
 *
 * The group's runtime is stopped first (its proposals fail, its timers and messages stop: PhxPaxos
 * #158/#196 had a proposer timer write into a freshly cleared log) and waited on until idle. Then:
 *   1. the pending-checkpoint marker is set, carrying the checkpoint's system and master variables
 *      (they are written in place only when the install is settled as complete: written here, an
 *      install abandoned after a crash would leave the group's membership and master state ahead
 *      of its log and state machines; sim seed 11 found it, where a membership version taken from
 *      the checkpoint made start-up skip an instance the node never learned);
 *   2. every state machine installs its snapshot (each atomically, by contract);
 *   3. a fresh runtime is built from the store; start-up's `settlePendingCheckpoint` sees every
 *      state machine at the checkpoint, deletes the log below it and clears the marker.
 * A crash at any moment leaves old or new: before step 2 finishes, the marker is settled at the
 * next start by abandoning it (some state machine still has its old state and the log is whole);
 * after it, by completing it. A failure here does the same without a crash, and the group resumes.
 */
import type { LogStore, StateMachine } from '../runtime/interfaces.js';
import { decodeMembership, type Membership } from '../runtime/membership/membership-codec.js';
import type { VerifiedCheckpoint } from '../runtime/checkpoint/checkpoint-receiver.js';
import type { GroupRuntime } from './group-runtime.js';

export interface CheckpointInstallSteps {
  readonly groupIndex: number;
  readonly store: LogStore;
  readonly current: () => GroupRuntime;
  /** Stop the group's runtime: nothing of it may act until `replace`. */
  readonly quiesce: (runtime: GroupRuntime) => Promise<void>;
  /** Build the group's runtime afresh from the store and the state machines. */
  readonly rebuild: () => Promise<GroupRuntime>;
  readonly replace: (runtime: GroupRuntime) => void;
}

export async function installCheckpoint(steps: CheckpointInstallSteps, checkpoint: VerifiedCheckpoint): Promise<void> {
  const { groupIndex, store } = steps;
  const old = steps.current();
  const machines = installersFor(old.registry.stateMachines, checkpoint, groupIndex);
  if (checkpoint.instanceId < old.driver.nowInstanceId) {
    throw new Error(`the checkpoint (instance ${checkpoint.instanceId}) is behind the group (instance ` +
      `${old.driver.nowInstanceId})`);
  }
  refuseForeignMembership(checkpoint, old.membership.membership.gid, groupIndex);
  // Checked once before anything stops, so a checkpoint refused for it costs the group nothing,
  // and once after (the log may have grown meanwhile), when a refusal means rebuilding the group.
  await refuseLogAbove(store, groupIndex, checkpoint.instanceId);
  await steps.quiesce(old);
  let failure: unknown = null;
  try {
    await refuseLogAbove(store, groupIndex, checkpoint.instanceId);
    const { systemVariables, masterVariables } = checkpoint.manifest;
    await store.setPendingCheckpoint(groupIndex, {
      instanceId: checkpoint.instanceId, systemVariables, masterVariables,
    });
    for (const snapshot of checkpoint.snapshots) {
      const machine = machines.get(snapshot.stateMachineId) as Installer;
      // A state machine whose own checkpoint is at or past this snapshot (an earlier install gave
      // it a newer one than its neighbours) keeps its state: installing would take it back, while
      // the rebuilt group still skips, for it, every instance up to its checkpoint (simulator
      // seeds 1367 and 1439: it then missed those instances for good).
      if (machine.checkpointInstanceId(groupIndex) >= snapshot.instanceId) continue;
      await machine.installSnapshot(groupIndex, {
        instanceId: snapshot.instanceId, bytes: snapshot.bytes, chunks: piecesOf(snapshot.pieces),
      });
      const reported = machine.checkpointInstanceId(groupIndex);
      if (reported < snapshot.instanceId) {
        throw new Error(`state machine ${snapshot.stateMachineId} installed instance ${snapshot.instanceId} but ` +
          `reports checkpoint ${reported}`);
      }
    }
  } catch (error) {
    failure = error;
  }
  // Whatever happened, the group resumes from what the store and state machines now hold.
  steps.replace(await steps.rebuild());
  if (failure !== null) throw failure;
}

/**
 * The membership a checkpoint carries must be the group's as of the checkpoint: one changed after
 * it would have the node count majorities for the instances in between over members that did not
 * decide them. And it must be this cluster's group (the same gid, once both know one).
 */
function refuseForeignMembership(checkpoint: VerifiedCheckpoint, ownGid: number, groupIndex: number): void {
  const bytes = checkpoint.manifest.systemVariables;
  if (bytes === undefined) return;
  let membership: Membership;
  try {
    membership = decodeMembership(bytes);
  } catch (error) {
    throw new Error(`group ${groupIndex}: the checkpoint's membership is malformed: ${String(error)}`);
  }
  if (membership.version > checkpoint.instanceId) {
    throw new Error(`group ${groupIndex}: the checkpoint's membership (version ${membership.version}) is newer ` +
      `than the checkpoint (${checkpoint.instanceId})`);
  }
  if (ownGid !== 0 && membership.gid !== 0 && membership.gid !== ownGid) {
    throw new Error(`group ${groupIndex}: the checkpoint belongs to another cluster (gid ${membership.gid})`);
  }
}

/** Records above the checkpoint may hold promises for undecided instances: they must stay. */
async function refuseLogAbove(store: LogStore, groupIndex: number, instanceId: number): Promise<void> {
  const newest = await store.maxInstanceId(groupIndex);
  if (newest !== undefined && newest > instanceId) {
    throw new Error(`the log holds instance ${newest}, above the checkpoint (${instanceId})`);
  }
}

type Installer = Required<Pick<StateMachine, 'installSnapshot' | 'checkpointInstanceId'>> & StateMachine;

/** The group's state machines by id, checked to be exactly the checkpoint's and able to install. */
function installersFor(
  machines: readonly StateMachine[], checkpoint: VerifiedCheckpoint, groupIndex: number,
): Map<number, Installer> {
  const byId = new Map<number, Installer>();
  for (const machine of machines) {
    if (machine.installSnapshot === undefined || machine.checkpointInstanceId === undefined) {
      throw new Error(`group ${groupIndex}: state machine ${machine.id} cannot install a snapshot`);
    }
    byId.set(machine.id, machine as Installer);
  }
  const sent = checkpoint.snapshots.map((snapshot) => snapshot.stateMachineId).sort((a, b) => a - b);
  const here = [...byId.keys()].sort((a, b) => a - b);
  if (sent.join() !== here.join()) {
    throw new Error(`group ${groupIndex}: the checkpoint holds state machines [${sent.join(', ')}], this node runs ` +
      `[${here.join(', ')}]`);
  }
  return byId;
}

async function* piecesOf(pieces: readonly Uint8Array[]): AsyncGenerator<Uint8Array> {
  for (const piece of pieces) yield piece;
}
