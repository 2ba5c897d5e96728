// The KV nodes of a nemesis run: `multipaxos kv serve` processes inside the run's namespace, node i
// at 127.0.0.(10+i) for both Paxos (port 7000) and HTTP (port 8000): the namespace is private, so
// fixed ports collide with nothing. Each binds its outgoing connections to its own address
// (--local-address), which is what lets the firewall cut node-to-node links. A node may run under
// libfaketime with a clock rate of its own. Nodes are started with an IPC channel: should the driver
// die, they stop by themselves.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
export const FAKETIME_LIBRARY = '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1';
const PAXOS_PORT = 7000;
const HTTP_PORT = 8000;

export function nodeAddress(nodeId: number): string {
  return `127.0.0.${10 + nodeId}`;
}

export function paxosAddress(nodeId: number): { host: string; port: number } {
  return { host: nodeAddress(nodeId), port: PAXOS_PORT };
}

export function endpointOf(nodeId: number): string {
  return `http://${nodeAddress(nodeId)}:${HTTP_PORT}`;
}

export function faketimeAvailable(): boolean {
  return existsSync(FAKETIME_LIBRARY);
}

export interface NodeSettings {
  readonly ids: readonly number[];
  readonly groups: number;
  readonly leaseMs: number;
  readonly dataRoot: string;
  /** Per node, a clock rate for libfaketime (1: the real clock). */
  readonly clockRate?: (nodeId: number) => number;
  /** Per node, its data directory (default dataRoot/node-ID). */
  readonly dataDir?: (nodeId: number) => string;
}

interface Running {
  readonly child: ChildProcess;
  readonly exited: Promise<void>;
  output: string;
  done: boolean;
}

export class KvNodes {
  readonly settings: NodeSettings;
  private readonly running = new Map<number, Running>();
  private readonly frozen = new Set<number>();
  /** Each node's configured members, fixed at its first start (a node refuses to start with others). */
  private readonly configured = new Map<number, readonly number[]>();

  constructor(settings: NodeSettings) {
    this.settings = settings;
  }

  get endpoints(): string[] {
    return this.settings.ids.map(endpointOf);
  }

  endpoint(nodeId: number): string {
    return endpointOf(nodeId);
  }

  dataDir(nodeId: number): string {
    return this.settings.dataDir?.(nodeId) ?? join(this.settings.dataRoot, `node-${nodeId}`);
  }

  isRunning(nodeId: number): boolean {
    const node = this.running.get(nodeId);
    return node !== undefined && !node.done;
  }

  /**
   * Start node `nodeId`; at its first start, configured with `members` (default: the initial nodes).
   * A node joining later is configured with the members it will join, itself included.
   */
  async start(nodeId: number, members: readonly number[] = this.settings.ids): Promise<void> {
    if (this.isRunning(nodeId)) throw new Error(`node ${nodeId} already runs`);
    const { groups, leaseMs } = this.settings;
    const ids = this.configured.get(nodeId) ?? members;
    this.configured.set(nodeId, ids);
    const peers = ids.map((id) => `${id}=${nodeAddress(id)}:${PAXOS_PORT}`).join(',');
    const args = [CLI, 'kv', 'serve', '--id', String(nodeId), '--listen', `${nodeAddress(nodeId)}:${PAXOS_PORT}`,
      '--http', `${nodeAddress(nodeId)}:${HTTP_PORT}`, '--local-address', nodeAddress(nodeId), '--peers', peers,
      '--data', this.dataDir(nodeId), '--groups', String(groups), '--master-lease', String(leaseMs),
      '--segment-mb', '1', '--json'];
    const rate = this.settings.clockRate?.(nodeId) ?? 1;
    const env = rate === 1 ? process.env
      : { ...process.env, LD_PRELOAD: FAKETIME_LIBRARY, FAKETIME: `+0 x${rate}` };
    const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
    const node: Running = {
      child, output: '', done: false,
      exited: new Promise((resolve) => child.once('exit', () => {
        node.done = true;
        resolve();
      })),
    };
    const keep = (chunk: Buffer): void => {
      node.output = (node.output + chunk.toString('utf8')).slice(-20_000);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    child.on('error', () => {});
    this.running.set(nodeId, node);
    const deadline = performance.now() + 20_000;
    while (!/"event":"started"/.test(node.output)) {
      if (node.done) throw new Error(`node ${nodeId} exited at start:\n${node.output}`);
      if (performance.now() > deadline) throw new Error(`node ${nodeId} did not start within 20 s:\n${node.output}`);
      await sleep(25);
    }
  }

  async startAll(): Promise<void> {
    await Promise.all(this.settings.ids.map((id) => this.start(id)));
  }

  /** kill -9 and delete its data: a node lost for good. */
  async destroy(nodeId: number): Promise<void> {
    await this.kill(nodeId);
    rmSync(this.dataDir(nodeId), { recursive: true, force: true });
  }

  /** kill -9. */
  async kill(nodeId: number): Promise<void> {
    const node = this.running.get(nodeId);
    if (node === undefined || node.done) return;
    this.frozen.delete(nodeId);
    node.child.kill('SIGKILL');
    await node.exited;
  }

  pause(nodeId: number): void {
    if (!this.isRunning(nodeId)) return;
    this.frozen.add(nodeId);
    this.running.get(nodeId)?.child.kill('SIGSTOP');
  }

  resume(nodeId: number): void {
    if (!this.frozen.delete(nodeId)) return;
    this.running.get(nodeId)?.child.kill('SIGCONT');
  }

  /** Every node ever started. */
  started(): number[] {
    return [...this.running.keys()];
  }

  output(nodeId: number): string {
    return this.running.get(nodeId)?.output ?? '';
  }

  /** Stop every node: thaw the frozen, SIGTERM, and kill -9 whatever has not exited 10 s later. */
  async stopAll(): Promise<void> {
    for (const id of [...this.frozen]) this.resume(id);
    const live = [...this.running.values()].filter((node) => !node.done);
    for (const node of live) node.child.kill('SIGTERM');
    await Promise.race([Promise.all(live.map((node) => node.exited)), sleep(10_000)]);
    for (const node of live) if (!node.done) node.child.kill('SIGKILL');
    await Promise.all(live.map((node) => node.exited));
  }
}
