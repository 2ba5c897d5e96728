/**
 * `npm run bench -- kv-restart`: how long a KV node takes to start again with N keys, replaying
 * the whole Paxos log (no snapshot: the baseline) and from a KV snapshot (replaying only the
 * instances after it).
 *
 * One node (a one-member cluster: replay does not depend on the others) loads N keys of 100-byte
 * values through KvService with 256 writes in flight (so instances carry batches, as under real
 * load), stops, and starts again; each start is timed until the node serves linearizable reads
 * (master, fence executed), `--runs` times, each in a new process (as a real restart is: a
 * restart inside the loading process would pay for collecting the previous life's garbage) and
 * timed from the process's own start. Then the node takes a snapshot of the same state (its
 * cost is reported: the synchronous copy, which is all execution waits for, and the whole write)
 * and the restarts are timed again. Snapshots are taken only on demand here, so every restart of
 * a series starts from the same files.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseFlags, UsageError, type FlagSpec } from '../src/cli/flags.js';
import { KvService } from '../src/kv/kv-service.js';
import type { MemberAddress } from '../src/node/node-options.js';
import { waitServing } from './local-kv-node.js';

/** The port the sole member is listed with: never dialed, and not where it listens. */
const SOLE_MEMBER_PORT = 1;

const FLAGS: FlagSpec = {
  keys: 'number', runs: 'number', baseline: 'boolean', json: 'boolean', help: 'boolean',
  // Internal: one restart in this process, reported as a JSON line to the parent.
  'restart-child': 'string',
};
const IN_FLIGHT = 256;
const VALUE = 'v'.repeat(100);

export const KV_RESTART_USAGE = `usage: npm run bench -- kv-restart [--keys 1000000] [--runs 3] [--baseline=false] [--json]

Loads --keys keys (100-byte values) into a one-node KV service, then times restarts, each a new
process (open the log, replay it into the KV state machine, serve): first without a snapshot
(skipped with --baseline=false), then from a snapshot taken of the same state. Prints the medians
of --runs.`;

interface Series {
  readonly medianMs: number;
  readonly restartsMs: number[];
  /** Of each restart, the time until KvService.start returned (snapshot load, log open, replay). */
  readonly startMs: number[];
  readonly heapUsedMb: number;
  /** Memory of ArrayBuffers (Buffers, values) outside the JS heap, after start. */
  readonly arrayBuffersMb: number;
}

interface ChildRestart {
  readonly startMs: number;
  readonly servingMs: number;
  readonly keys: number;
  readonly heapUsedMb: number;
  readonly arrayBuffersMb: number;
}

export async function kvRestartBench(argv: readonly string[]): Promise<number> {
  const flags = parseFlags(argv, FLAGS);
  if (flags.help === true) {
    console.log(KV_RESTART_USAGE);
    return 0;
  }
  if (flags['restart-child'] !== undefined) {
    return await restartChild(flags['restart-child'] as string);
  }
  const keys = (flags.keys as number | undefined) ?? 1_000_000;
  const runs = (flags.runs as number | undefined) ?? 3;
  if (keys < 1 || runs < 1) throw new UsageError('--keys and --runs must be positive');
  const dir = await mkdtemp(join(tmpdir(), 'multipaxos-kv-restart-'));
  try {
    const start = (): Promise<KvService> => startNode(dir);
    const loadStarted = performance.now();
    let service = await start();
    // The node has been sole master before its first write can go through.
    await waitServing(service);
    let next = 0;
    await Promise.all(Array.from({ length: IN_FLIGHT }, async () => {
      while (next < keys) {
        const key = `key-${next++}`;
        await service.put(key, VALUE, { timeoutMs: 60_000 });
      }
    }));
    const loadSeconds = (performance.now() - loadStarted) / 1000;
    const instances = service.node.nowInstanceId(0);
    await service.stop();
    const baseline = flags.baseline === false ? undefined : await restarts(dir, runs, keys);
    service = await start();
    await waitServing(service);
    const [taken] = await service.snapshot(0);
    if (taken?.path === undefined) throw new Error('no snapshot was written');
    await service.stop();
    const withSnapshot = await restarts(dir, runs, keys);
    const result = {
      keys, instances, loadSeconds: round(loadSeconds),
      snapshot: {
        copyMs: Math.round(taken.copyMs), totalMs: Math.round(taken.totalMs), mb: round(taken.bytes / 2 ** 20),
      },
      withSnapshot, withoutSnapshot: baseline,
      machine: `${cpus().length} × ${cpus()[0]?.model.trim() ?? 'unknown'}, ` +
        `${(totalmem() / 2 ** 30).toFixed(1)} GiB, Node ${process.version}`,
    };
    if (flags.json === true) console.log(JSON.stringify(result));
    else {
      console.log(`loaded ${keys} keys in ${result.loadSeconds} s (${instances} instances, ${IN_FLIGHT} writes in flight)`);
      console.log(`snapshot: ${result.snapshot.mb} MiB, state copied in ${result.snapshot.copyMs} ms (execution waits ` +
        `only for this), durable after ${result.snapshot.totalMs} ms`);
      if (baseline !== undefined) console.log(describe('restart replaying the whole log', baseline, runs));
      console.log(describe('restart from the snapshot', withSnapshot, runs));
      console.log(`machine: ${result.machine}`);
    }
    return 0;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Restart `runs` times, each in a new process, timed until the node serves linearizable reads. */
async function restarts(dir: string, runs: number, keys: number): Promise<Series> {
  const children: ChildRestart[] = [];
  for (let run = 0; run < runs; run++) {
    const output = await new Promise<string>((resolve, reject) => {
      execFile(process.execPath, ['--expose-gc', process.argv[1] as string, 'kv-restart', '--restart-child', dir],
        { maxBuffer: 1 << 20 }, (error, stdout) => (error === null ? resolve(stdout) : reject(error)));
    });
    const child = JSON.parse(output) as ChildRestart;
    if (child.keys !== keys) throw new Error(`restart found ${child.keys} keys, expected ${keys}`);
    children.push(child);
  }
  const restartsMs = children.map((child) => Math.round(child.servingMs));
  const medianMs = [...restartsMs].sort((a, b) => a - b)[Math.floor(runs / 2)] as number;
  return {
    medianMs, restartsMs, startMs: children.map((child) => Math.round(child.startMs)),
    heapUsedMb: Math.round(children.at(-1)?.heapUsedMb ?? 0),
    arrayBuffersMb: Math.round(children.at(-1)?.arrayBuffersMb ?? 0),
  };
}

/** One restart, timed from this process's start (performance.now() counts from it). */
async function restartChild(dir: string): Promise<number> {
  const service = await startNode(dir);
  const startMs = performance.now();
  // Serving means master with its fence executed: the log's last instance, which start-up
  // cannot know was chosen, has been decided again and executed by then.
  await waitServing(service);
  const servingMs = performance.now();
  // Collected first when the process allows it (--expose-gc): what stays is what the state pins.
  // Twice, a moment apart: array buffers are freed after the collection that finds them dead.
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  await new Promise((resolve) => setTimeout(resolve, 100));
  gc?.();
  const memory = process.memoryUsage();
  const result: ChildRestart = {
    startMs, servingMs, keys: service.machine.stats().keys, heapUsedMb: memory.heapUsed / 2 ** 20,
    arrayBuffersMb: memory.arrayBuffers / 2 ** 20,
  };
  await service.stop();
  console.log(JSON.stringify(result));
  return 0;
}

function describe(what: string, series: Series, runs: number): string {
  return `${what}: median ${series.medianMs} ms of ${runs} [${series.restartsMs.join(', ')}] (of which ` +
    `the process start to KvService.start returning: ${series.startMs.join(', ')}); heap after start ` +
    `${series.heapUsedMb} MiB, array buffers ${series.arrayBuffersMb} MiB`;
}

async function startNode(dir: string): Promise<KvService> {
  // The node is its group's only member, so no peer dials the address it is listed with: it listens
  // on a port the kernel picks at each start. A port chosen once and reused across the restarts
  // could be taken in a gap between them by another process looking for a free one (a test run's
  // files run two at a time; CI once saw "the port is in use" here).
  const members: MemberAddress[] = [{ id: 1, host: '127.0.0.1', port: SOLE_MEMBER_PORT }];
  return await KvService.start({
    nodeId: 1, members, listen: { host: '127.0.0.1', port: 0 }, dataDir: join(dir, 'node-1'), groups: 1,
    masterLeaseMs: 1_000, httpEndpoint: 'http://127.0.0.1:1', sync: false,
    // On demand only: every restart of a series starts from the same state on disk.
    snapshots: { intervalMs: 0, everyInstances: 0 },
  });
}



function round(value: number): number {
  return Math.round(value * 10) / 10;
}
