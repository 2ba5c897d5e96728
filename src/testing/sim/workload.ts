/**
 * Clients: on every node and group, a few concurrent proposals, each for one of the group's state
 * machines, with the values the application draws (sim-application.ts). Outcomes are recorded; the
 * successes are the promises the checkers later hold the cluster to. Each success names the one
 * place (instance, batch index) its value executed at: two successes naming one place are a lost
 * write, whatever the bytes; and its caller must get that execution's result.
 */
import type { PaxosError } from '../../errors.js';
import { frameValue } from '../../runtime/value-frame.js';
import type { SeededRandom } from '../../util/random.js';
import type { AgreementChecker, ExecutionChecker, Violations } from './checkers.js';
import { ProposalMarker } from './proposal-marker.js';
import type { SimScheduler } from './scheduler.js';
import type { SimApplication } from './sim-application.js';
import type { SimNode } from './sim-node.js';

export interface AckedProposal {
  readonly groupIndex: number;
  readonly instanceId: number;
  readonly batchIndex: number;
  readonly value: Uint8Array;
  readonly node: number;
}

export interface WorkloadStats {
  issued: number;
  chosen: number;
  failures: Record<string, number>;
}

export interface WorkloadOptions {
  readonly scheduler: SimScheduler;
  readonly random: SeededRandom;
  readonly nodes: readonly SimNode[];
  readonly groupCount: number;
  readonly agreement: AgreementChecker;
  readonly executions: ExecutionChecker;
  readonly violations: Violations;
  /** Decides each proposal's state machine and payload. */
  readonly application: SimApplication;
  readonly concurrency: number;
  readonly proposingNodes: 'all' | 'one';
  readonly gapMs: number;
  readonly timeoutMs: number;
  readonly trace: (line: string) => void;
}

export class Workload {
  readonly acked: AckedProposal[] = [];
  readonly stats: WorkloadStats = { issued: 0, chosen: 0, failures: {} };
  private readonly options: WorkloadOptions;
  private readonly inFlight = new Map<string, number>();
  /** Proposals not yet settled, per node and group, the liveness probe's included (the stall checker reads them). */
  private readonly unsettled = new Map<string, number>();
  /** (group, instance, batch index) → the success that claimed it. */
  private readonly claimed = new Map<string, string>();
  private sequence = 0;
  private running = false;

  constructor(options: WorkloadOptions) {
    this.options = options;
  }

  start(): void {
    this.running = true;
    const { nodes, proposingNodes, random } = this.options;
    for (const node of proposingNodes === 'all' ? nodes : [random.pick(nodes)]) {
      for (let groupIndex = 0; groupIndex < this.options.groupCount; groupIndex++) this.scheduleNext(node, groupIndex);
    }
  }

  stop(): void {
    this.running = false;
  }

  /** Propose one value now; resolves with the outcome code ('OK' or the error code). */
  propose(node: SimNode, groupIndex: number, timeoutMs: number, label = 'v'): Promise<string> {
    const { random, agreement, executions } = this.options;
    const sequence = this.sequence++;
    const { stateMachineId, payload } = this.options.application
      .nextProposal(random, node, groupIndex, label, sequence);
    const caller = `proposal #${sequence} of n${node.id}`;
    const framed = frameValue(stateMachineId, payload);
    agreement.noteProposed(framed);
    this.stats.issued++;
    const slot = `${node.id}:${groupIndex}`;
    this.unsettled.set(slot, (this.unsettled.get(slot) ?? 0) + 1);
    const settled = (): void => {
      this.unsettled.set(slot, (this.unsettled.get(slot) ?? 1) - 1);
    };
    return node.propose(groupIndex, stateMachineId, payload, timeoutMs, new ProposalMarker(caller)).then(
      (success) => {
        settled();
        this.stats.chosen++;
        if (!executions.isResultOf(success.result, groupIndex, success.instanceId, success.batchIndex)) {
          this.options.violations.add(`n${node.id} g${groupIndex}: ${caller} (instance ${success.instanceId}, ` +
            `batch index ${success.batchIndex}) got a result that is not its own entry's`);
        }
        const slot = `g${groupIndex} instance ${success.instanceId} batch index ${success.batchIndex}`;
        const earlier = this.claimed.get(slot);
        if (earlier !== undefined) {
          this.options.violations.add(`${caller} and ${earlier} were both told they were chosen at ${slot}: ` +
            'one execution, two successes (a lost write)');
        }
        this.claimed.set(slot, caller);
        this.acked.push({
          groupIndex, instanceId: success.instanceId, batchIndex: success.batchIndex, value: framed, node: node.id,
        });
        this.options.trace(`n${node.id} g${groupIndex} chosen at ${success.instanceId}`);
        return 'OK';
      },
      (error: PaxosError) => {
        settled();
        const code = error.code ?? 'UNKNOWN';
        this.stats.failures[code] = (this.stats.failures[code] ?? 0) + 1;
        return code;
      },
    );
  }

  /** Whether a proposal made at this node in this group has not settled yet. */
  isWaiting(nodeId: number, groupIndex: number): boolean {
    return (this.unsettled.get(`${nodeId}:${groupIndex}`) ?? 0) > 0;
  }

  private scheduleNext(node: SimNode, groupIndex: number): void {
    const { scheduler, random, gapMs } = this.options;
    scheduler.after(random.float() * gapMs * 2, () => this.issue(node, groupIndex));
  }

  private issue(node: SimNode, groupIndex: number): void {
    if (!this.running) return;
    const slot = `${node.id}:${groupIndex}`;
    const busy = this.inFlight.get(slot) ?? 0;
    if (node.isUp && !node.paused && busy < this.options.concurrency) {
      this.inFlight.set(slot, busy + 1);
      void this.propose(node, groupIndex, this.options.timeoutMs).then(() => {
        this.inFlight.set(slot, (this.inFlight.get(slot) ?? 1) - 1);
      });
    }
    this.scheduleNext(node, groupIndex);
  }
}
