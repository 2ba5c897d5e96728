/**
 * One node of the catch-up benchmark, in its own process (forked by catch-up-cluster.ts with an IPC
 * channel): a PaxosNode with a counting state machine ('paxos'), or a KvService ('kv'). The library
 * is loaded from `lib` (a build's dist directory), so the same benchmark drives an older build.
 *
 * Requests (each reply echoes `id`):
 *   load {count, inFlight}  → paxos: `count` proposals of 100 bytes; kv: `count` puts of new keys;
 *                             {ok: false, code: 'NOT_MASTER'} from a KV node that is not serving
 *   status                  → nowInstanceId, minChosenInstanceId, the group's metrics, keys (kv),
 *                             executions (paxos: values the counter executed, the last instance, and
 *                             how many came at or below the one before: twice or out of order)
 *   write {inFlight}        → paxos: starts a closed loop of proposals of 100 bytes that runs until
 *   stopWrite                 stopWrite, which answers {proposals, seconds}
 *   stop                    → graceful stop, then the process exits
 * With `watchTarget`, the node times its own catch-up from the moment its start returns and sends
 * one {type: 'caughtUp', ...} message when its nowInstanceId reaches the target.
 */
import { join } from 'node:path';

export interface ChildSettings {
  readonly mode: 'paxos' | 'kv';
  /** A build's dist directory (holding src/node/paxos-node.js). */
  readonly lib: string;
  readonly nodeId: number;
  readonly ports: readonly number[];
  readonly dataDir: string;
  readonly sync: boolean;
  /** kv: snapshot every this many instances, and keep this many instances of log behind the checkpoint. */
  readonly snapshotEvery?: number;
  readonly holdInstances?: number;
  readonly watchTarget?: number;
  /**
   * paxos: the counting state machine reports this checkpoint (a log extended by the fixture
   * builder is then not replayed at start-up), and the log is never cleaned.
   */
  readonly checkpointThrough?: number;
  /** Each node writes a CPU profile (node --cpu-prof) here when it stops. */
  readonly cpuProfileDir?: string;
}

export interface CaughtUp {
  readonly type: 'caughtUp';
  /** From the process start to the node's start returning (log opened, replayed). */
  readonly startMs: number;
  /** From the node's start returning to its first instance learned (paxos) or first checkpoint byte (kv). */
  readonly firstLearnMs: number;
  /** From the node's start returning to a checkpoint installed (kv; undefined for paxos). */
  readonly installedMs: number | undefined;
  /** From the node's start returning to nowInstanceId reaching the target. */
  readonly caughtUpMs: number;
  /** The instance the node was at when it learned its first value after start. */
  readonly firstInstance: number;
  readonly nowInstanceId: number;
  readonly metrics: Record<string, unknown>;
  readonly keys: number | undefined;
  /** Pauses of at least STALL_MS without progress after the first learned instance. */
  readonly stallsMs: readonly number[];
}

interface NodeLike {
  nowInstanceId(group: number): number;
  minChosenInstanceId(group: number): number;
  propose(group: number, value: Uint8Array): Promise<unknown>;
  metrics(): { groups: readonly Record<string, unknown>[] };
  stop(): Promise<void>;
}

interface KvLike {
  readonly node: NodeLike;
  readonly machine: { stats(): { keys: number } };
  status(): readonly { serving: boolean }[];
  put(key: string, value: string, options: { timeoutMs: number }): Promise<unknown>;
  stop(): Promise<void>;
}

const VALUE_BYTES = 100;
/** What the counting state machine executed in this process life (paxos mode). */
const executions = { count: 0, last: -1, misordered: 0 };
const POLL_MS = 2;
const STALL_MS = 200;

async function main(): Promise<void> {
  const settings = JSON.parse(process.argv[2] as string) as ChildSettings;
  const members = settings.ports.map((port, index) => ({ id: index + 1, host: '127.0.0.1', port }));
  const common = { nodeId: settings.nodeId, members, dataDir: settings.dataDir, groups: 1, sync: settings.sync };
  let node: NodeLike;
  let kv: KvLike | undefined;
  let firstExecuted: { at: number; instanceId: number } | undefined;
  let startReturned = Number.POSITIVE_INFINITY;
  if (settings.mode === 'paxos') {
    const { PaxosNode } = await import(join(settings.lib, 'src/node/paxos-node.js')) as {
      PaxosNode: { start(options: unknown): Promise<NodeLike> };
    };
    const checkpoint = settings.checkpointThrough;
    const counter = {
      id: 1,
      ...(checkpoint === undefined ? {} : { checkpointInstanceId: () => checkpoint }),
      execute: ({ instanceId }: { instanceId: number }) => {
        // Instances only ever go up: a value executed twice or out of order shows here.
        if (instanceId <= executions.last) executions.misordered++;
        executions.last = instanceId;
        executions.count++;
        if (firstExecuted === undefined && performance.now() >= startReturned) {
          firstExecuted = { at: performance.now(), instanceId };
        }
      },
    };
    // One value per instance: instances = values.
    node = await PaxosNode.start({
      ...common, maxBatchCount: 1, stateMachines: [counter],
      ...(checkpoint === undefined ? {} : { logCleaning: { intervalMs: 0 } }),
    });
  } else {
    const { KvService } = await import(join(settings.lib, 'src/kv/kv-service.js')) as {
      KvService: { start(options: unknown): Promise<KvLike> };
    };
    kv = await KvService.start({
      ...common, masterLeaseMs: 3_000, httpEndpoint: `http://127.0.0.1:${settings.nodeId}`,
      snapshots: { intervalMs: 0, everyInstances: settings.snapshotEvery ?? 1_000 },
      logCleaning: { holdInstances: settings.holdInstances ?? 500, intervalMs: 200 },
    });
    node = kv.node;
  }
  startReturned = performance.now();
  if (settings.watchTarget !== undefined) watch(node, kv, settings.watchTarget, startReturned, () => firstExecuted);
  process.on('message', (request: { id: number; type: string; count?: number; inFlight?: number }) => {
    handle(node, kv, request).then((reply) => process.send?.({ id: request.id, ...reply }),
      (error: unknown) => process.send?.({ id: request.id, ok: false, code: 'INTERNAL', message: String(error) }));
  });
  // The benchmark died: so does its node.
  process.once('disconnect', () => process.exit(1));
  process.send?.({ type: 'ready' });
}

async function handle(
  node: NodeLike, kv: KvLike | undefined, request: { type: string; count?: number; inFlight?: number },
): Promise<Record<string, unknown>> {
  switch (request.type) {
    case 'load': {
      if (kv !== undefined && kv.status()[0]?.serving !== true) return { ok: false, code: 'NOT_MASTER' };
      const began = performance.now();
      await load(node, kv, request.count ?? 0, request.inFlight ?? 64);
      return { ok: true, seconds: (performance.now() - began) / 1000, nowInstanceId: node.nowInstanceId(0) };
    }
    case 'status':
      return {
        ok: true, nowInstanceId: node.nowInstanceId(0), minChosenInstanceId: node.minChosenInstanceId(0),
        metrics: node.metrics().groups[0], keys: kv?.machine.stats().keys,
        serving: kv?.status()[0]?.serving, written: writer.running?.proposals ?? 0, executions,
      };
    case 'write':
      writer.start(node, request.inFlight ?? 64);
      return { ok: true };
    case 'stopWrite':
      return { ok: true, ...await writer.stop() };
    case 'stop':
      await (kv ?? node).stop();
      setImmediate(() => process.exit(0));
      return { ok: true };
    default:
      return { ok: false, code: 'BAD_REQUEST' };
  }
}

async function load(node: NodeLike, kv: KvLike | undefined, count: number, inFlight: number): Promise<void> {
  const value = Buffer.alloc(VALUE_BYTES, 'x');
  const text = value.toString('latin1');
  let next = 0;
  await Promise.all(Array.from({ length: inFlight }, async () => {
    while (next < count) {
      const n = next++;
      if (kv === undefined) {
        await node.propose(0, value);
        continue;
      }
      for (let attempt = 0; ; attempt++) {
        try {
          await kv.put(`key-${n}`, text, { timeoutMs: 60_000 });
          break;
        } catch (error) {
          // Only a put certainly not applied (a lease lapsing under load) is tried again.
          if (attempt >= 100 || (error as { mayHaveBeenApplied?: boolean }).mayHaveBeenApplied !== false) throw error;
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      }
    }
  }));
}

/** A closed loop of proposals (paxos mode), started and stopped by requests. */
const writer = {
  running: null as null | { stopping: boolean; proposals: number; began: number; done: Promise<void> },
  start(node: NodeLike, inFlight: number): void {
    if (this.running !== null) return;
    const value = Buffer.alloc(VALUE_BYTES, 'x');
    const state = { stopping: false, proposals: 0, began: performance.now(), done: Promise.resolve() };
    state.done = Promise.all(Array.from({ length: inFlight }, async () => {
      while (!state.stopping) {
        await node.propose(0, value);
        state.proposals++;
      }
    })).then(() => {});
    this.running = state;
  },
  async stop(): Promise<{ proposals: number; seconds: number }> {
    const state = this.running;
    if (state === null) return { proposals: 0, seconds: 0 };
    state.stopping = true;
    const seconds = (performance.now() - state.began) / 1000;
    const proposals = state.proposals;
    await state.done;
    this.running = null;
    return { proposals, seconds };
  },
};

/** Poll the node's progress (cheap counters) until it reaches `target`, then report once. */
function watch(
  node: NodeLike, kv: KvLike | undefined, target: number, started: number,
  firstExecuted: () => { at: number; instanceId: number } | undefined,
): void {
  let firstBytesAt: number | undefined;
  let installedAt: number | undefined;
  let lastInstance = node.nowInstanceId(0);
  let lastProgressAt = started;
  let stalls: number[] = [];
  const timer = setInterval(() => {
    const now = performance.now();
    const instance = node.nowInstanceId(0);
    if (instance !== lastInstance) {
      // A pause in progress after the first learned value: the stream stopped and the node waited.
      const first = firstExecuted();
      if (first !== undefined && lastProgressAt >= first.at && now - lastProgressAt >= STALL_MS) {
        stalls = [...stalls, now - lastProgressAt];
      }
      lastInstance = instance;
      lastProgressAt = now;
    }
    if (kv !== undefined) {
      const metrics = node.metrics().groups[0] as Record<string, unknown>;
      if (firstBytesAt === undefined && (metrics.checkpointBytesReceived as number) > 0) firstBytesAt = now;
      if (installedAt === undefined && (metrics.checkpointsInstalled as number) > 0) installedAt = now;
    }
    if (node.nowInstanceId(0) < target) return;
    clearInterval(timer);
    const first = firstExecuted();
    const metrics = node.metrics().groups[0] as Record<string, unknown>;
    const report: CaughtUp = {
      type: 'caughtUp', startMs: started, firstLearnMs: (kv === undefined ? first?.at ?? now : firstBytesAt ?? now) - started,
      installedMs: installedAt === undefined ? undefined : installedAt - started, caughtUpMs: now - started,
      firstInstance: first?.instanceId ?? -1, nowInstanceId: node.nowInstanceId(0), metrics,
      keys: kv?.machine.stats().keys, stallsMs: stalls.map(Math.round),
    };
    process.send?.(report);
  }, POLL_MS);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
