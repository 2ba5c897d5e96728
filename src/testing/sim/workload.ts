/**
 * Clients: on every node and group, a few concurrent proposals, each framed for one of the group's
 * state machines: unique values, or (in a share of the seeds) a handful of payloads proposed over
 * and over from every node. Outcomes are recorded; the successes are the promises the checkers
 * later hold the cluster to. Each success names the one place (instance, batch index) its value
 * executed at: two successes naming one place are a lost write, whatever the bytes.
 */
import type { PaxosError } from '../../errors.js';
import { frameValue } from '../../runtime/value-frame.js';
import { utf8 } from '../../util/bytes.js';
import type { SeededRandom } from '../../util/random.js';
import type { AgreementChecker, Violations } from './checkers.js';
import type { SimScheduler } from './scheduler.js';
import { SIM_STATE_MACHINE_IDS, type SimNode } from './sim-node.js';

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
  readonly violations: Violations;
  readonly concurrency: number;
  readonly proposingNodes: 'all' | 'one';
  /** Propose only this many distinct payloads (null: every payload unique). */
  readonly distinctValues: number | null;
  readonly gapMs: number;
  readonly timeoutMs: number;
  readonly trace: (line: string) => void;
}

export class Workload {
  readonly acked: AckedProposal[] = [];
  readonly stats: WorkloadStats = { issued: 0, chosen: 0, failures: {} };
  private readonly options: WorkloadOptions;
  private readonly inFlight = new Map<string, number>();
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
    const { random, agreement } = this.options;
    const stateMachineId = random.pick(SIM_STATE_MACHINE_IDS);
    const { distinctValues } = this.options;
    const sequence = this.sequence++;
    const payload = utf8(distinctValues === null ? `${label}${sequence}@n${node.id}g${groupIndex}`
      : `${label}${random.int(0, distinctValues)}`);
    const caller = `proposal #${sequence} of n${node.id}`;
    const framed = frameValue(stateMachineId, payload);
    agreement.noteProposed(framed);
    this.stats.issued++;
    return node.propose(groupIndex, stateMachineId, payload, timeoutMs).then(
      (success) => {
        this.stats.chosen++;
        const expected = Buffer.from(payload).toString('latin1');
        if (success.result !== expected) {
          this.options.violations.add(`n${node.id} g${groupIndex}: the proposal of "${expected}" (instance ` +
            `${success.instanceId}, batch index ${success.batchIndex}) got the result "${String(success.result)}"`);
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
        const code = error.code ?? 'UNKNOWN';
        this.stats.failures[code] = (this.stats.failures[code] ?? 0) + 1;
        return code;
      },
    );
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
