/**
 * Real node processes on loopback for the real-process tests and the propose benchmark: each node
 * is `multipaxos node` (dist/src/cli/main.js) forked with an IPC control channel
 * (src/cli/node-control.ts), its own data directory and a free port. Every request has a deadline,
 * and `destroy` kills whatever is left, so a failing test never leaves processes behind.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from './free-port.js';
import type { GroupSummary } from '../cli/node-control.js';

export type { GroupSummary };

const CLI = fileURLToPath(new URL('../cli/main.js', import.meta.url));

export interface ClusterOptions {
  readonly nodes: number;
  readonly groups: number;
  /** Extra `multipaxos node` flags for every node. */
  readonly extraFlags?: readonly string[];
  readonly requestTimeoutMs?: number;
  /** Node flags for every node process (e.g. --cpu-prof for the benchmarks). */
  readonly execArgv?: readonly string[];
}

export interface ControlReply {
  readonly id: number;
  readonly ok: boolean;
  readonly code?: string;
  readonly mayBeChosen?: boolean;
  readonly message?: string;
  readonly [field: string]: unknown;
}


interface RunningNode {
  readonly child: ChildProcess;
  readonly pending: Map<number, { resolve: (reply: ControlReply) => void; reject: (error: Error) => void }>;
  readonly exited: Promise<number | null>;
  output: string;
}

export class NodeCluster {
  readonly options: ClusterOptions;
  readonly dataRoot: string;
  readonly ports: readonly number[];
  private readonly running = new Map<number, RunningNode>();
  private nextRequestId = 1;

  private constructor(options: ClusterOptions, dataRoot: string, ports: number[]) {
    this.options = options;
    this.dataRoot = dataRoot;
    this.ports = ports;
  }

  static async create(options: ClusterOptions): Promise<NodeCluster> {
    const dataRoot = await mkdtemp(join(tmpdir(), 'multipaxos-cluster-'));
    const ports: number[] = [];
    for (let i = 0; i < options.nodes; i++) ports.push(await freePort());
    return new NodeCluster(options, dataRoot, ports);
  }

  get ids(): number[] {
    return this.ports.map((_, index) => index + 1);
  }

  /** The process id of node `id`, while it runs (benchmarks read its CPU time from /proc). */
  pid(id: number): number | undefined {
    return this.running.get(id)?.child.pid;
  }

  isRunning(id: number): boolean {
    return this.running.has(id);
  }

  /**
   * Start node `id` (1-based) and wait until it is up. `members` are the node ids it is configured
   * with (default: every node of the cluster).
   */
  async start(id: number, members: readonly number[] = this.ids): Promise<void> {
    if (this.running.has(id)) throw new Error(`node ${id} is already running`);
    const peers = members.map((member) => `${member}=127.0.0.1:${this.ports[member - 1]}`).join(',');
    const args = ['node', '--id', String(id), '--listen', `127.0.0.1:${this.ports[id - 1]}`, '--peers', peers,
      '--data', join(this.dataRoot, `node-${id}`), '--groups', String(this.options.groups), '--quiet',
      ...(this.options.extraFlags ?? [])];
    const child = fork(CLI, args, {
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'], execArgv: [...process.execArgv, ...(this.options.execArgv ?? [])],
    });
    // Sending to a node that was just killed fails with EPIPE; the request's own callback reports it.
    child.on('error', () => {});
    const node: RunningNode = {
      child, pending: new Map(), output: '',
      exited: new Promise((resolve) => child.once('exit', (code) => resolve(code))),
    };
    const keepOutput = (chunk: Buffer): void => {
      node.output = (node.output + chunk.toString('utf8')).slice(-20_000);
    };
    child.stdout?.on('data', keepOutput);
    child.stderr?.on('data', keepOutput);
    const ready = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`node ${id} did not start: ${node.output}`)), 20_000);
      child.on('message', (message: ControlReply & { type?: string }) => {
        if (message.type === 'ready') {
          clearTimeout(timer);
          resolve();
          return;
        }
        const waiter = node.pending.get(message.id);
        node.pending.delete(message.id);
        waiter?.resolve(message);
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`node ${id} exited with ${code}: ${node.output}`));
        for (const waiter of node.pending.values()) waiter.reject(new Error(`node ${id} exited`));
        node.pending.clear();
      });
    });
    this.running.set(id, node);
    child.once('exit', () => {
      if (this.running.get(id) === node) this.running.delete(id);
    });
    await ready;
  }

  async startAll(): Promise<void> {
    await Promise.all(this.ids.map((id) => this.start(id)));
  }

  /** kill -9: no chance to flush or close anything. */
  async kill(id: number): Promise<void> {
    const node = this.running.get(id);
    if (node === undefined) return;
    node.child.kill('SIGKILL');
    await node.exited;
  }

  /** SIGSTOP: the process freezes, sockets and all, as a long GC pause or a stalled VM would. */
  pause(id: number): void {
    this.running.get(id)?.child.kill('SIGSTOP');
  }

  /** SIGCONT after pause. */
  resume(id: number): void {
    this.running.get(id)?.child.kill('SIGCONT');
  }

  /** Per group: the master node `id` sees (0: none) and whether it believes it is the master. */
  async masters(id: number, timeoutMs?: number): Promise<{ group: number; masterNodeId: number; isMaster: boolean }[]> {
    const reply = await this.request(id, { type: 'master' }, timeoutMs);
    return reply.groups as { group: number; masterNodeId: number; isMaster: boolean }[];
  }

  /**
   * Graceful stop through the control channel; resolves with the exit code. A node that has not
   * exited 20 s later is killed, and the stop fails.
   */
  async stop(id: number): Promise<number | null> {
    const node = this.running.get(id);
    if (node === undefined) return null;
    const reply = await this.request(id, { type: 'stop' }).catch((error: Error) => error);
    const timeout = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), 20_000).unref());
    const code = await Promise.race([node.exited, timeout]);
    if (code === 'timeout') {
      await this.kill(id);
      throw new Error(`node ${id} did not exit within 20 s of a graceful stop: ${node.output}`);
    }
    if (reply instanceof Error || !reply.ok) {
      throw new Error(`node ${id} did not acknowledge its stop: ${reply instanceof Error ? reply.message : reply.code}`);
    }
    return code;
  }

  request(id: number, body: Record<string, unknown>, timeoutMs = this.options.requestTimeoutMs ?? 30_000,
  ): Promise<ControlReply> {
    const node = this.running.get(id);
    if (node === undefined) return Promise.reject(new Error(`node ${id} is not running`));
    const requestId = this.nextRequestId++;
    return new Promise<ControlReply>((resolve, reject) => {
      const timer = setTimeout(() => {
        node.pending.delete(requestId);
        reject(new Error(`node ${id}: no reply to ${JSON.stringify(body)} within ${timeoutMs} ms`));
      }, timeoutMs);
      node.pending.set(requestId, {
        resolve: (reply) => { clearTimeout(timer); resolve(reply); },
        reject: (error) => { clearTimeout(timer); reject(error); },
      });
      node.child.send({ id: requestId, ...body }, (error) => {
        if (error === null) return;
        node.pending.delete(requestId);
        clearTimeout(timer);
        reject(new Error(`node ${id}: cannot send ${JSON.stringify(body)}: ${error.message}`));
      });
    });
  }

  propose(id: number, group: number, value: string, timeoutMs = 10_000): Promise<ControlReply> {
    return this.request(id, { type: 'propose', group, value, timeoutMs }, timeoutMs + 5_000);
  }

  async summary(id: number): Promise<GroupSummary[]> {
    const reply = await this.request(id, { type: 'summary' });
    return reply.groups as GroupSummary[];
  }

  address(id: number): { id: number; host: string; port: number } {
    return { id, host: '127.0.0.1', port: this.ports[id - 1] as number };
  }

  async values(id: number, group: number, instanceId: number): Promise<string[]> {
    const reply = await this.request(id, { type: 'values', group, instanceId });
    if (!reply.ok) throw new Error(`node ${id} values ${group}/${instanceId}: ${reply.code} ${reply.message}`);
    return reply.values as string[];
  }

  output(id: number): string {
    return this.running.get(id)?.output ?? '';
  }

  /** Kill every node still running and delete the data. */
  async destroy(): Promise<void> {
    await Promise.all([...this.running.keys()].map((id) => this.kill(id)));
    await rm(this.dataRoot, { recursive: true, force: true, maxRetries: 5 });
  }
}
