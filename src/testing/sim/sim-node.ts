/**
 * One simulated node: a process that can start, crash, restart from its simulated disk alone, and
 * pause. Each life builds fresh state machines and a fresh runtime (GroupCore + GroupDriver per
 * group) exactly as production start-up does (restoreGroup replays the log). Everything that
 * reaches the process (messages, disk completions, its one timer) goes through a gate that drops
 * it when the life that asked for it is over, and holds it while the process is paused.
 */
import { DEFAULT_TIMING, type CoreFaults, type ProtocolTiming } from '../../core/config.js';
import { GroupCore } from '../../core/group-core.js';
import type { PaxosMessage } from '../../core/messages.js';
import type { HaltReason } from '../../core/ready.js';
import { NOT_CHOSEN, PaxosError } from '../../errors.js';
import { GroupDriver, type DriverFaults } from '../../runtime/group-driver.js';
import {
  SILENT_LOGGER, type ExecuteInput, type LogStore, type StateMachine, type Transport,
} from '../../runtime/interfaces.js';
import type { ProposeSuccess } from '../../runtime/proposal-queue.js';
import { restoreGroup } from '../../runtime/restore.js';
import { StateMachineRegistry } from '../../runtime/state-machine-registry.js';
import { frameValue } from '../../runtime/value-frame.js';
import { MasterManager } from '../../runtime/master/master-manager.js';
import { MasterStateMachine } from '../../runtime/master/master-state-machine.js';
import type { MasterLeaseChecker } from './master-lease-checker.js';
import { encodeMembership } from '../../runtime/membership/membership-codec.js';
import { MembershipStateMachine } from '../../runtime/membership/membership-state-machine.js';
import { resumeAfterMembershipChange } from '../../runtime/membership/resume-after-change.js';
import { SYSTEM_STATE_MACHINE_ID } from '../../runtime/value-frame.js';
import type { AgreementChecker } from './checkers.js';
import { SeededRandom } from '../../util/random.js';
import { fullCrc32 } from '../crc32.js';
import type { ExecutionChecker } from './checkers.js';
import type { SimScheduler } from './scheduler.js';
import type { SimDisk } from './sim-disk.js';
import type { SimFileStorage } from './sim-file-system.js';
import { FileLogStore } from '../../io/file-log-store.js';
import { LazyFileSystem } from '../lazy-file-system.js';
import type { SimNetwork } from './sim-network.js';

export type NodeState = 'down' | 'starting' | 'up';

export interface SimClockSettings {
  /** Local clock = offsetMs + true time × rate. */
  readonly offsetMs: number;
  readonly rate: number;
}

export interface SimNodeOptions {
  readonly id: number;
  readonly members: readonly number[];
  /** Followers this node pushes executed values to. */
  readonly followers: readonly number[];
  /** This node is a follower: it learns, never votes and is never proposed on. */
  readonly isFollower: boolean;
  readonly groupCount: number;
  readonly scheduler: SimScheduler;
  readonly network: SimNetwork;
  readonly disk: SimDisk;
  /**
   * When set, the node runs the real FileLogStore over this simulated file system (under a
   * LazyFileSystem that loses unsynced writes at a crash) instead of the SimDisk store.
   */
  readonly files?: SimFileStorage;
  readonly clock: SimClockSettings;
  readonly random: SeededRandom;
  readonly executions: ExecutionChecker;
  readonly timing?: Partial<ProtocolTiming>;
  /** Chance that one execution attempt fails (it must be retried, never skipped). */
  readonly executeFailureRate: number;
  /** How many waiting proposals one instance may carry. */
  readonly maxBatchCount: number;
  /** Master election on every group (null: off); `ignoreDrift` is the master-ignores-drift canary. */
  readonly master: { readonly leaseMs: number; readonly driftBound: number; readonly ignoreDrift: boolean } | null;
  readonly leases: MasterLeaseChecker;
  /** Sees every membership change a node applies. */
  readonly agreement: AgreementChecker;
  readonly coreFaults?: CoreFaults;
  readonly driverFaults?: DriverFaults;
  readonly trace: (line: string) => void;
  readonly onFatal: (error: unknown) => void;
  readonly onHalt: (node: number, groupIndex: number, reason: HaltReason) => void;
}

/** The two user state machines every simulated group runs. */
export const SIM_STATE_MACHINE_IDS = [1, 2] as const;

export class SimNode {
  readonly id: number;
  state: NodeState = 'down';
  paused = false;
  life = 0;
  private drivers: GroupDriver[] = [];
  private masters: MasterStateMachine[] = [];
  private memberships: MembershipStateMachine[] = [];
  private managers: MasterManager[] = [];
  private readonly options: SimNodeOptions;
  private heldWhilePaused: (() => void)[] = [];
  private armedWakeAt: number | null = null;
  private readonly transport: Transport;

  constructor(options: SimNodeOptions) {
    this.options = options;
    this.id = options.id;
    this.transport = options.network.transportFor(this.id, () => this.state === 'up' && !this.paused);
    this.transport.onMessage((groupIndex, message) => this.receive(groupIndex, message));
  }

  get isFollower(): boolean {
    return this.options.isFollower;
  }

  get isUp(): boolean {
    return this.state === 'up';
  }

  localNow(): number {
    const { offsetMs, rate } = this.options.clock;
    return offsetMs + this.options.scheduler.now * rate;
  }

  /** Crash this node halfway through its next disk write. */
  crashDuringNextWrite(onCrash: () => void): void {
    const target = (this.options.files ?? this.options.disk).device;
    target.onNextWrite = (completeAt) => {
      const scheduler = this.options.scheduler;
      const life = this.life;
      scheduler.at(scheduler.now + (completeAt - scheduler.now) / 2, () => {
        if (life === this.life && this.state !== 'down') onCrash();
      });
    };
  }

  nowInstanceId(groupIndex: number): number | undefined {
    return this.drivers[groupIndex]?.nowInstanceId;
  }

  isExecuting(groupIndex: number): boolean {
    return this.drivers[groupIndex]?.status().executing === true;
  }

  disableDiskFaults(): void {
    this.options.disk.faults = { ...this.options.disk.faults, writeErrorRate: 0 };
  }

  isHalted(groupIndex: number): boolean {
    return this.drivers[groupIndex]?.halted != null;
  }

  status(groupIndex: number): ReturnType<GroupDriver['status']> | undefined {
    return this.drivers[groupIndex]?.status();
  }

  async start(): Promise<void> {
    if (this.state !== 'down') return;
    const life = ++this.life;
    this.state = 'starting';
    this.options.trace(`n${this.id} start life ${life}`);
    const gate = this.gateFor(life);
    const files = this.options.files;
    let store: LogStore;
    try {
      store = files === undefined ? this.options.disk.open(gate) : await FileLogStore.open({
        directory: '/node', segmentBytes: 64 * 1024, fileSystem: new LazyFileSystem({ inner: files.open(gate) }),
      });
    } catch (error) {
      if (life === this.life) this.options.onFatal(error);
      return;
    }
    if (life !== this.life) return;
    const drivers: GroupDriver[] = [];
    const masters: MasterStateMachine[] = [];
    const memberships: MembershipStateMachine[] = [];
    const managers: MasterManager[] = [];
    try {
      for (let groupIndex = 0; groupIndex < this.options.groupCount; groupIndex++) {
        this.options.executions.onLifeStart(this.id, groupIndex);
        const registry = new StateMachineRegistry(groupIndex, this.stateMachines(life, groupIndex));
        const master = await MasterStateMachine.load({
          groupIndex, nodeId: this.id, store, clock: { now: () => this.localNow() },
          onBidApplied: () => { if (life === this.life) this.reportLease(groupIndex, master); },
        });
        if (life !== this.life) return;
        registry.addSystem(master);
        masters.push(master);
        const built: { core?: GroupCore } = {};
        const membership = await MembershipStateMachine.load({
          groupIndex, store, configured: this.options.members.map((id) => ({ id, host: `n${id}`, port: 1 })),
          onApplied: (next) => {
            const ids = next.members.map((member) => member.id);
            built.core?.setMembers(ids);
            if (life !== this.life) return;
            this.options.agreement.noteMembership(groupIndex, next.version, ids);
            this.options.trace(`n${this.id} g${groupIndex} members {${ids.join(',')}} from version ${next.version}`);
          },
        });
        if (life !== this.life) return;
        registry.addSystem(membership);
        memberships.push(membership);
        const restored = await resumeAfterMembershipChange(store, groupIndex,
          await restoreGroup(store, groupIndex, registry), membership.membership.version);
        if (life !== this.life) return;
        const core = new GroupCore({
          groupIndex, nodeId: this.id, members: membership.membership.members.map((member) => member.id),
          random: this.options.random.fork(), followers: this.options.followers,
          checksum: fullCrc32, timing: { ...DEFAULT_TIMING, ...this.options.timing }, faults: this.options.coreFaults,
        }, restored, this.localNow());
        built.core = core;
        drivers.push(new GroupDriver({
          groupIndex, core, store, registry, clock: { now: () => this.localNow() },
          send: (group, to, message) => {
            if (life === this.life) this.transport.send(group, to, message);
          },
          logger: SILENT_LOGGER, syncWrites: true, queueLimits: { maxCount: 64, maxBytes: 1 << 20 },
          batchLimits: { maxCount: this.options.maxBatchCount, maxBytes: 1 << 20 },
          onTimersChanged: () => { if (life === this.life) this.armWake(); },
          onFatal: this.options.onFatal,
          onHalt: (reason) => this.options.onHalt(this.id, groupIndex, reason),
          faults: this.options.driverFaults,
        }));
        const settings = this.options.master;
        const driver = drivers[groupIndex] as GroupDriver;
        if (settings !== null && !this.options.isFollower) {
          managers.push(new MasterManager({
            nodeId: this.id, machine: master, clock: { now: () => this.localNow() },
            // Its own stream, so that turning election on leaves the node's other draws alone.
            random: new SeededRandom(this.options.random.seed * 31 + life * 1_000 + groupIndex),
            settings, ignoreDrift: settings.ignoreDrift,
            propose: (value, context, timeoutMs) => driver.propose(value, { timeoutMs, context }),
            onTimersChanged: () => { if (life === this.life) this.armWake(); },
          }));
        }
      }
    } catch (error) {
      if (life === this.life) this.options.onFatal(error);
      return;
    }
    if (life !== this.life) return;
    this.drivers = drivers;
    this.masters = masters;
    this.memberships = memberships;
    this.managers = managers;
    this.state = 'up';
    this.options.trace(`n${this.id} up at ${drivers.map((driver) => driver.nowInstanceId).join(',')}`);
    this.armWake();
  }

  crash(): { lostWrites: number; torn: boolean } {
    const drivers = this.drivers;
    // Everything the old life asked for is dropped by its gate from now on (state 'down', and the
    // next start begins a new life).
    this.state = 'down';
    this.paused = false;
    this.heldWhilePaused = [];
    this.armedWakeAt = null;
    this.drivers = [];
    for (const driver of drivers) driver.stop();
    for (const manager of this.managers) manager.stop();
    this.masters = [];
    this.memberships = [];
    this.managers = [];
    this.options.leases.releaseAll(this.id, this.options.scheduler.now);
    // Under the file store, what the crash loses is the lazy file system's memory, gone with the process.
    const outcome = this.options.files === undefined ? this.options.disk.crash() : { lostWrites: 0, torn: false };
    this.options.trace(`n${this.id} crash (lost ${outcome.lostWrites} writes not yet durable${outcome.torn ? ', torn tail' : ''})`);
    return outcome;
  }

  pause(): void {
    if (this.state === 'down' || this.paused) return;
    this.paused = true;
    this.options.trace(`n${this.id} pause`);
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.options.trace(`n${this.id} resume`);
    const held = this.heldWhilePaused;
    this.heldWhilePaused = [];
    for (const run of held) run();
    this.tickAll();
  }

  propose(groupIndex: number, stateMachineId: number, payload: Uint8Array, timeoutMs: number): Promise<ProposeSuccess> {
    const driver = this.drivers[groupIndex];
    if (!this.isUp || driver === undefined || this.paused) {
      return Promise.reject(new PaxosError('STOPPED', `node ${this.id} is not running`, NOT_CHOSEN));
    }
    return driver.propose(frameValue(stateMachineId, payload), { timeoutMs });
  }

  private receive(groupIndex: number, message: PaxosMessage): void {
    const life = this.life;
    this.gateFor(life)(() => this.drivers[groupIndex]?.step(message));
  }

  /** Runs `run` for process life `life` only: never after a crash, and not while paused. */
  private gateFor(life: number): (run: () => void) => void {
    return (run) => {
      if (life !== this.life || this.state === 'down') return;
      if (this.paused) this.heldWhilePaused.push(run);
      else run();
    };
  }

  /** The voting members of a group as this node has executed them (undefined while down). */
  members(groupIndex: number): readonly number[] | undefined {
    return this.memberships[groupIndex]?.membership.members.map((member) => member.id);
  }

  membershipVersion(groupIndex: number): number {
    return this.memberships[groupIndex]?.membership.version ?? -2;
  }

  /** Propose a new membership for a group, made against the version this node has. */
  proposeMembership(groupIndex: number, members: readonly number[], nonce: number): Promise<unknown> {
    const driver = this.drivers[groupIndex];
    const current = this.memberships[groupIndex]?.membership;
    if (!this.isUp || this.paused || driver === undefined || current === undefined) return Promise.resolve();
    const change = encodeMembership({
      gid: current.gid === 0 ? 1 : current.gid, version: current.version, nonce,
      members: members.map((id) => ({ id, host: `n${id}`, port: 1 })),
    });
    this.options.trace(`n${this.id} g${groupIndex} proposes members {${members.join(',')}} against version ` +
      `${current.version}`);
    return driver.propose(frameValue(SYSTEM_STATE_MACHINE_ID, change), { timeoutMs: 5_000 }).catch(() => undefined);
  }

  /** Whether this node believes it holds some group's master lease. */
  get holdsMasterLease(): boolean {
    return this.masters.some((master) => master.isMaster());
  }

  /** Drop the lease of every group this node is master of; returns how many it dropped. */
  dropMaster(): number {
    let dropped = 0;
    this.masters.forEach((master, groupIndex) => {
      if (!master.isMaster()) return;
      this.managers[groupIndex]?.drop();
      this.options.leases.release(groupIndex, this.id, this.options.scheduler.now);
      this.options.trace(`n${this.id} g${groupIndex} drops the master lease`);
      dropped++;
    });
    return dropped;
  }

  /** A winning bid executed here: if it gave this node the lease, tell the checker until when (true time). */
  private reportLease(groupIndex: number, master: MasterStateMachine, fromBid = true): void {
    const info = master.master();
    if (info === undefined || info.nodeId !== this.id) return;
    const { offsetMs, rate } = this.options.clock;
    const end = (info.leaseExpiresAt - offsetMs) / rate;
    if (fromBid) this.options.trace(`n${this.id} g${groupIndex} holds the master lease (version ${info.version})`);
    this.options.leases.hold(groupIndex, this.id, this.options.scheduler.now, end);
  }

  private armWake(): void {
    let earliest: number | undefined;
    for (const driver of [...this.drivers, ...this.managers]) {
      const at = driver.nextTimerAt();
      if (at !== undefined && (earliest === undefined || at < earliest)) earliest = at;
    }
    if (earliest === undefined) return;
    const { offsetMs, rate } = this.options.clock;
    const scheduler = this.options.scheduler;
    const trueTime = Math.max((earliest - offsetMs) / rate, scheduler.now) + 1e-6;
    if (this.armedWakeAt !== null && this.armedWakeAt <= trueTime) return;
    this.armedWakeAt = trueTime;
    const life = this.life;
    scheduler.at(trueTime, () => {
      if (this.armedWakeAt !== trueTime) return;
      this.armedWakeAt = null;
      this.gateFor(life)(() => this.tickAll());
    });
  }

  private tickAll(): void {
    for (const driver of this.drivers) driver.tick();
    for (const manager of this.managers) manager.tick();
    // Also check the belief whenever the node wakes, not only when a bid executes: a belief that
    // came back some other way would otherwise go unseen.
    this.masters.forEach((master, groupIndex) => this.reportLease(groupIndex, master, false));
    this.armWake();
  }

  private stateMachines(life: number, groupIndex: number): StateMachine[] {
    const { executions, executeFailureRate, random } = this.options;
    return SIM_STATE_MACHINE_IDS.map((id) => ({
      id,
      execute: (input: ExecuteInput): string => {
        // Start-up replay is not failed on purpose: a real process would exit and be restarted.
        if (this.state === 'up' && executeFailureRate > 0 && random.chance(executeFailureRate)) {
          throw new Error(`simulated failure of state machine ${id}`);
        }
        executions.onExecute({ node: this.id, life, groupIndex }, input.instanceId, frameValue(id, input.value));
        // The payload comes back, so the workload can check each caller got its own entry's result.
        return Buffer.from(input.value).toString('latin1');
      },
    }));
  }
}
