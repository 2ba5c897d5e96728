/**
 * Keeps one `cluster up` node running: a node that dies (a crash, kill -9, a non-zero exit) is
 * started again after the RestartBackoff delay, and every death and restart is reported. A node
 * that exits 0 was asked to stop (SIGINT or SIGTERM: kv serve exits 0 only then) and is left
 * stopped, so an operator can take one node down on purpose. Nothing is restarted once stop() is
 * called: cluster up's own shutdown must not bring nodes back.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { startNodeRun, type NodeExit, type NodeRun } from './cluster-node.js';
import { DEFAULT_RESTART_POLICY, RestartBackoff, type RestartPolicy } from './restart-backoff.js';

export type SupervisorEvent =
  | {
    readonly kind: 'exit';
    readonly nodeId: number;
    /** "exited (status 1)" or "exited (signal SIGKILL)". */
    readonly detail: string;
    /**
     * What happens next: restarted after restartInMs, left stopped (it exited 0), given up on (too
     * many start-up failures), or nothing (restarts are off: `cluster up --restart=false`).
     */
    readonly next: 'restart' | 'stopped' | 'gave-up' | 'none';
    readonly restartInMs?: number;
    /** For a restart, its place in the current streak of deaths (1 for the first). */
    readonly attempt?: number;
    /** For gave-up, how many start-up failures in a row. */
    readonly startFailures?: number;
  }
  | { readonly kind: 'restart'; readonly nodeId: number; readonly pid: number | undefined; readonly attempt: number };

/** `exited`: it died and restarts are off. */
export type NodeState = 'running' | 'waiting' | 'stopped' | 'gave-up' | 'exited';

export class SupervisedNode {
  private run: NodeRun;
  private current: NodeState = 'running';
  private stopping = false;
  private restartTimer: NodeJS.Timeout | undefined;
  /** Null: restarts are off. */
  private readonly backoff: RestartBackoff | null;

  constructor(
    readonly id: number,
    private readonly args: readonly string[],
    private readonly report: (event: SupervisorEvent) => void,
    policy: RestartPolicy | null = DEFAULT_RESTART_POLICY,
  ) {
    this.backoff = policy === null ? null : new RestartBackoff(policy);
    this.run = this.launch();
  }

  get pid(): number | undefined {
    return this.run.child.pid;
  }

  get state(): NodeState {
    return this.current;
  }

  /**
   * SIGTERM the node (and cancel a pending restart); SIGKILL it if it has not exited after
   * `graceMs`. Resolves with whether it had to be killed.
   */
  async stop(graceMs: number): Promise<boolean> {
    this.stopping = true;
    clearTimeout(this.restartTimer);
    if (!this.run.running()) return false;
    this.run.child.kill('SIGTERM');
    const timedOut = await Promise.race([
      this.run.exited.then(() => false), sleep(graceMs, true, { ref: false }),
    ]);
    if (!timedOut) return false;
    this.run.child.kill('SIGKILL');
    await this.run.exited;
    return true;
  }

  private launch(): NodeRun {
    const run = startNodeRun(this.id, this.args);
    void run.exited.then((exit) => this.onExit(exit));
    return run;
  }

  private onExit(exit: NodeExit): void {
    if (this.stopping) return;
    const detail = `exited (${exit.signal === null ? `status ${exit.code}` : `signal ${exit.signal}`})`;
    if (exit.code === 0 && exit.signal === null) {
      this.current = 'stopped';
      this.report({ kind: 'exit', nodeId: this.id, detail, next: 'stopped' });
      return;
    }
    if (this.backoff === null) {
      this.current = 'exited';
      this.report({ kind: 'exit', nodeId: this.id, detail, next: 'none' });
      return;
    }
    const decision = this.backoff.afterDeath(exit);
    if (!decision.restart) {
      this.current = 'gave-up';
      this.report({ kind: 'exit', nodeId: this.id, detail, next: 'gave-up', startFailures: decision.startFailures });
      return;
    }
    this.current = 'waiting';
    this.report({
      kind: 'exit', nodeId: this.id, detail, next: 'restart', restartInMs: decision.delayMs, attempt: decision.attempt,
    });
    // Kept referenced: while every node waits for its restart, this timer is what keeps cluster up alive.
    this.restartTimer = setTimeout(() => {
      if (this.stopping) return;
      this.run = this.launch();
      this.current = 'running';
      this.report({ kind: 'restart', nodeId: this.id, pid: this.run.child.pid, attempt: decision.attempt });
    }, decision.delayMs);
  }
}
