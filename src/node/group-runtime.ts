/**
 * Everything one group of a PaxosNode runs on: its state machines (the user's and the master
 * lease), the core restored from the log, the driver, and the master manager when the group elects
 * a master. Built once at start-up, in group order.
 */
import { GroupCore } from '../core/group-core.js';
import type { PaxosMessage } from '../core/messages.js';
import type { Incarnation } from '../core/proposal-identity.js';
import type { HaltReason } from '../core/ready.js';
import { NOT_CHOSEN, PaxosError } from '../errors.js';
import { fullCrc32 } from '../io/crc32.js';
import { GroupDriver } from '../runtime/group-driver.js';
import type { Clock, LogStore, StateMachine } from '../runtime/interfaces.js';
import { MasterManager } from '../runtime/master/master-manager.js';
import { MasterStateMachine, type MasterInfo } from '../runtime/master/master-state-machine.js';
import type { Membership } from '../runtime/membership/membership-codec.js';
import { MembershipStateMachine } from '../runtime/membership/membership-state-machine.js';
import { resumeAfterMembershipChange } from '../runtime/membership/resume-after-change.js';
import { restoreGroup, settlePendingCheckpoint } from '../runtime/restore.js';
import { StateMachineRegistry } from '../runtime/state-machine-registry.js';
import { SeededRandom, type Random } from '../util/random.js';
import type { GroupHalt, ResolvedNodeOptions } from './node-options.js';

export interface GroupRuntime {
  readonly groupIndex: number;
  readonly driver: GroupDriver;
  readonly registry: StateMachineRegistry;
  readonly master: MasterStateMachine;
  readonly membership: MembershipStateMachine;
  /** Present when this group elects a master. */
  readonly masterManager: MasterManager | undefined;
}

export interface GroupRuntimeContext {
  readonly options: ResolvedNodeOptions;
  readonly store: LogStore;
  readonly clock: Clock;
  readonly random: Random;
  /** This process life's incarnation, part of every proposal's identity. */
  readonly incarnation: Incarnation;
  readonly send: (groupIndex: number, to: number, message: PaxosMessage) => void;
  readonly onTimersChanged: () => void;
  /** A membership change took effect in a group: the transport learns the members' addresses. */
  readonly onMembershipChanged: (groupIndex: number, membership: Membership) => void;
  /** A group halted (after the user's onHalt): the node's storage recovery looks at the reason. */
  readonly onHalted?: (groupIndex: number, reason: HaltReason) => void;
}

/**
 * How far a group rebuilt inside a running process (after a checkpoint install, or once the
 * storage resumes) has executed into its state machines, which keep in memory what they executed.
 * It outlives a failed attempt: replay reports each instance it runs here, and the registry of the
 * latest attempt holds a batch that failed part way, so the next attempt goes on from there rather
 * than executing the same instances again.
 */
export interface ExecutionProgress {
  /** Every instance up to here was executed by these state machine objects. */
  executedThrough: number;
  /** The registry of the latest runtime or attempt (its half-executed batch is carried over). */
  registry: StateMachineRegistry;
}

/**
 * `stateMachines` overrides the options' when a group is rebuilt (after a checkpoint install): the
 * very objects that installed the snapshot must go on, not fresh ones from a factory.
 *
 * `progress` is set on such a rebuild: start-up replay begins above `executedThrough` (see
 * restoreGroup), and both it and the registry are updated as the attempt goes (see above).
 */
export async function buildGroupRuntime(
  context: GroupRuntimeContext, groupIndex: number, stateMachines = context.options.stateMachines(groupIndex),
  progress?: ExecutionProgress,
): Promise<GroupRuntime> {
  const { options, store, clock, random } = context;
  for (const stateMachine of stateMachines) validateStateMachine(stateMachine);
  const registry = new StateMachineRegistry(groupIndex, stateMachines);
  if (progress !== undefined) {
    registry.carryOver(progress.registry);
    progress.registry = registry;
  }
  // Every group can execute master bids, whether or not this node takes part in the election.
  let manager: MasterManager | undefined;
  const master = await MasterStateMachine.load({
    groupIndex, nodeId: options.nodeId, store, clock, onBidApplied: () => manager?.checkChange(),
  });
  registry.addSystem(master);
  // The core is built after start-up replay; changes executed from then on reach it here.
  const built: { core?: GroupCore } = {};
  const membership = await MembershipStateMachine.load({
    groupIndex, store, configured: options.members,
    onApplied: (next) => {
      // Executed at instance N: majorities for N + 1 on are counted over the new members.
      built.core?.setMembers(next.members.map((member) => member.id));
      context.onMembershipChanged(groupIndex, next);
    },
  });
  registry.addSystem(membership);
  // Completing a checkpoint install writes the checkpoint's system and master variables, which the
  // state machines above loaded before: the group is then built again, from the settled store.
  if (await settlePendingCheckpoint(store, groupIndex, registry) === 'completed') {
    return await buildGroupRuntime(context, groupIndex, stateMachines, progress);
  }
  const restored = await resumeAfterMembershipChange(store, groupIndex,
    await restoreGroup(store, groupIndex, registry, {
      checkpointSettled: true, executedThrough: progress?.executedThrough,
      onExecuted: progress === undefined ? undefined : (instanceId) => {
        progress.executedThrough = Math.max(progress.executedThrough, instanceId);
      },
    }),
    membership.membership.version);
  const core = new GroupCore({
    groupIndex, nodeId: options.nodeId, members: membership.membership.members.map((member) => member.id),
    followers: options.followers.filter((follower) => follower.follows === options.nodeId).map(({ id }) => id),
    random: forkRandom(random), incarnation: context.incarnation, checksum: fullCrc32, timing: options.timing,
    faults: options.testFaults.core,
  }, restored, clock.now());
  built.core = core;
  // User code must not break the group's error path: a throw is logged and dropped.
  const reportHalt = (halt: GroupHalt): void => {
    try {
      options.onHalt?.(groupIndex, halt);
    } catch (error) {
      options.logger.error('onHalt threw; ignored', { group: groupIndex, error: String(error) });
    }
  };
  let driver: GroupDriver | undefined = undefined;
  driver = new GroupDriver({
    groupIndex, core, store, registry, clock, logger: options.logger, syncWrites: options.sync,
    send: context.send,
    queueLimits: { maxCount: options.maxQueuedProposals, maxBytes: options.maxQueuedBytes },
    batchLimits: { maxCount: options.maxBatchCount, maxBytes: options.maxBatchBytes },
    onTimersChanged: context.onTimersChanged,
    onFatal: (error) => {
      options.logger.error('broken invariant; the group stops', { group: groupIndex, error: String(error) });
      driver?.failFatally(error);
      manager?.stop();
      const message = `group ${groupIndex}: broken invariant: ${String(error)}`;
      reportHalt({ code: 'GROUP_HALTED', message, cause: error });
    },
    onHalt: (reason: HaltReason) => {
      options.logger.error('group halted', { group: groupIndex, code: reason.code, message: reason.message });
      manager?.stop();
      reportHalt(reason);
      context.onHalted?.(groupIndex, reason);
    },
    faults: options.testFaults.driver,
  });
  const groupDriver = driver;
  if (options.master.groups.includes(groupIndex)) {
    manager = new MasterManager({
      nodeId: options.nodeId, machine: master, clock, random: forkRandom(random), settings: options.master,
      ignoreDrift: options.testFaults.masterIgnoresDrift,
      firstBidDelayMs: firstBidDelay(options, groupIndex, membership.membership.members.map((member) => member.id)),
      propose: (value, bidContext, timeoutMs) => groupDriver.propose(value, { timeoutMs, context: bidContext }),
      // User code must not fail a bid's execution or a timer tick: a throw is logged and dropped.
      onMasterChange: (info: MasterInfo | undefined) => {
        try {
          options.onMasterChange?.(groupIndex, info);
        } catch (error) {
          options.logger.error('onMasterChange threw; ignored', { group: groupIndex, error: String(error) });
        }
      },
      onTimersChanged: context.onTimersChanged,
    });
  }
  return { groupIndex, driver: groupDriver, registry, master, membership, masterManager: manager };
}

export function validateStateMachine(stateMachine: unknown): asserts stateMachine is StateMachine {
  const candidate = stateMachine as Partial<StateMachine> | undefined;
  if (typeof candidate !== 'object' || candidate === null || typeof candidate.execute !== 'function') {
    throw new PaxosError('BAD_OPTIONS',
      'a state machine must be an object with an id and an execute function', NOT_CHOSEN);
  }
}

function forkRandom(random: Random): Random {
  return new SeededRandom(random.int(0, 2 ** 31));
}

/**
 * With master.spread, group g prefers the member at index g mod n (members by id); with
 * master.together, every group prefers the member with the lowest id. The others give it a head
 * start of half a lease (at most 2 s) before their first bid: time for the preferred node's bid
 * and, if that first bid loses a race (to the group identity, say), its next one. Only the start is
 * steered: once a group has a master, nobody bids until its lease ends, so nothing moves back.
 */
export function firstBidDelay(options: ResolvedNodeOptions, groupIndex: number, memberIds: readonly number[]): number {
  const placement = options.master.placement;
  if (placement === 'any' || memberIds.length === 0) return 0;
  const sorted = [...memberIds].sort((a, b) => a - b);
  const preferred = placement === 'together' ? sorted[0] : sorted[groupIndex % sorted.length];
  return preferred === options.nodeId ? 0 : Math.min(2_000, options.master.leaseMs / 2);
}
