/**
 * `npm run bench -- propose`: proposals per second and their latency through real node processes
 * on loopback, fsync on. A closed loop of `--concurrency` callers runs inside node 1 (as a service
 * embedding the library would), spread over the groups; each caller proposes its next value as
 * soon as the last one is chosen and executed. Natural batching decides how many values share an
 * instance. `--matrix` runs the README's table in one go.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseFlags, UsageError, type FlagSpec } from '../src/cli/flags.js';
import { NodeCluster } from '../src/testing/process-cluster.js';
import { createCa, issueNodeCert } from '../src/security/cert-tool.js';
import { processTreeCpuMs } from './server-cpu.js';

const FLAGS: FlagSpec = {
  nodes: 'number', groups: 'number', concurrency: 'number', 'value-bytes': 'number', seconds: 'number',
  'max-batch': 'number', 'inline-write-bytes': 'number', sync: 'boolean', matrix: 'boolean', json: 'boolean', help: 'boolean', tls: 'boolean',
  rounds: 'number', runs: 'number', compare: 'string', 'cpu-prof': 'string',
};

export const PROPOSE_USAGE = `usage: npm run bench -- propose [--nodes 3] [--groups 1] [--concurrency 64] [--value-bytes 100]
                              [--seconds 10] [--max-batch N] [--inline-write-bytes N] [--sync=false] [--json] [--matrix]
                              [--tls [--rounds N]] [--runs N] [--compare <other builds' dist dirs>]
                              [--cpu-prof DIR]

Starts --nodes real node processes on loopback (fsync on), runs a closed loop of --concurrency
callers inside node 1 over --groups groups for --seconds (after a 1 s warm-up), and prints one JSON
line: {"nodes","groups","concurrency","valueBytes","seconds","proposalsPerSec","p50Ms","p99Ms",
"errors","valuesPerInstance","cpuUsPerProposal",...} (cpuUsPerProposal: user + system CPU of the
node processes during the measured load, in µs per proposal, the callers in node 1 included;
null where /proc cannot tell).
--matrix runs groups 1 and 8 × concurrency 1, 16, 64 (100-byte values) and prints a table (or one
JSON line per run with --json). --tls runs every cell twice, over plain TCP and then with mutual TLS
between the nodes (certificates made for the run), and prints both with the TLS/plain ratio of
proposals/s (the JSON lines say "tls": true or false). --rounds N (without --matrix) alternates plain and TLS runs N times and compares their medians: on a shared
machine, load that comes and goes then hits both alike. --runs N (not with --matrix or --tls) runs
the cell N times and then prints the machine and the median of the runs (proposals/s, p50, p99,
node CPU a proposal) with each run's 1-minute load average; --compare DIR[,DIR...] runs other builds' nodes (their
dist directories) in alternate runs, N of each, the order flipped every round (ABBA), and prints
every median and its ratio to this build (with --json: one line each for the machine, every run,
every median and every ratio). --cpu-prof DIR writes a V8 CPU profile of every node process into
DIR (not with --compare: profile one build at a time).`;

interface RunSettings {
  readonly nodes: number;
  readonly groups: number;
  readonly concurrency: number;
  readonly valueBytes: number;
  readonly seconds: number;
  readonly extraFlags: readonly string[];
  readonly tls?: boolean;
  /** Another build's dist directory whose nodes run instead of this build's. */
  readonly build?: string;
  readonly cpuProfileDir?: string;
}

export async function proposeBench(argv: readonly string[]): Promise<number> {
  const flags = parseFlags(argv, FLAGS);
  if (flags.help === true) {
    console.log(PROPOSE_USAGE);
    return 0;
  }
  const extraFlags: string[] = [];
  if (typeof flags['max-batch'] === 'number') extraFlags.push('--max-batch', String(flags['max-batch']));
  if (flags.sync === false) extraFlags.push('--sync=false');
  if (typeof flags['inline-write-bytes'] === 'number') {
    extraFlags.push('--inline-write-bytes', String(flags['inline-write-bytes']));
  }
  const base: RunSettings = {
    nodes: (flags.nodes as number | undefined) ?? 3,
    groups: (flags.groups as number | undefined) ?? 1,
    concurrency: (flags.concurrency as number | undefined) ?? 64,
    valueBytes: (flags['value-bytes'] as number | undefined) ?? 100,
    seconds: (flags.seconds as number | undefined) ?? 10,
    extraFlags, cpuProfileDir: flags['cpu-prof'] as string | undefined,
  };
  const json = flags.json === true;
  const compareTls = flags.tls === true;
  if (flags.runs !== undefined || flags.compare !== undefined) {
    // Said, not ignored: --tls and --matrix have their own rounds and rows.
    if (compareTls || flags.matrix === true) {
      throw new UsageError('--runs and --compare run one cell of plain TCP: not with --tls or --matrix');
    }
    // The other builds' nodes would run unprofiled beside this one's profiled (and so slowed) nodes.
    if (flags.compare !== undefined && base.cpuProfileDir !== undefined) {
      throw new UsageError('--cpu-prof with --compare would profile only this build\'s nodes: profile a run without it');
    }
    return await compareBuilds(base, Math.max(1, (flags.runs as number | undefined) ?? 3),
      flags.compare as string | undefined, json);
  }
  if (flags.matrix !== true) {
    const rounds = compareTls ? Math.max(1, (flags.rounds as number | undefined) ?? 1) : 1;
    const plainRuns: Record<string, unknown>[] = [];
    const secureRuns: Record<string, unknown>[] = [];
    for (let round = 0; round < rounds; round++) {
      plainRuns.push(await runOnce(base));
      console.log(JSON.stringify(plainRuns.at(-1)));
      if (!compareTls) continue;
      secureRuns.push(await runOnce({ ...base, tls: true }));
      console.log(JSON.stringify(secureRuns.at(-1)));
    }
    if (compareTls && !json) console.log(tlsSummary(medianRun(plainRuns), medianRun(secureRuns), rounds));
    return 0;
  }
  if (!json) console.log(environment());
  const rows: Record<string, unknown>[] = [];
  for (const groups of [1, 8]) {
    for (const concurrency of [1, 16, 64]) {
      for (const tls of compareTls ? [false, true] : [false]) {
        const row = await runOnce({ ...base, groups, concurrency, valueBytes: 100, tls });
        rows.push(row);
        if (json) console.log(JSON.stringify(row));
      }
    }
  }
  if (!json) printTable(rows);
  return 0;
}

/**
 * `runs` runs of one cell, alternating with another build's nodes when `compare` names one, then
 * the medians: on a shared machine, load that comes and goes hits both builds alike.
 */
async function compareBuilds(
  base: RunSettings, runs: number, compare: string | undefined, json: boolean,
): Promise<number> {
  const builds = [undefined, ...(compare === undefined ? [] : compare.split(',').map((dir) => resolve(dir)))];
  console.log(json ? JSON.stringify({ machine: environment() }) : environment());
  const results = new Map<string | undefined, Record<string, unknown>[]>(builds.map((build) => [build, []]));
  for (let run = 0; run < runs; run++) {
    // ABBA: the order flips every round, so neither build always runs first (on a warmer or a
    // cooler machine, after the other's files were just removed).
    for (const build of run % 2 === 0 ? builds : [...builds].reverse()) {
      const result = await runOnce({ ...base, build });
      results.get(build)?.push(result);
      console.log(JSON.stringify(result));
    }
  }
  const summaries = builds.map((build) => summarize(build, results.get(build) ?? []));
  for (const summary of summaries) {
    if (json) console.log(JSON.stringify(summary));
    else console.log(`${summary.build}: median of ${summary.runs} runs ${summary.proposalsPerSec} proposals/s, ` +
      `p50 ${summary.p50Ms} ms, p99 ${summary.p99Ms} ms (${base.groups} group(s), ${base.concurrency} caller(s), ` +
      `${base.valueBytes}-byte values; 1-minute load ${summary.loads.join(', ')})` +
      (summary.cpuUsPerProposal === null ? '' : `; node CPU ${summary.cpuUsPerProposal} µs a proposal`));
  }
  const [mine, ...others] = summaries;
  const myRuns = results.get(undefined) ?? [];
  for (const [index, other] of others.entries()) {
    if (mine === undefined) break;
    // Each round's two runs were next to each other in time: their ratio shrugs off load that drifts
    // over the whole comparison, which the ratio of the medians does not.
    const otherRuns = results.get(builds[index + 1]) ?? [];
    const ratios = myRuns.map((run, round) =>
      (run.proposalsPerSec as number) / Math.max(1, otherRuns[round]?.proposalsPerSec as number));
    const ratio = {
      against: other.build, proposalsPerSec: round(mine.proposalsPerSec / Math.max(1, other.proposalsPerSec)),
      medianOfRoundRatios: round(median(ratios)), lowest: round(Math.min(...ratios)),
      highest: round(Math.max(...ratios)), p50Ms: round(mine.p50Ms / Math.max(0.001, other.p50Ms)),
      cpuUsPerProposal: mine.cpuUsPerProposal === null || other.cpuUsPerProposal === null ? null
        : round(mine.cpuUsPerProposal / Math.max(0.001, other.cpuUsPerProposal)),
    };
    if (json) console.log(JSON.stringify({ ratio }));
    else console.log(`this build ÷ ${other.build}: ${ratio.proposalsPerSec.toFixed(2)}× proposals/s (median of the ` +
      `rounds' ratios ${ratio.medianOfRoundRatios.toFixed(2)}×, ${ratio.lowest.toFixed(2)}–${ratio.highest.toFixed(2)}), ` +
      `p50 ${ratio.p50Ms.toFixed(2)}×` +
      (ratio.cpuUsPerProposal === null ? '' : `, node CPU a proposal ${ratio.cpuUsPerProposal.toFixed(2)}×`));
  }
  return 0;
}

function summarize(build: string | undefined, runs: readonly Record<string, unknown>[]): {
  build: string; runs: number; proposalsPerSec: number; p50Ms: number; p99Ms: number; loads: number[];
  cpuUsPerProposal: number | null;
} {
  const of = (field: string): number => median(runs.map((run) => run[field] as number));
  const cpuKnown = runs.length > 0 && runs.every((run) => typeof run.cpuUsPerProposal === 'number');
  return {
    build: build ?? 'this build', runs: runs.length, proposalsPerSec: Math.round(of('proposalsPerSec')),
    p50Ms: round(of('p50Ms')), p99Ms: round(of('p99Ms')), loads: runs.map((run) => run.load as number),
    cpuUsPerProposal: cpuKnown ? round(of('cpuUsPerProposal')) : null,
  };
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return 0;
  const middle = Math.floor(sorted.length / 2);
  if (sorted.length % 2 === 1) return sorted[middle] as number;
  return ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
}

/** The process-cluster module of this build, or of another build's dist directory. */
async function clusterOf(build: string | undefined): Promise<typeof NodeCluster> {
  if (build === undefined) return NodeCluster;
  const module = await import(pathToFileURL(join(build, 'src/testing/process-cluster.js')).href) as
    { NodeCluster: typeof NodeCluster };
  return module.NodeCluster;
}

async function runOnce(settings: RunSettings): Promise<Record<string, unknown>> {
  const tlsDir = settings.tls === true ? await makeCertificates(settings.nodes) : undefined;
  const extraFlags = tlsDir === undefined ? settings.extraFlags : [...settings.extraFlags, '--tls-dir', tlsDir];
  const load = round(loadavg()[0] ?? 0);
  const cluster = await (await clusterOf(settings.build)).create({
    nodes: settings.nodes, groups: settings.groups, extraFlags,
    requestTimeoutMs: (settings.seconds + 60) * 1000,
    execArgv: settings.cpuProfileDir === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', settings.cpuProfileDir],
  });
  try {
    await cluster.startAll();
    // Warm up: connections, the first prepare of every group, the JIT.
    await cluster.request(1, { type: 'load', concurrency: settings.concurrency, seconds: 1, valueBytes: settings.valueBytes });
    await sleep(100);
    const pids = cluster.ids.map((id) => nodePid(cluster, id));
    const cpuBefore = nodesCpuMs(pids);
    const reply = await cluster.request(1, {
      type: 'load', concurrency: settings.concurrency, seconds: settings.seconds, valueBytes: settings.valueBytes,
    });
    const cpuAfter = nodesCpuMs(pids);
    if (!reply.ok) throw new Error(`load failed: ${reply.code} ${reply.message}`);
    const completed = reply.completed as number;
    const cpuUsPerProposal = cpuBefore === undefined || cpuAfter === undefined || completed === 0 ? null
      : round((cpuAfter - cpuBefore) * 1000 / completed);
    return {
      nodes: settings.nodes, groups: settings.groups, concurrency: settings.concurrency,
      valueBytes: settings.valueBytes, seconds: round(reply.elapsedMs as number / 1000),
      proposalsPerSec: Math.round(reply.proposalsPerSec as number), p50Ms: round(reply.p50Ms as number),
      p99Ms: round(reply.p99Ms as number), errors: reply.errors, errorsByCode: reply.errorsByCode,
      completed: reply.completed, instances: reply.instances,
      valuesPerInstance: round(reply.valuesPerInstance as number), cpuUsPerProposal,
      sync: !settings.extraFlags.includes('--sync=false'), tls: settings.tls === true,
      ...(settings.build === undefined ? {} : { build: settings.build }), load,
    };
  } finally {
    await Promise.all(cluster.ids.map((id) => cluster.stop(id)));
    await cluster.destroy();
    if (tlsDir !== undefined) await rm(tlsDir, { recursive: true, force: true });
  }
}

/**
 * Node `id`'s process id. Builds older than NodeCluster.pid keep their children in the same
 * private map, read here so that --compare against them still reports CPU; undefined otherwise.
 */
function nodePid(cluster: NodeCluster, id: number): number | undefined {
  if (typeof (cluster as Partial<NodeCluster>).pid === 'function') return cluster.pid(id);
  const running = (cluster as unknown as { running?: Map<number, { child?: { pid?: number } }> }).running;
  return running?.get(id)?.child?.pid;
}

/**
 * User and system CPU time of the node processes, in ms (undefined where /proc cannot tell): per
 * proposal, it moves less with other jobs on the machine than proposals per second do.
 */
function nodesCpuMs(pids: readonly (number | undefined)[]): number | undefined {
  let total = 0;
  for (const pid of pids) {
    const ms = processTreeCpuMs(pid);
    if (ms === undefined) return undefined;
    total += ms;
  }
  return total;
}

/** A CA and a certificate per node, as `multipaxos cert` makes them, in a fresh directory. */
async function makeCertificates(nodes: number): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'multipaxos-bench-tls-'));
  const ca = await createCa(dir);
  for (let id = 1; id <= nodes; id++) await issueNodeCert(ca, dir, id);
  return dir;
}

/** The run with the median proposals/s. */
function medianRun(runs: readonly Record<string, unknown>[]): Record<string, unknown> {
  const sorted = [...runs].sort((a, b) => (a.proposalsPerSec as number) - (b.proposalsPerSec as number));
  return sorted[Math.floor((sorted.length - 1) / 2)] as Record<string, unknown>;
}

function tlsSummary(plain: Record<string, unknown>, secure: Record<string, unknown>, rounds: number): string {
  const ratio = (secure.proposalsPerSec as number) / Math.max(1, plain.proposalsPerSec as number);
  return `TLS${rounds > 1 ? ` (medians of ${rounds} alternating runs)` : ''}: ${secure.proposalsPerSec} proposals/s ` +
    `against ${plain.proposalsPerSec} over plain TCP (${(ratio * 100).toFixed(0)}%); p50 ${secure.p50Ms} ms against ` +
    `${plain.p50Ms} ms`;
}

function environment(): string {
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  return `${cpus().length} × ${cpu}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}`;
}

function printTable(rows: readonly Record<string, unknown>[]): void {
  const withTls = rows.some((row) => row.tls === true);
  console.log(`| groups | concurrency |${withTls ? ' transport |' : ''} proposals/s | p50 ms | p99 ms | values/instance | errors |`);
  console.log(`|---|---|${withTls ? '---|' : ''}---|---|---|---|---|`);
  for (const row of rows) {
    console.log(`| ${row.groups} | ${row.concurrency} |${withTls ? ` ${row.tls === true ? 'mTLS' : 'TCP'} |` : ''} ` +
      `${row.proposalsPerSec} | ${row.p50Ms} | ${row.p99Ms} | ${row.valuesPerInstance} | ${row.errors} |`);
  }
}

function round(value: number): number {
  return Math.round(value * 100) / 100;
}
