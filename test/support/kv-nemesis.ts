// Faults for a `multipaxos cluster up` cluster, aimed at the master of a group: kill -9 and restart
// it with the command line cluster up gave it, or freeze it with SIGSTOP and thaw it with SIGCONT.
// The nodes are found in /proc (test/support/cluster-up.ts), so a node this nemesis restarted, which
// is its own child rather than cluster up's, can be hit again later.
import type { TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { KvClient } from '../../src/kv/client.js';
import {
  CLI, clusterScope, kvServeProcess, spawnCli, startClusterUp, type ClusterScope, type Spawned,
} from './cluster-up.js';

export interface Fault {
  readonly kind: 'kill' | 'pause';
  readonly group: number;
  readonly nodeId: number;
  /** performance.now() when the fault began (the signal was sent) and ended (restarted node up, or SIGCONT). */
  readonly start: number;
  readonly end: number;
}

interface GroupStatus {
  readonly group: number;
  readonly serving: boolean;
}

/** The node serving `group` as master (lease held, fence current), if one of `endpoints` says so. */
export async function servingMaster(
  client: KvClient, endpoints: readonly string[], group: number,
): Promise<number | undefined> {
  const answers = await Promise.all(endpoints.map(async (endpoint) => {
    try {
      return await client.status(endpoint, { timeoutMs: 500 });
    } catch {
      return undefined;
    }
  }));
  for (const status of answers) {
    const groups = status?.groups as GroupStatus[] | undefined;
    if (groups?.find((entry) => entry.group === group)?.serving === true) return status?.nodeId as number;
  }
  return undefined;
}

export class MasterNemesis {
  readonly faults: Fault[] = [];
  /** Nodes this nemesis started again; the test stops them (cluster up does not know them). */
  readonly restarted: Spawned[] = [];
  private readonly dir: string;
  private readonly endpoints: readonly string[];
  private readonly probe: KvClient;
  private readonly track: Spawned[];
  /** Frozen right now: thawed by `thawAll` whatever happens, or cluster up could not stop them. */
  private readonly frozen = new Set<number>();

  constructor(options: { dir: string; endpoints: readonly string[]; probe: KvClient; track: Spawned[] }) {
    this.dir = options.dir;
    this.endpoints = options.endpoints;
    this.probe = options.probe;
    this.track = options.track;
  }

  /** The master serving `group`, waiting up to `timeoutMs` for one (an election may be running). */
  async masterOf(group: number, timeoutMs = 5_000): Promise<number | undefined> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const master = await servingMaster(this.probe, this.endpoints, group);
      if (master !== undefined || performance.now() > deadline) return master;
      await sleep(50);
    }
  }

  /** kill -9 the master of `group`, then after `downMs` start it again and wait until it runs. */
  async killAndRestart(group: number, downMs: number): Promise<Fault> {
    const { nodeId, pid, argv } = await this.victim(group);
    // Its exact command line, so it comes back as the same node with the same data.
    if (argv[1] !== CLI) throw new Error(`node ${nodeId} runs another CLI: ${argv.join(' ')}`);
    process.kill(pid, 'SIGKILL');
    const start = performance.now();
    await sleep(downMs);
    // With an IPC channel, as cluster up starts its nodes: it stops by itself should the test die.
    const restarted = spawnCli(argv.slice(2), { ipc: true });
    this.track.push(restarted);
    this.restarted.push(restarted);
    await restarted.waitFor(/"event":"started"/, 15_000);
    const fault: Fault = { kind: 'kill', group, nodeId, start, end: performance.now() };
    this.faults.push(fault);
    return fault;
  }

  /**
   * SIGSTOP the master of `group` for `pauseMs`, then SIGCONT it. `duringPause` runs while it is
   * frozen, so a test can send it requests that it will only see when it wakes up, lease long gone.
   */
  async pause(group: number, pauseMs: number, duringPause?: (nodeId: number) => Promise<void>): Promise<Fault> {
    const { nodeId, pid } = await this.victim(group);
    process.kill(pid, 'SIGSTOP');
    this.frozen.add(pid);
    const start = performance.now();
    const side = duringPause?.(nodeId);
    await sleep(pauseMs);
    this.thaw(pid);
    const fault: Fault = { kind: 'pause', group, nodeId, start, end: performance.now() };
    this.faults.push(fault);
    await side;
    return fault;
  }

  /** SIGCONT whatever is still frozen: a test's cleanup calls it before stopping anything. */
  thawAll(): void {
    for (const pid of [...this.frozen]) this.thaw(pid);
  }

  private thaw(pid: number): void {
    this.frozen.delete(pid);
    try {
      process.kill(pid, 'SIGCONT');
    } catch {
      // It is gone.
    }
  }

  private async victim(group: number): Promise<{ nodeId: number; pid: number; argv: readonly string[] }> {
    const nodeId = await this.masterOf(group);
    if (nodeId === undefined) throw new Error(`no node serves group ${group}`);
    const found = await kvServeProcess(this.dir, nodeId);
    if (found === undefined) throw new Error(`the process of node ${nodeId} is not found`);
    return { nodeId, pid: found.pid, argv: found.argv };
  }
}

/** A `cluster up` cluster with a KvClient, a probe client and a MasterNemesis, torn down with the test. */
export interface NemesisCluster {
  readonly dir: string;
  readonly track: Spawned[];
  /** Run when the test ends, last added first (the scope's own). */
  readonly undo: ClusterScope['undo'];
  readonly endpoints: readonly string[];
  readonly client: KvClient;
  readonly probe: KvClient;
  readonly nemesis: MasterNemesis;
}

/**
 * Start `cluster up` with `groups` groups and a `leaseMs` lease for test `t`: a client with calls of
 * `clientTimeoutMs`, a 1 s probe for the nemesis, and cleanup that thaws any frozen node first (a
 * frozen node ignores SIGINT and SIGTERM) and closes the clients.
 */
export async function startNemesisCluster(
  t: TestContext, name: string, options: { groups: number; leaseMs: number; clientTimeoutMs: number },
): Promise<NemesisCluster> {
  const { dir, track, undo } = await clusterScope(t, name);
  const cluster = await startClusterUp({
    dir, json: true, flags: ['--groups', String(options.groups), '--master-lease', String(options.leaseMs)], track,
  });
  const { endpoints } = cluster;
  const client = new KvClient({ endpoints, timeoutMs: options.clientTimeoutMs });
  const probe = new KvClient({ endpoints, timeoutMs: 1_000 });
  const nemesis = new MasterNemesis({ dir, endpoints, probe, track });
  undo.push(() => {
    client.close();
    probe.close();
  });
  undo.push(() => nemesis.thawAll());
  return { dir, track, undo, endpoints, client, probe, nemesis };
}
