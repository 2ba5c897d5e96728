/**
 * The control channel of a `multipaxos node` process started by another Node process with an IPC
 * channel (child_process.fork): the real-process tests and the propose benchmark drive nodes
 * through it. Requests carry an `id`; every reply echoes it.
 *
 *   propose {group, value, timeoutMs?}       → {ok, instanceId, batchIndex} | {ok: false, code, mayBeChosen}
 *   load {concurrency, seconds, valueBytes}  → closed-loop proposals spread over the groups, then
 *                                              {completed, errors, errorsByCode, p50Ms, p99Ms, ...}
 *   master                                   → per group: the master this node sees, and whether it is master
 *   summary                                  → per group: nowInstanceId, the echo digest, the log digest
 *   values {group, instanceId}               → the values chosen there, as UTF-8 strings
 *   members {group}                          → the membership this node has executed
 *   addMember {group, member} / removeMember {group, nodeId} → the new membership, or the error
 *   stop                                     → graceful stop, then the process exits 0
 */
import { crc32 } from 'node:zlib';
import type { EchoStateMachine } from '../../examples/echo/echo-state-machine.js';
import { PaxosError } from '../errors.js';
import { isUserStateMachineId } from '../runtime/value-frame.js';
import type { PaxosNode } from '../node/paxos-node.js';

export interface ControlRequest {
  readonly id: number;
  readonly type: 'propose' | 'load' | 'summary' | 'master' | 'values' | 'members' | 'addMember' | 'removeMember' |
    'stop';
  readonly instanceId?: number;
  readonly member?: { readonly id: number; readonly host: string; readonly port: number };
  readonly nodeId?: number;
  readonly group?: number;
  readonly value?: string;
  readonly timeoutMs?: number;
  readonly concurrency?: number;
  readonly seconds?: number;
  readonly valueBytes?: number;
}

export interface GroupSummary {
  readonly group: number;
  readonly nowInstanceId: number;
  readonly minChosenInstanceId: number;
  /** The echo state machine's count and digest of what it executed in this process life. */
  readonly executed: number;
  readonly executedDigest: number;
  /** CRC-32 over every chosen value in the log, instance by instance, below nowInstanceId. */
  readonly logDigest: number;
  /** Values for a user state machine in the log below nowInstanceId (batch entries counted one by one). */
  readonly logEntries: number;
  /** Values that appear more than once in the log (every test value is unique, so this must be 0). */
  readonly duplicates: number;
  /** The master as this node sees it (0: none), and whether this node holds the lease. */
  readonly masterNodeId: number;
  readonly masterVersion: number;
  readonly isMaster: boolean;
}

export interface ControlChannel {
  /** Disconnect once every reply has been handed to the parent. */
  close(): void;
}

/** Serve requests from the parent process; null when there is no IPC channel. */
export function serveControlChannel(
  node: PaxosNode, echo: EchoStateMachine, stopNode: () => Promise<void>,
): ControlChannel | null {
  if (process.send === undefined) return null;
  let unsent = 0;
  let handling = 0;
  let closing = false;
  const disconnectWhenFlushed = (): void => {
    if (closing && handling === 0 && unsent === 0 && process.connected) process.disconnect();
  };
  const reply = (message: Record<string, unknown>): void => {
    if (!process.connected) return;
    unsent++;
    process.send?.(message, undefined, undefined, () => {
      unsent--;
      disconnectWhenFlushed();
    });
  };
  process.on('message', (request: ControlRequest) => {
    handling++;
    handle(node, echo, request, stopNode).then(
      (result) => reply({ id: request.id, ...result }),
      (error: unknown) => reply({ id: request.id, ok: false, code: 'INTERNAL', message: String(error) }),
    ).finally(() => {
      handling--;
      disconnectWhenFlushed();
    });
  });
  reply({ type: 'ready', nodeId: node.nodeId, address: node.address() });
  return {
    close: () => {
      closing = true;
      disconnectWhenFlushed();
    },
  };
}

async function handle(
  node: PaxosNode, echo: EchoStateMachine, request: ControlRequest, stopNode: () => Promise<void>,
): Promise<Record<string, unknown>> {
  switch (request.type) {
    case 'propose':
      return await propose(node, request.group ?? 0, Buffer.from(request.value ?? ''), request.timeoutMs);
    case 'load':
      return await runLoad(node, request.concurrency ?? 1, request.seconds ?? 1, request.valueBytes ?? 100);
    case 'summary':
      return { ok: true, groups: await summarize(node, echo), metrics: node.metrics() };
    case 'master':
      // Cheap, and answered from the clock at the moment of asking: what a caller would act on.
      return {
        ok: true, groups: node.metrics().groups.map(({ groupIndex }) => ({
          group: groupIndex, masterNodeId: node.master(groupIndex)?.nodeId ?? 0, isMaster: node.isMaster(groupIndex),
        })),
      };
    case 'values': {
      const values = await node.instanceValues(request.group ?? 0, request.instanceId ?? -1);
      return { ok: true, values: values.map(({ value }) => Buffer.from(value).toString('utf8')) };
    }
    case 'members':
      return { ok: true, membership: node.members(request.group ?? 0) };
    case 'addMember':
    case 'removeMember':
      try {
        const membership = request.type === 'addMember'
          ? await node.addMember(request.group ?? 0, request.member as { id: number; host: string; port: number })
          : await node.removeMember(request.group ?? 0, request.nodeId ?? 0);
        return { ok: true, membership };
      } catch (error) {
        if (!(error instanceof PaxosError)) throw error;
        return { ok: false, code: error.code, mayBeChosen: error.mayBeChosen, message: error.message };
      }
    case 'stop':
      await stopNode();
      return { ok: true };
  }
}

async function propose(
  node: PaxosNode, group: number, value: Uint8Array, timeoutMs: number | undefined,
): Promise<Record<string, unknown>> {
  try {
    const { instanceId, batchIndex } = await node.propose(group, value, { timeoutMs });
    return { ok: true, instanceId, batchIndex };
  } catch (error) {
    if (!(error instanceof PaxosError)) throw error;
    return { ok: false, code: error.code, mayBeChosen: error.mayBeChosen, message: error.message };
  }
}

async function summarize(node: PaxosNode, echo: EchoStateMachine): Promise<GroupSummary[]> {
  const groups: GroupSummary[] = [];
  for (const { groupIndex } of node.metrics().groups) {
    const nowInstanceId = node.nowInstanceId(groupIndex);
    const minChosenInstanceId = node.minChosenInstanceId(groupIndex);
    let logDigest = 0;
    let logEntries = 0;
    let duplicates = 0;
    const seen = new Set<string>();
    for (let instanceId = minChosenInstanceId; instanceId < nowInstanceId; instanceId++) {
      for (const { stateMachineId, value } of await node.instanceValues(groupIndex, instanceId)) {
        const id = Buffer.alloc(4);
        id.writeUInt32LE(stateMachineId);
        logDigest = crc32(value, crc32(id, logDigest));
        // The echo state machine sees user values only (not master bids or membership changes).
        if (!isUserStateMachineId(stateMachineId)) continue;
        logEntries++;
        const text = Buffer.from(value).toString('latin1');
        if (seen.has(text)) duplicates++;
        seen.add(text);
      }
    }
    const { executed, digest } = echo.summary(groupIndex);
    const master = node.master(groupIndex);
    groups.push({
      group: groupIndex, nowInstanceId, minChosenInstanceId, executed, executedDigest: digest, logDigest, logEntries,
      duplicates, masterNodeId: master?.nodeId ?? 0, masterVersion: master?.version ?? -1,
      isMaster: node.isMaster(groupIndex),
    });
  }
  return groups;
}

/** Closed loop: `concurrency` callers, each proposing its next value as soon as the last resolves. */
async function runLoad(
  node: PaxosNode, concurrency: number, seconds: number, valueBytes: number,
): Promise<Record<string, unknown>> {
  const groups = node.metrics().groups.length;
  const latencies: number[] = [];
  const errorsByCode: Record<string, number> = {};
  let errors = 0;
  const value = Buffer.alloc(valueBytes, 'x');
  const startedAt = performance.now();
  const endAt = startedAt + seconds * 1000;
  const instancesBefore = node.metrics().groups.reduce((sum, group) => sum + group.valuesProposed, 0);
  const caller = async (index: number): Promise<void> => {
    const group = index % groups;
    while (performance.now() < endAt) {
      const began = performance.now();
      try {
        await node.propose(group, value);
        latencies.push(performance.now() - began);
      } catch (error) {
        errors++;
        const code = error instanceof PaxosError ? error.code : 'UNKNOWN';
        errorsByCode[code] = (errorsByCode[code] ?? 0) + 1;
        // A refusal comes at once; let the node breathe (and answer its control channel).
        await new Promise((resolve) => setImmediate(resolve));
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, (_, index) => caller(index)));
  const elapsedMs = performance.now() - startedAt;
  latencies.sort((a, b) => a - b);
  const instances = node.metrics().groups.reduce((sum, group) => sum + group.valuesProposed, 0) - instancesBefore;
  return {
    ok: true, completed: latencies.length, errors, errorsByCode, elapsedMs,
    proposalsPerSec: latencies.length / (elapsedMs / 1000),
    p50Ms: percentile(latencies, 0.5), p99Ms: percentile(latencies, 0.99),
    instances, valuesPerInstance: instances === 0 ? 0 : latencies.length / instances,
  };
}

function percentile(sorted: readonly number[], fraction: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(fraction * sorted.length))] as number;
}
