// The nemesis driver: runs INSIDE the run's network namespace (test/nemesis/run.ts or the CI test
// start it with `ip netns exec`), as root. It starts the KV nodes, the clients and a fixed or timed
// schedule of faults, then checks everything and writes, to --out: history.json (every operation
// and fault), timeline.svg (the picture) and result.json (figures and verdicts, which the CI test
// asserts on). It exits 0 when every check passed, 1 when one failed, 2 when the run could not be done.
//
//   node dist/test/nemesis/driver.js --out DIR [--seed N] [--faults a,b,...] [--minutes M] ...
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { KvClient } from '../../src/kv/client.js';
import { groupOfKey } from '../../src/kv/key-hash.js';
import { kvModel } from '../../src/testing/kv-model.js';
import { checkLinearizability } from '../../src/testing/linearizability.js';
import { forgeStaleRead } from '../support/kv-histories.js';
import { servingMaster } from '../support/kv-nemesis.js';
import { seededRandom } from '../support/random.js';
import { inventedStaleReads, longestGap, lostWrites, successfulWrites } from './checks.js';
import { AVAILABILITY_ASSERTED, DEFAULT_FAULTS, FAULT_KINDS, planFault, shuffled, type FaultKind } from './faults.js';
import { Firewall } from './firewall.js';
import { historyEntries, type FaultEntry, type HistoryFile } from './history-file.js';
import { endpointOf, faketimeAvailable, KvNodes, nodeAddress } from './nodes.js';
import { timelineSvg } from './timeline-svg.js';
import { Workload } from './workload.js';

/** The drift bound the master lease assumes (DEFAULT_MASTER_OPTIONS.driftBound, which kv serve uses). */
const DRIFT_BOUND = 0.01;
/** Clock rates stay this far inside the drift bound. */
const SKEW = 0.008;

export interface DriverOptions {
  readonly out: string;
  /**
   * Where the nodes keep their data (default: a new temporary directory). Whoever starts the driver
   * should give one and delete it afterwards: a driver that is killed cannot.
   */
  readonly data?: string;
  readonly seed: number;
  readonly faults: readonly FaultKind[];
  /** 0: each fault once, in an order drawn from the seed (the CI schedule); else faults until then. */
  readonly minutes: number;
  readonly nodes: number;
  readonly groups: number;
  readonly leaseMs: number;
  readonly holdMs: number;
  readonly quietMs: number;
  readonly kvClients: number;
  readonly plainClients: number;
  readonly clientTimeoutMs: number;
  readonly skew: boolean;
  readonly keys: number;
}

export interface FaultFigures {
  readonly kind: string;
  readonly label: string;
  readonly start: number;
  readonly end: number;
  /**
   * Longest time with no successful write, from the fault's start to the next fault (or the end), in
   * each group (by group index) and in the worst one.
   */
  readonly groupGapsMs: readonly number[];
  readonly worstGroupGapMs: number;
  /** The same per KvClient (the worst one) and per plain HTTP client (the worst one). */
  readonly kvClientGapMs: number;
  readonly plainClientGapMs: number;
  readonly asserted: boolean;
}

export interface DriverResult {
  readonly seed: number;
  readonly passed: boolean;
  readonly failures: readonly string[];
  readonly notes: readonly string[];
  readonly leaseMs: number;
  readonly groupBoundMs: number;
  readonly clientBoundMs: number;
  readonly operations: Readonly<Record<string, number>>;
  readonly staleReads: number;
  readonly linearizability: {
    readonly result: string; readonly keys: number; readonly checkedOperations: number; readonly ms: number;
    /** The same history with one read forged stale was refused (the check can fail). */
    readonly forgedRejected: boolean;
  };
  readonly faults: readonly FaultFigures[];
  readonly clockRates: Readonly<Record<string, number>>;
  readonly loadSeconds: number;
  readonly files: { readonly history: string; readonly timeline: string };
}

/**
 * The availability bounds. After a fault takes the master away, the others wait out the lease they
 * last saw granted: at most lease / (1 − drift) of real time on a clock running slow by the drift.
 * The first node whose wait ends bids at once; one round of consensus (the bid), the new master's
 * catch-up on the log and its fence follow: `ELECTION_MS` on a shared, loaded 2-core machine. The
 * clients find the new master meanwhile, but a KvClient gives up on a silent node only after its
 * attempt timeout (1 s), and was seen to spend two of them on one failover (its next call, while the
 * other nodes still named the old master, went to it again). So per group:
 * lease / (1 − drift) + 2 × 1 s + ELECTION_MS. A client whose call began just before the fault may
 * also spend that call's whole timeout on it.
 */
const ATTEMPT_TIMEOUT_MS = 1_000;
const ELECTION_MS = 1_000;

function bounds(options: DriverOptions): { group: number; client: number } {
  const group = Math.ceil(options.leaseMs / (1 - DRIFT_BOUND)) + 2 * ATTEMPT_TIMEOUT_MS + ELECTION_MS;
  return { group, client: group + options.clientTimeoutMs };
}

function keysByGroup(count: number, groups: number): string[][] {
  // Spread over the groups evenly, so that every fault hits keys under load.
  const byGroup: string[][] = Array.from({ length: groups }, () => []);
  const perGroup = Math.ceil(count / groups);
  for (let index = 0; byGroup.some((keys) => keys.length < perGroup); index++) {
    const key = `k${index}`;
    const list = byGroup[groupOfKey(key, groups)] as string[];
    if (list.length < perGroup) list.push(key);
  }
  return byGroup;
}

export async function runNemesis(options: DriverOptions, log: (line: string) => void): Promise<DriverResult> {
  const random = seededRandom(options.seed);
  const ids = Array.from({ length: options.nodes }, (_, index) => index + 1);
  const notes: string[] = [];
  const failures: string[] = [];
  const dataRoot = options.data ?? mkdtempSync(join(tmpdir(), 'multipaxos-nemesis-'));
  mkdirSync(dataRoot, { recursive: true });
  mkdirSync(options.out, { recursive: true });
  let faults = [...options.faults];

  // A clock rate per node within the drift bound, from the seed: the extremes are always used.
  const clockRates: Record<string, number> = {};
  if (options.skew) {
    if (faketimeAvailable()) {
      const order = shuffled(random, ids);
      order.forEach((id, index) => {
        const rate = index === 0 ? 1 - SKEW : index === 1 ? 1 + SKEW : 1 + (random.next() * 2 - 1) * SKEW;
        clockRates[String(id)] = Math.round(rate * 10_000) / 10_000;
      });
    } else {
      notes.push('clock skew left out: libfaketime is not installed (apt-get install -y faketime)');
    }
  }

  // The full-disk fault needs a node whose data lives on a small tmpfs of its own.
  let smallDiskNode: number | undefined;
  let mounted: string | undefined;
  if (faults.includes('disk-full')) {
    smallDiskNode = ids[ids.length - 1] as number;
    const dir = join(dataRoot, `node-${smallDiskNode}`);
    mkdirSync(dir, { recursive: true });
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=48m', 'tmpfs', dir], { stdio: 'pipe' });
      mounted = dir;
    } catch (error) {
      notes.push(`disk-full left out: cannot mount a tmpfs (${(error as Error).message.split('\n')[0]})`);
      faults = faults.filter((kind) => kind !== 'disk-full');
      smallDiskNode = undefined;
    }
  }

  const nodes = new KvNodes({
    ids, groups: options.groups, leaseMs: options.leaseMs, dataRoot,
    clockRate: (id) => clockRates[String(id)] ?? 1,
  });
  const firewall = new Firewall(nodeAddress);
  const probe = new KvClient({ endpoints: ids.map(endpointOf), timeoutMs: 1_000 });
  const masterOf = async (group: number, timeoutMs = 5_000): Promise<number | undefined> => {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const live = nodes.started().filter((id) => nodes.isRunning(id)).map(endpointOf);
      const master = await servingMaster(probe, live, group);
      if (master !== undefined || performance.now() > deadline) return master;
      await sleep(100);
    }
  };
  const keysOfGroup = keysByGroup(options.keys, options.groups);
  const keys = keysOfGroup.flat();
  const workload = new Workload({
    endpoints: ids.map(endpointOf), kvClients: options.kvClients, plainClients: options.plainClients,
    keysOf: (index) => keysOfGroup[index % options.groups] as string[],
    timeoutMs: options.clientTimeoutMs, randomFor: (index) => seededRandom(options.seed * 31 + index + 1),
  });
  const faultLog: FaultEntry[] = [];
  /** The current members: replace-member changes them. */
  const members = [...ids];
  let origin = performance.now();
  let loadEnd = origin;
  let workloadStarted = false;
  // A failure of the run itself is rethrown below, inside the block whose cleanup always runs.
  let runFailure: { error: unknown } | undefined;
  try {
    await firewall.install();
    await nodes.startAll();
    for (let group = 0; group < options.groups; group++) {
      if (await masterOf(group, 20_000) === undefined) throw new Error(`no master for group ${group} within 20 s of the start`);
    }
    log(`cluster of ${ids.length} up (${ids.map(nodeAddress).join(', ')}); clock rates ${JSON.stringify(clockRates)}`);

    origin = performance.now();
    workload.start();
    workloadStarted = true;
    await sleep(options.quietMs);
    const context = {
      nodes, firewall, random, ids: members, groups: options.groups, leaseMs: options.leaseMs, smallDiskNode,
      masterOf: (group: number) => masterOf(group),
    };
    const schedule = options.minutes > 0 ? undefined : shuffled(random, faults);
    const until = origin + options.minutes * 60_000;
    for (let index = 0; schedule === undefined ? performance.now() < until : index < schedule.length; index++) {
      const kind = schedule === undefined ? random.pick(faults) : schedule[index] as FaultKind;
      const fault = await planFault(kind, context);
      const start = performance.now();
      await fault.inject();
      await sleep(Math.max(options.holdMs, fault.minimumHoldMs));
      await fault.heal();
      const end = performance.now();
      const outcome = fault.outcome?.() ?? '';
      faultLog.push({
        kind, label: fault.label, nodes: fault.nodes, start: start - origin, end: end - origin,
        ...(outcome === '' ? {} : { outcome }),
      });
      log(`${((start - origin) / 1000).toFixed(1)} s: ${fault.label} for ${Math.round(end - start)} ms` +
        `${outcome === '' ? '' : ` (${outcome})`}`);
      await sleep(options.quietMs);
    }
  } catch (error) {
    runFailure = { error };
  } finally {
    if (workloadStarted) await workload.stop();
    loadEnd = performance.now();
    // Heal whatever is left before the final reads: no cuts, every node thawed and running.
    await firewall.heal().catch(() => {});
  }

  try {
    if (runFailure !== undefined) throw runFailure.error;
    for (const id of members) {
      nodes.resume(id);
      if (!nodes.isRunning(id)) await nodes.start(id);
    }
    // Final linearizable reads, recorded with the rest: they must see every acknowledged write.
    const final = new Map<string, { value: string | null; version: number }>();
    const reader = new KvClient({ endpoints: members.map(endpointOf), timeoutMs: 5_000 });
    try {
      for (const key of keys) {
        const deadline = performance.now() + 30_000;
        while (!final.has(key) && performance.now() < deadline) {
          const output = await workload.recorder.perform('final', reader, { kind: 'get', key });
          if (output !== undefined && !('ok' in output)) final.set(key, output);
        }
        if (!final.has(key)) failures.push(`no final read of ${key} succeeded within 30 s`);
      }
    } finally {
      reader.close();
    }
    // Every node ends in the same state: stale reads of every key from every node agree with the
    // final reads (a node may need a moment to learn the last values).
    const disagreement = await waitForIdenticalState(members, keys, final);
    if (disagreement !== undefined) failures.push(`the nodes' final states differ: ${disagreement}`);

    const entries = workload.recorder.entries();
    const history = workload.recorder.history();
    const checkStarted = performance.now();
    const check = checkLinearizability(kvModel, history);
    const checkMs = Math.round(performance.now() - checkStarted);
    if (check.result !== 'ok') failures.push(`not linearizable (${check.result}): ${check.explanation ?? ''}`);
    // The check can fail: the same history with one read made stale must be refused.
    const forged = forgeStaleRead(history);
    const forgedRejected = forged !== undefined && checkLinearizability(kvModel, forged.history).result === 'illegal';
    if (!forgedRejected) failures.push('the checker accepted the history with one read made stale');
    for (const problem of inventedStaleReads(workload.staleReads, entries).slice(0, 5)) failures.push(problem);
    for (const lost of lostWrites(entries, final)) failures.push(`acknowledged write lost: ${lost}`);

    const { group: groupBoundMs, client: clientBoundMs } = bounds(options);
    const writes = successfulWrites(entries, (key) => groupOfKey(key, options.groups));
    const figures: FaultFigures[] = faultLog.map((fault, index) => {
      const from = origin + fault.start;
      const to = origin + (faultLog[index + 1]?.start ?? loadEnd - origin);
      const worst = (kind: string): number => Math.max(0, ...workload.clients.filter((client) => client.kind === kind)
        .map((client) => longestGap(writes.byClient.get(client.id) ?? [], from, to)));
      const asserted = AVAILABILITY_ASSERTED.has(fault.kind as FaultKind);
      const groupGapsMs = keysOfGroup.map((_, group) =>
        Math.round(longestGap(writes.byGroup.get(group) ?? [], from, to)));
      const figure: FaultFigures = {
        kind: fault.kind, label: fault.label, start: fault.start, end: fault.end,
        groupGapsMs, worstGroupGapMs: Math.max(...groupGapsMs),
        kvClientGapMs: Math.round(worst('kv-client')), plainClientGapMs: Math.round(worst('plain-http')), asserted,
      };
      if (asserted && figure.worstGroupGapMs > groupBoundMs) {
        failures.push(`${fault.label}: no write succeeded in a group for ${figure.worstGroupGapMs} ms ` +
          `(bound ${groupBoundMs} ms; per group ${groupGapsMs.join(', ')} ms)`);
      }
      if (asserted && figure.kvClientGapMs > clientBoundMs) {
        failures.push(`${fault.label}: a KvClient had no successful write for ${figure.kvClientGapMs} ms ` +
          `(bound ${clientBoundMs} ms)`);
      }
      return figure;
    });

    const counts = workload.recorder.counts();
    const staleOk = workload.staleReads.filter((read) => read.output !== undefined).length;
    const historyPath = join(options.out, 'history.json');
    const timelinePath = join(options.out, 'timeline.svg');
    const file: HistoryFile = {
      seed: options.seed, leaseMs: options.leaseMs, nodes: nodes.started(), clockRates, clients: workload.clients,
      faults: faultLog, operations: historyEntries(entries, workload.staleReads, origin), end: loadEnd - origin,
    };
    writeFileSync(historyPath, JSON.stringify(file));
    try {
      writeFileSync(timelinePath, timelineSvg(file));
    } catch (error) {
      failures.push(`the timeline could not be drawn: ${(error as Error).message}`);
    }
    const result: DriverResult = {
      seed: options.seed, passed: failures.length === 0, failures, notes, leaseMs: options.leaseMs,
      groupBoundMs, clientBoundMs,
      operations: { total: entries.length + workload.staleReads.length, ok: counts.ok, conflicts: counts.conflicts,
        unknown: counts.unknown, failed: counts.failed, staleReadsOk: staleOk },
      staleReads: workload.staleReads.length,
      linearizability: {
        result: check.result, keys: check.partitions, checkedOperations: history.length, ms: checkMs, forgedRejected,
      },
      faults: figures, clockRates, loadSeconds: Math.round((loadEnd - origin) / 100) / 10,
      files: { history: historyPath, timeline: timelinePath },
    };
    writeFileSync(join(options.out, 'result.json'), JSON.stringify(result, null, 2));
    return result;
  } finally {
    probe.close();
    await nodes.stopAll();
    for (const id of nodes.started()) writeFileSync(join(options.out, `node-${id}.log`), nodes.output(id));
    await firewall.remove();
    if (mounted !== undefined) {
      try {
        execFileSync('umount', ['-l', mounted], { stdio: 'pipe' });
      } catch {
        // The mount namespace goes away with the run anyway.
      }
    }
    rmSync(dataRoot, { recursive: true, force: true, maxRetries: 3 });
  }
}

async function waitForIdenticalState(
  ids: readonly number[], keys: readonly string[],
  final: ReadonlyMap<string, { value: string | null; version: number }>,
): Promise<string | undefined> {
  const deadline = performance.now() + 30_000;
  let last = '';
  const clients = ids.map((id) => new KvClient({ endpoints: [endpointOf(id)], timeoutMs: 2_000 }));
  try {
    for (;;) {
      const differences: string[] = [];
      for (const key of keys) {
        const expected = final.get(key);
        for (const [index, client] of clients.entries()) {
          const seen = await client.get(key, { stale: true }).catch((error: Error) => error);
          const same = !(seen instanceof Error) && expected !== undefined && seen.value === expected.value &&
            seen.version === expected.version;
          if (!same) {
            differences.push(`node ${ids[index]} has ${key} = ${seen instanceof Error ? seen.message
              : `${JSON.stringify(seen.value)} @${seen.version}`}, the final read ${JSON.stringify(expected?.value)} ` +
              `@${expected?.version}`);
          }
        }
      }
      if (differences.length === 0) return undefined;
      last = differences.slice(0, 3).join('; ');
      if (performance.now() > deadline) return last;
      await sleep(250);
    }
  } finally {
    for (const client of clients) client.close();
  }
}

export function printTable(result: DriverResult, log: (line: string) => void): void {
  const pad = (text: string, width: number): string => text.padEnd(width);
  log(`${pad('fault', 48)} ${pad('at', 8)} ${pad('held', 7)} ${pad('no write: groups', 17)} ${pad('KvClient', 9)} ` +
    `${pad('HTTP client', 11)} asserted`);
  for (const fault of result.faults) {
    log(`${pad(fault.label, 48)} ${pad(`${(fault.start / 1000).toFixed(1)} s`, 8)} ` +
      `${pad(`${((fault.end - fault.start) / 1000).toFixed(1)} s`, 7)} ${pad(`${fault.groupGapsMs.join(', ')} ms`, 17)} ` +
      `${pad(`${fault.kvClientGapMs} ms`, 9)} ${pad(`${fault.plainClientGapMs} ms`, 11)} ` +
      `${fault.asserted ? `≤ ${result.groupBoundMs} / ${result.clientBoundMs} ms` : 'safety only'}`);
  }
}

function parseArgs(argv: readonly string[]): DriverOptions {
  const values = new Map<string, string>();
  for (let index = 0; index < argv.length; index++) {
    const arg = argv[index] as string;
    if (!arg.startsWith('--')) throw new Error(`unexpected argument ${arg}`);
    const [name, inline] = arg.slice(2).split('=', 2) as [string, string | undefined];
    if (inline !== undefined) values.set(name, inline);
    else if (['no-skew'].includes(name)) values.set(name, 'true');
    else values.set(name, argv[++index] ?? '');
  }
  const number = (name: string, fallback: number): number => {
    const value = values.has(name) ? Number(values.get(name)) : fallback;
    if (!Number.isFinite(value) || value < 0) throw new Error(`--${name} must be a non-negative number`);
    return value;
  };
  const out = values.get('out');
  if (out === undefined || out === '') throw new Error('--out DIR is required');
  const faults = (values.get('faults') ?? DEFAULT_FAULTS.join(',')).split(',').filter((kind) => kind !== '');
  for (const kind of faults) {
    if (!(FAULT_KINDS as readonly string[]).includes(kind)) {
      throw new Error(`unknown fault ${kind}; the faults are ${FAULT_KINDS.join(', ')}`);
    }
  }
  const data = values.get('data');
  return {
    out, ...(data === undefined || data === '' ? {} : { data }), seed: number('seed', Math.floor(Math.random() * 2 ** 31)), faults: faults as FaultKind[],
    minutes: number('minutes', 0), nodes: number('nodes', 5), groups: number('groups', 2),
    leaseMs: number('lease', 1_000), holdMs: number('hold', 6_000), quietMs: number('quiet', 4_000),
    kvClients: number('kv-clients', 4), plainClients: number('plain-clients', 2),
    clientTimeoutMs: number('client-timeout', 3_000), skew: !values.has('no-skew'), keys: number('keys', 8),
  };
}

async function main(): Promise<number> {
  let options: DriverOptions;
  try {
    options = parseArgs(process.argv.slice(2));
  } catch (error) {
    console.error((error as Error).message);
    return 2;
  }
  const log = (line: string): void => console.log(line);
  log(`nemesis seed ${options.seed} (--seed ${options.seed} repeats the schedule and the clients' choices); ` +
    `faults: ${options.faults.join(', ')}`);
  const result = await runNemesis(options, log);
  for (const note of result.notes) log(`note: ${note}`);
  printTable(result, log);
  log(`${result.operations.total} operations in ${result.loadSeconds} s: ${JSON.stringify(result.operations)}; ` +
    `linearizability ${result.linearizability.result} over ${result.linearizability.keys} keys ` +
    `(${result.linearizability.checkedOperations} operations, ${result.linearizability.ms} ms)`);
  log(`history: ${result.files.history}`);
  log(`timeline: ${result.files.timeline}`);
  for (const failure of result.failures) log(`FAILED: ${failure}`);
  log(result.passed ? 'nemesis: every check passed' : `nemesis: ${result.failures.length} checks failed`);
  return result.passed ? 0 : 1;
}

if (process.argv[1]?.endsWith('driver.js') === true) {
  // SIGTERM from the outside (a timeout): exit, which closes the nodes' IPC channels, so they stop too.
  process.once('SIGTERM', () => process.exit(3));
  main().then((code) => process.exit(code), (error: unknown) => {
    console.error(error instanceof Error ? error.stack : error);
    process.exit(2);
  });
}
