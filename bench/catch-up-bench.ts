/**
 * `npm run bench -- catch-up`: how fast a node that was down catches up, on a real 3-node cluster
 * (three processes, catch-up-child.ts, on loopback, fsync on).
 *
 * log: node 3 stops; node 1 proposes --instances values of 100 bytes, one per instance; node 3
 * starts again and learns them from its peers' logs (ask for learn, then the teacher's stream).
 * Reported: its start (log open), the time from start to its first learned instance (mostly the
 * ask-for-learn delay, 2.5-3 s), and instances/s from that first instance to caught up. With
 * --compare <dist>, every run is repeated against that build (alternating), side by side.
 *
 * snapshot: a KV cluster snapshots every --snapshot-every instances and keeps --hold instances of
 * log behind its checkpoint; node 3 (or whichever is not master) is down while --keys puts go to
 * the master, until the others' logs are cleaned past it; it starts again and must receive and
 * install a snapshot. Reported: MiB/s from its first checkpoint byte to the install done (bytes
 * from the node's checkpointBytesReceived), and the time from its start to caught up (serving
 * stale reads of every key).
 */
import { cpus, loadavg, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseFlags, UsageError, type FlagSpec } from '../src/cli/flags.js';
import { ChildCluster } from './catch-up-cluster.js';
import type { CaughtUp } from './catch-up-child.js';
import { gapRun, type GapRun } from './catch-up-gap.js';
import { recordBytesOnDisk } from '../src/io/file-log-store.js';

const FLAGS: FlagSpec = {
  part: 'string', instances: 'number', keys: 'number', runs: 'number', compare: 'string', 'snapshot-every': 'number',
  hold: 'number', sync: 'boolean', writers: 'number', 'cpu-prof': 'string', json: 'boolean', help: 'boolean',
};
const THIS_BUILD = fileURLToPath(new URL('..', import.meta.url));
const CATCH_UP_TIMEOUT_MS = 120_000;
/** A 100-byte proposal as the log holds it: framed for its state machine (4) in the identity envelope (32). */
const PROPOSED_VALUE_BYTES = 136;

export const CATCH_UP_USAGE = `usage: npm run bench -- catch-up [--part log|gap|snapshot|all] [--instances N] [--runs 3]
                               [--writers 64] [--compare <other build's dist dir>] [--keys 200000]
                               [--snapshot-every 1000] [--hold 500] [--sync=false] [--cpu-prof <dir>] [--json]

A node of a 3-process cluster (loopback, fsync on) stops, the others go on, and it starts again.
log: --instances (20,000) instances proposed while it is down, learned from its peers' logs.
gap: --instances (1,000,000) instances missed (written into its peers' logs directly), learned
while node 1 runs a closed loop of --writers proposals. Both report instances/s and MB/s of log
records from first learned to caught up (--compare runs an older build's nodes in alternate runs).
snapshot: --keys KV puts while it is down, the log cleaned past it; MiB/s of the snapshot
transfer and install, and time to caught up. Medians of --runs. --cpu-prof writes every node's
CPU profile into <dir>. --part all (the default) runs the three.`;

interface LogRun {
  readonly build: string;
  readonly instances: number;
  readonly startMs: number;
  readonly toFirstLearnMs: number;
  readonly streamMs: number;
  readonly instancesPerSec: number;
  /** Log record bytes learned per second (each value as proposed: 100 bytes, framed and enveloped). */
  readonly mbPerSec: number;
  /** Pauses (≥ 200 ms) in the stream, and the rate without them. */
  readonly stallsMs: readonly number[];
  readonly streamingPerSec: number;
  readonly load: number;
}

export async function catchUpBench(argv: readonly string[]): Promise<number> {
  const flags = parseFlags(argv, FLAGS);
  if (flags.help === true) {
    console.log(CATCH_UP_USAGE);
    return 0;
  }
  const part = (flags.part as string | undefined) ?? 'all';
  if (!['log', 'gap', 'snapshot', 'all'].includes(part)) throw new UsageError('--part is log, gap, snapshot or all');
  const runs = (flags.runs as number | undefined) ?? 3;
  const sync = flags.sync !== false;
  const json = flags.json === true;
  if (!json) console.log(machine());
  const builds = [THIS_BUILD, ...(flags.compare === undefined ? [] : [flags.compare as string])];
  if (part === 'log' || part === 'all') {
    const instances = (flags.instances as number | undefined) ?? 20_000;
    const results: LogRun[] = [];
    for (let run = 0; run < runs; run++) {
      for (const build of builds) {
        const result = await logRun(build, instances, sync, flags['cpu-prof'] as string | undefined);
        results.push(result);
        if (json) console.log(JSON.stringify({ part: 'log', ...result }));
        else console.log(`  log, ${label(build)}: ${result.instancesPerSec}/s (${result.instances} instances in ` +
          `${result.streamMs} ms, ${result.mbPerSec} MB/s; stalls [${result.stallsMs.join(', ')}] ms, ${result.streamingPerSec}/s without them; ` +
          `start ${result.startMs} ms, then first learned after ${result.toFirstLearnMs} ms; load ${result.load})`);
      }
    }
    for (const build of builds) {
      const mine = results.filter((result) => result.build === label(build));
      const summary = {
        part: 'log', build: label(build), runs: mine.length,
        medianInstancesPerSec: median(mine.map((result) => result.instancesPerSec)),
        medianStreamingPerSec: median(mine.map((result) => result.streamingPerSec)),
        medianToFirstLearnMs: median(mine.map((result) => result.toFirstLearnMs)),
      };
      if (json) console.log(JSON.stringify(summary));
      else console.log(`log stream, ${summary.build}: median ${summary.medianInstancesPerSec} instances/s of ` +
        `${summary.runs} runs (${summary.medianStreamingPerSec}/s without stalls); first learned ` +
        `${summary.medianToFirstLearnMs} ms after start`);
    }
  }
  if (part === 'gap' || part === 'all') {
    const instances = (flags.instances as number | undefined) ?? 1_000_000;
    const writers = (flags.writers as number | undefined) ?? 64;
    if (instances < 1 || writers < 1) throw new UsageError('--instances and --writers must be positive');
    const results: GapRun[] = [];
    for (let run = 0; run < runs; run++) {
      for (const build of builds) {
        const cpuProfileDir = flags['cpu-prof'] as string | undefined;
        const result = await gapRun({
          build, label: label(build), instances, writers, profiling: cpuProfileDir !== undefined,
          load: () => loadavg()[0] as number,
          timeoutMs: Math.max(CATCH_UP_TIMEOUT_MS, instances / 2),
          create: () => ChildCluster.create({ mode: 'paxos', lib: build, sync, cpuProfileDir }),
        });
        results.push(result);
        if (json) console.log(JSON.stringify({ part: 'gap', ...result }));
        else console.log(`  gap, ${result.build}: ${result.instancesPerSec}/s, ${result.mbPerSec} MB/s (${result.instances} ` +
          `instances in ${result.streamMs} ms; stalls [${result.stallsMs.join(', ')}] ms); caught up ` +
          `${result.toCaughtUpMs} ms after start (first learned after ${result.toFirstLearnMs} ms), current ` +
          `${result.thenCurrentMs} ms later; writers ${result.writersDuringPerSec}/s during, ${result.writersAlonePerSec}/s ` +
          `alone; fixture ${result.fixtureMs} ms; load ${result.load}`);
      }
    }
    for (const build of builds) {
      const mine = results.filter((result) => result.build === label(build));
      const summary = {
        part: 'gap', build: label(build), runs: mine.length, instances,
        medianInstancesPerSec: median(mine.map((result) => result.instancesPerSec)),
        medianMbPerSec: median(mine.map((result) => result.mbPerSec)),
        medianToCaughtUpMs: median(mine.map((result) => result.toCaughtUpMs)),
        medianWritersDuringPerSec: median(mine.map((result) => result.writersDuringPerSec)),
        medianWritersAlonePerSec: median(mine.map((result) => result.writersAlonePerSec)),
      };
      if (json) console.log(JSON.stringify(summary));
      else console.log(`gap of ${instances}, ${summary.build}: median ${summary.medianInstancesPerSec} instances/s, ` +
        `${summary.medianMbPerSec} MB/s of ${summary.runs} runs; caught up ${summary.medianToCaughtUpMs} ms after ` +
        `start; writers ${summary.medianWritersDuringPerSec}/s during (${summary.medianWritersAlonePerSec}/s alone)`);
    }
  }
  if (part === 'snapshot' || part === 'all') {
    const keys = (flags.keys as number | undefined) ?? 200_000;
    if (keys < 1) throw new UsageError('--keys must be positive');
    const snapshotEvery = (flags['snapshot-every'] as number | undefined) ?? 1_000;
    const hold = (flags.hold as number | undefined) ?? 500;
    const results: Record<string, number>[] = [];
    for (let run = 0; run < runs; run++) {
      const result = await snapshotRun(keys, snapshotEvery, hold, sync);
      results.push(result);
      if (json) console.log(JSON.stringify({ part: 'snapshot', ...result }));
      else console.log(`  snapshot: ${result.mibPerSec} MiB/s (${result.mib} MiB received and installed in ` +
        `${result.transferAndInstallMs} ms); first byte ${result.toFirstByteMs} ms after start, caught up after ` +
        `${result.toCaughtUpMs} ms with ${result.keys} keys; load ${result.load}`);
    }
    const summary = {
      part: 'snapshot', runs, medianMibPerSec: median(results.map((result) => result.mibPerSec as number)),
      medianCaughtUpMs: median(results.map((result) => result.toCaughtUpMs as number)),
    };
    if (json) console.log(JSON.stringify(summary));
    else console.log(`snapshot install: median ${summary.medianMibPerSec} MiB/s of ${runs} runs; caught up ` +
      `${summary.medianCaughtUpMs} ms after start`);
  }
  return 0;
}

async function logRun(build: string, instances: number, sync: boolean, cpuProfileDir?: string): Promise<LogRun> {
  const cluster = await ChildCluster.create({ mode: 'paxos', lib: build, sync, cpuProfileDir });
  try {
    await Promise.all([1, 2, 3].map((id) => cluster.start(id)));
    await expectOk(cluster.request(1, { type: 'load', count: 100, inFlight: 8 }));
    await cluster.stop(3);
    await expectOk(cluster.request(1, { type: 'load', count: instances, inFlight: 64 }));
    const target = (await expectOk(cluster.request(1, { type: 'status' }))).nowInstanceId as number;
    const load = loadavg()[0] as number;
    await cluster.start(3, target);
    const report = await cluster.caughtUp(3, CATCH_UP_TIMEOUT_MS);
    const streamMs = report.caughtUpMs - report.firstLearnMs;
    const learned = report.nowInstanceId - report.firstInstance;
    return {
      build: label(build), instances: learned, startMs: Math.round(report.startMs),
      toFirstLearnMs: Math.round(report.firstLearnMs), streamMs: Math.round(streamMs),
      instancesPerSec: Math.round(learned / (streamMs / 1000)), stallsMs: report.stallsMs,
      mbPerSec: round(learned * recordBytesOnDisk(PROPOSED_VALUE_BYTES) / 1e6 / (streamMs / 1000)),
      streamingPerSec: Math.round(learned / ((streamMs - report.stallsMs.reduce((sum, ms) => sum + ms, 0)) / 1000)),
      load: round(load),
    };
  } finally {
    if (cpuProfileDir !== undefined) await cluster.stopAll();
    await cluster.destroy();
  }
}

async function snapshotRun(
  keys: number, snapshotEvery: number, hold: number, sync: boolean,
): Promise<Record<string, number>> {
  const cluster = await ChildCluster.create({ mode: 'kv', lib: THIS_BUILD, sync, snapshotEvery, holdInstances: hold });
  try {
    await Promise.all([1, 2, 3].map((id) => cluster.start(id)));
    const master = await waitForMaster(cluster, [1, 2, 3]);
    const down = master === 3 ? 2 : 3;
    const up = [1, 2, 3].filter((id) => id !== down);
    const left = (await expectOk(cluster.request(down, { type: 'status' }))).nowInstanceId as number;
    await cluster.stop(down);
    for (;;) {
      const writer = await waitForMaster(cluster, up);
      const reply = await cluster.request(writer, { type: 'load', count: keys, inFlight: 256 });
      if (reply.ok) break;
      if (reply.code !== 'NOT_MASTER') throw new Error(`load failed: ${JSON.stringify(reply)}`);
    }
    // The others must have cleaned their logs past where the stopped node left off.
    const deadline = performance.now() + 60_000;
    let target = 0;
    for (;;) {
      const statuses = await Promise.all(up.map((id) => expectOk(cluster.request(id, { type: 'status' }))));
      if (statuses.every((status) => (status.minChosenInstanceId as number) > left)) {
        target = Math.max(...statuses.map((status) => status.nowInstanceId as number));
        break;
      }
      if (performance.now() > deadline) throw new Error(`the logs were not cleaned past ${left}: ${JSON.stringify(statuses)}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    const load = loadavg()[0] as number;
    await cluster.start(down, target);
    const report: CaughtUp = await cluster.caughtUp(down, CATCH_UP_TIMEOUT_MS).catch(async (error: Error) => {
      const statuses = await Promise.all([1, 2, 3].map((id) => cluster.request(id, { type: 'status' }, 5_000)));
      throw new Error(`${error.message} (target ${target}): ${JSON.stringify(statuses)}`);
    });
    const bytes = report.metrics.checkpointBytesReceived as number;
    if (report.installedMs === undefined) {
      // Peers queue messages for a peer that is down; a short absence is made up from them and the log.
      throw new Error(`node ${down} caught up ${target - left} instances without a snapshot: write more keys`);
    }
    const transferAndInstallMs = report.installedMs - report.firstLearnMs;
    return {
      keys: report.keys ?? 0, mib: round(bytes / 2 ** 20), transferAndInstallMs: Math.round(transferAndInstallMs),
      mibPerSec: round(bytes / 2 ** 20 / (transferAndInstallMs / 1000)), toFirstByteMs: Math.round(report.firstLearnMs),
      toCaughtUpMs: Math.round(report.caughtUpMs), startMs: Math.round(report.startMs), instancesBehind: target - left,
      load: round(load),
    };
  } finally {
    await cluster.destroy();
  }
}

async function waitForMaster(cluster: ChildCluster, ids: readonly number[]): Promise<number> {
  const deadline = performance.now() + 30_000;
  for (;;) {
    for (const id of ids) {
      if ((await cluster.request(id, { type: 'status' })).serving === true) return id;
    }
    if (performance.now() > deadline) throw new Error('no KV node became master');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function expectOk(reply: Promise<{ ok: boolean; [field: string]: unknown }>): Promise<Record<string, unknown>> {
  const result = await reply;
  if (!result.ok) throw new Error(`request failed: ${JSON.stringify(result)}`);
  return result;
}

function label(build: string): string {
  return build === THIS_BUILD ? 'this build' : build;
}

function machine(): string {
  return `${cpus().length} × ${cpus()[0]?.model.trim() ?? 'unknown'}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB, ` +
    `Node ${process.version}`;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)] as number;
}

function round(value: number): number {
  return Math.round(value * 10) / 10;
}
