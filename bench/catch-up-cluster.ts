/**
 * Three node processes on loopback for the catch-up benchmark (catch-up-child.ts each, forked with
 * an IPC channel, its own data directory and port). `destroy` kills whatever is left.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CaughtUp, ChildSettings } from './catch-up-child.js';
import { freePort } from './local-kv-node.js';

const CHILD = fileURLToPath(new URL('./catch-up-child.js', import.meta.url));

export type Reply = { readonly id: number; readonly ok: boolean; readonly [field: string]: unknown };

interface Running {
  readonly child: ChildProcess;
  readonly pending: Map<number, (reply: Reply) => void>;
  readonly exited: Promise<void>;
  readonly caughtUp: Promise<CaughtUp>;
  output: string;
}

/** What every node of a cluster shares. */
type SharedSettings = Omit<ChildSettings, 'nodeId' | 'dataDir' | 'watchTarget' | 'checkpointThrough'>;

export class ChildCluster {
  private readonly running = new Map<number, Running>();
  private nextId = 1;

  private constructor(
    private readonly base: SharedSettings, readonly root: string,
  ) {}

  static async create(base: Omit<SharedSettings, 'ports'>): Promise<ChildCluster> {
    const ports = [await freePort(), await freePort(), await freePort()];
    return new ChildCluster({ ...base, ports }, await mkdtemp(join(tmpdir(), 'multipaxos-catch-up-')));
  }

  /**
   * Start node `id` (1-based); with `watchTarget`, `caughtUp(id)` resolves when it gets there.
   * `checkpointThrough`: see ChildSettings.
   */
  async start(id: number, watchTarget?: number, checkpointThrough?: number): Promise<void> {
    const settings: ChildSettings = {
      ...this.base, nodeId: id, dataDir: this.dataDir(id), watchTarget, checkpointThrough,
    };
    const execArgv = this.base.cpuProfileDir === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', this.base.cpuProfileDir];
    const child = fork(CHILD, [JSON.stringify(settings)], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'], execArgv });
    child.on('error', () => {});
    let resolveCaughtUp: (report: CaughtUp) => void = () => {};
    const running: Running = {
      child, pending: new Map(), output: '',
      exited: new Promise((resolve) => child.once('exit', () => resolve())),
      caughtUp: new Promise((resolve) => { resolveCaughtUp = resolve; }),
    };
    const keep = (chunk: Buffer): void => { running.output = (running.output + chunk.toString()).slice(-10_000); };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    this.running.set(id, running);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`node ${id} did not start: ${running.output}`)), 60_000);
      child.on('message', (message: Reply & { type?: string }) => {
        if (message.type === 'ready') {
          clearTimeout(timer);
          resolve();
        } else if (message.type === 'caughtUp') {
          resolveCaughtUp(message as unknown as CaughtUp);
        } else {
          running.pending.get(message.id)?.(message);
          running.pending.delete(message.id);
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        this.running.delete(id);
        reject(new Error(`node ${id} exited with ${code}: ${running.output}`));
      });
    });
  }

  dataDir(id: number): string {
    return join(this.root, `node-${id}`);
  }

  async caughtUp(id: number, timeoutMs: number): Promise<CaughtUp> {
    const running = this.node(id);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`node ${id} did not catch up within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      return await Promise.race([running.caughtUp, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  request(id: number, body: Record<string, unknown>, timeoutMs = 600_000): Promise<Reply> {
    const running = this.node(id);
    const requestId = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`node ${id}: no reply to ${body.type as string}`)), timeoutMs);
      running.pending.set(requestId, (reply) => {
        clearTimeout(timer);
        resolve(reply);
      });
      running.child.send({ id: requestId, ...body });
    });
  }

  async stop(id: number): Promise<void> {
    const running = this.node(id);
    await this.request(id, { type: 'stop' }, 30_000);
    await running.exited;
  }

  /** Stop every running node gracefully (so profiles get written), ignoring failures. */
  async stopAll(): Promise<void> {
    await Promise.all([...this.running.keys()].map((id) => this.stop(id).catch(() => {})));
  }

  async destroy(): Promise<void> {
    for (const running of this.running.values()) running.child.kill('SIGKILL');
    await Promise.all([...this.running.values()].map((running) => running.exited));
    await rm(this.root, { recursive: true, force: true, maxRetries: 5 });
  }

  private node(id: number): Running {
    const running = this.running.get(id);
    if (running === undefined) throw new Error(`node ${id} is not running`);
    return running;
  }
}

