/**
 * `multipaxos sim`: run the deterministic simulator over many seeds (in parallel worker threads),
 * or replay one seed with its trace. Exit status 1 when any seed fails.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { addRun, emptySummary, finishSummary, type SimSummary } from '../testing/sim/sim-summary.js';
import { CANARIES, runSeed, type CanaryName, type SimRunResult } from '../testing/sim/simulator.js';
import { parseFlags, UsageError, type FlagSpec } from './flags.js';

const FLAGS: FlagSpec = {
  seeds: 'number', start: 'number', seed: 'number', json: 'boolean', trace: 'boolean', canary: 'string',
  jobs: 'number', 'stop-on-failure': 'boolean', help: 'boolean',
};

export const SIM_USAGE = `usage: multipaxos sim --seeds N [--start S] [--jobs J] [--json] [--canary NAME] [--stop-on-failure]
       multipaxos sim --seed S [--trace] [--canary NAME]

Runs whole simulated clusters (3 or 5 nodes, the real core and runtime over a simulated network,
disks and clocks) under crashes, partitions, pauses, message loss, duplication and reordering, and
checks agreement, promise keeping, execution order and durability after every step.
  --seeds N          how many seeds to run (default 100), from --start (default 1)
  --jobs J           worker threads (default: the number of cores)
  --json             print one JSON summary object on the last line
  --canary NAME      inject a known bug (${CANARIES.join(', ')}); the run must then fail
  --seed S --trace   replay one seed and print its event trace`;

export async function simCommand(argv: readonly string[]): Promise<number> {
  const flags = parseFlags(argv, FLAGS);
  if (flags.help === true) {
    console.log(SIM_USAGE);
    return 0;
  }
  const canary = flags.canary as string | undefined;
  if (canary !== undefined && !(CANARIES as readonly string[]).includes(canary)) {
    throw new UsageError(`--canary must be one of ${CANARIES.join(', ')}; got "${canary}"`);
  }
  if (typeof flags.seed === 'number') return replaySeed(flags.seed, canary as CanaryName | undefined, flags.trace === true);
  if (flags.trace === true) throw new UsageError('--trace replays one seed: give it with --seed S');
  const count = typeof flags.seeds === 'number' ? flags.seeds : 100;
  if (count < 1) throw new UsageError(`--seeds must be at least 1; got ${count}`);
  if (typeof flags.jobs === 'number' && flags.jobs < 1) throw new UsageError(`--jobs must be at least 1; got ${flags.jobs}`);
  const start = typeof flags.start === 'number' ? flags.start : 1;
  const jobs = Math.min(typeof flags.jobs === 'number' ? flags.jobs : availableParallelism(), count);
  const summary = await runMany(start, count, jobs, canary as CanaryName | undefined, flags['stop-on-failure'] === true,
    flags.json === true);
  printSummary(summary, canary, flags.json === true);
  return summary.failures > 0 ? 1 : 0;
}

async function replaySeed(seed: number, canary: CanaryName | undefined, trace: boolean): Promise<number> {
  const result = await runSeed({ seed, canary, trace });
  if (trace) for (const line of result.trace) console.log(line);
  console.log(`seed ${seed}: ${result.ok ? 'ok' : 'FAILED'} (${result.config})`);
  console.log(`  instances chosen ${result.instancesChosen}, executions ${result.executions}, ` +
    `crashes ${result.faults.crashes}, partitions ${result.faults.partitions}, pauses ${result.faults.pauses}, ` +
    `simulated ${(result.simulatedMs / 1000).toFixed(1)} s, trace hash ${result.traceHash}`);
  const stall = result.longestStall;
  if (stall !== null) {
    console.log(`  longest wait for a decision: ${Math.round(stall.ms)} ms in group ${stall.groupIndex} from ` +
      `${Math.round(stall.fromMs)} ms, nodes {${stall.core.join(',')}} healthy and connected`);
  }
  const { checkpoints } = result;
  if (result.config.includes('checkpoints=')) {
    console.log(`  snapshots saved ${checkpoints.saved}, checkpoints sent ${checkpoints.sent}, installed ` +
      `${checkpoints.installed}, crashes during checkpoint steps ${result.faults.checkpointCrashes}`);
  }
  for (const violation of result.violations) console.log(`  violation: ${violation}`);
  return result.ok ? 0 : 1;
}

async function runMany(start: number, count: number, jobs: number, canary: CanaryName | undefined,
  stopOnFailure: boolean, quiet: boolean): Promise<SimSummary> {
  const began = performance.now();
  const summary = emptySummary(canary ?? null);
  const seeds = Array.from({ length: count }, (_, index) => start + index);
  const shares = Array.from({ length: jobs }, (_, job) => seeds.filter((_, index) => index % jobs === job));
  const progress = new Progress(count, quiet);
  await Promise.all(shares.map((share) => new Promise<void>((resolve, reject) => {
    const worker = new Worker(new URL('./sim-worker.js', import.meta.url), {
      workerData: { seeds: share, canary, stopOnFailure },
    });
    worker.on('message', (result: SimRunResult) => {
      addRun(summary, result);
      if (!result.ok) reportFailure(result, canary);
      progress.update(summary);
    });
    worker.on('error', reject);
    worker.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`simulator worker exited with ${code}`))));
  })));
  progress.done(summary);
  return finishSummary(summary, performance.now() - began);
}

function reportFailure(result: SimRunResult, canary: CanaryName | undefined): void {
  const canaryFlag = canary === undefined ? '' : ` --canary ${canary}`;
  console.log(`seed ${result.seed} FAILED (${result.config})`);
  for (const violation of result.violations.slice(0, 3)) console.log(`  ${violation.split('\n')[0]}`);
  console.log(`  replay: npm run sim -- --seed ${result.seed}${canaryFlag} --trace`);
}

class Progress {
  private lastPrinted = 0;
  private readonly total: number;
  private readonly quiet: boolean;

  constructor(total: number, quiet: boolean) {
    this.total = total;
    this.quiet = quiet;
  }

  update(summary: SimSummary): void {
    const now = performance.now();
    if (now - this.lastPrinted < 2000 && summary.seeds < this.total) return;
    this.lastPrinted = now;
    const line = `[${String(summary.seeds).padStart(String(this.total).length)}/${this.total}] ` +
      `failures ${summary.failures}, instances chosen ${summary.instancesChosen}, crashes ${summary.crashes}`;
    if (process.stderr.isTTY && !this.quiet) process.stderr.write(`\r${line}`);
    else process.stderr.write(`${line}\n`);
  }

  done(summary: SimSummary): void {
    if (process.stderr.isTTY && !this.quiet && summary.seeds > 0) process.stderr.write('\n');
  }
}

function printSummary(summary: SimSummary, canary: string | undefined, json: boolean): void {
  const label = canary === undefined ? '' : ` with canary ${canary}`;
  console.log(`${summary.seeds} seeds${label}: ${summary.failures} failed; ${summary.instancesChosen} instances chosen, ` +
    `${summary.crashes} crashes (${summary.crashesDuringWrite} mid-write), ${summary.partitions} partitions, ` +
    `${summary.pauses} pauses, ${summary.messages} messages (${summary.messagesLost} lost, ` +
    `${summary.messagesDuplicated} duplicated); ${summary.simulatedSeconds} simulated s in ${summary.wallSeconds} s ` +
    `(${summary.seedsPerSecond} seeds/s, ${summary.instancesPerSecond} instances/s)`);
  if (summary.checkpointSeeds > 0) {
    console.log(`checkpoints in ${summary.checkpointSeeds} seeds: ${summary.snapshotsSaved} snapshots saved, ` +
      `${summary.checkpointsSent} sent, ${summary.checkpointsInstalled} installed, ${summary.checkpointCrashes} crashes ` +
      `during a save, transfer or install; ${summary.restoresChecked} restored states and ${summary.statesCompared} ` +
      `executed states checked, ${summary.ackedViaSnapshot} acknowledged values held through a snapshot`);
  }
  const worst = summary.worstStall;
  if (worst !== null) {
    console.log(`longest wait of a healthy majority for a decision, per seed: median ${summary.stallMedianMs} ms, ` +
      `90th percentile ${summary.stallP90Ms} ms, worst ${worst.ms} ms (seed ${worst.seed}, group ${worst.groupIndex}, ` +
      `from ${worst.fromMs} ms)`);
  }
  if (json) console.log(JSON.stringify(summary));
}
