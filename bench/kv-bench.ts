/**
 * `npm run bench -- kv`: the same closed-loop put workload against a local 3-node cluster of ours
 * and a local 3-member etcd cluster (etcd's defaults, fsync on), in one run. Each system's cluster
 * is started once and every (value size, clients) cell runs against it; the table puts the two side
 * by side with the ratio of their throughputs. etcd is whatever `etcd` is on PATH (or --etcd-bin);
 * nothing is downloaded, and without etcd only ours runs.
 *
 * Two shapes of client: KvClient to each key's master (ours, ours-no-sessions, ours-tls) against
 * etcd's leader (etcd); and plain HTTP/1.1 spread over every node, as users reach the service
 * through a load balancer (ours-http, a default `cluster up` of 3 groups), against etcd spread the
 * same way (etcd-http) and a Node HTTP server with no consensus and no disk (no-consensus), all
 * three driven by one generator (plain-http-load.ts).
 */
import { randomBytes } from 'node:crypto';
import { cpus, totalmem } from 'node:os';
import { runClosedLoop, type ClosedLoopResult } from './closed-loop.js';
import { ETCD_NOT_FOUND, etcdVersion, findEtcd, startEtcdTarget, type KvBenchTarget } from './etcd-cluster.js';
import type { OursTargetOptions } from './kv-ours-target.js';
import type { ServerCpu } from './server-cpu.js';
import { parseFlags, UsageError, type FlagSpec } from '../src/cli/flags.js';
import { masterPlacementOf, type MastersFlag } from '../src/cli/masters-flag.js';

const FLAGS: FlagSpec = {
  values: 'string', clients: 'string', 'duration-ms': 'number', 'warmup-ms': 'number', systems: 'string',
  'etcd-bin': 'string', groups: 'number', json: 'boolean', help: 'boolean', 'system-warmup-ms': 'number',
  'http-groups': 'number', 'ours-cli': 'string', 'node-cpu-prof': 'string', masters: 'string',
};
/** Clients of the one-time warm-up of each system after it starts. */
const SYSTEM_WARMUP_CLIENTS = 16;
/** ours-no-sessions: our cluster again, with KvClient's sessions off, to show what exactly-once costs. */
const SYSTEMS = ['ours', 'ours-no-sessions', 'ours-tls', 'etcd', 'ours-http', 'no-consensus', 'etcd-http'] as const;
/** ours-tls (ours with `cluster up --tls`) is asked for by name: `--systems ours,ours-tls`. */
const DEFAULT_SYSTEMS = ['ours', 'ours-no-sessions', 'etcd', 'ours-http', 'no-consensus', 'etcd-http'];
/** The systems driven by plain HTTP spread over every node (the second table). */
const PLAIN_HTTP_SYSTEMS: readonly KvSystem[] = ['ours-http', 'no-consensus', 'etcd-http'];
/** Groups of ours-http: `cluster up`'s default. */
const DEFAULT_HTTP_GROUPS = 3;
export type KvSystem = (typeof SYSTEMS)[number];

export const KV_USAGE = `usage: npm run bench -- kv [--values 100,2048] [--clients 1,16,64,256] [--duration-ms 5000]
                         [--warmup-ms 1000] [--systems ours,ours-no-sessions,etcd,ours-http,no-consensus,etcd-http]
                         [--etcd-bin PATH] [--groups 1] [--http-groups 3] [--masters together|spread]
                         [--node-cpu-prof DIR] [--json]

Runs the same closed-loop put workload against a local 3-node cluster of ours and a local 3-member
etcd cluster (etcd's defaults: fsync on), one system after the other, and prints both side by side
with the ratio of their throughputs. Each system's cluster starts once; then, for every value size
and every client count, that many clients each keep one put in flight (key bench-{client}-{seq},
a fixed value of ASCII letters) for --warmup-ms unmeasured and --duration-ms measured. Puts go to
the leader: our master, etcd's leader through its v3 JSON gateway (POST /v3/kv/put). Ours runs
twice: with KvClient's sessions (exactly-once writes, the default) and without (ours-no-sessions).
Then the service as users reach it: plain HTTP/1.1 (keep-alive, no client library) spread
round-robin over the three nodes of a default cluster up (ours-http: a node that is not the key's
master forwards the put), the same generator spread over etcd's three members (etcd-http: a
follower hands the put to its leader), and the same generator against a Node HTTP/1.1 server that
parses the same JSON body and answers like our PUT from memory, with no consensus and no disk
(no-consensus); printed as a second table with ours-http/etcd-http and ours-http/no-consensus.
  --values LIST      value sizes in bytes (default 100,2048)
  --clients LIST     concurrent clients (default 1,16,64,256)
  --duration-ms N    measured time per cell (default 5000)
  --warmup-ms N      unmeasured time before each cell (default 1000)
  --system-warmup-ms N  unmeasured puts (${SYSTEM_WARMUP_CLIENTS} clients) once after each system starts, before any cell
                     (default 5000): our nodes run JIT-compiled JavaScript, which needs a few thousand
                     requests to reach steady speed; etcd gets the same warm-up
  --systems LIST     of ours, ours-no-sessions, ours-tls, etcd, ours-http, no-consensus, etcd-http (default
                     all but ours-tls; run in that order). ours-tls is ours with cluster up --tls
                     (mutual TLS, HTTPS, a token): --systems ours,ours-tls measures the cost of TLS in
                     one run, printed as a table of its own
  --etcd-bin PATH    the etcd binary (default: etcd on PATH; without one, only ours runs)
  --groups N         groups of ours, ours-no-sessions and ours-tls (default 1)
  --http-groups N    groups of ours-http (default 3, cluster up's default)
  --masters P        where the masters of our clusters' groups start out: together or spread
                     (default: cluster up's, together)
  --ours-cli PATH    the multipaxos CLI (dist/src/cli/main.js) that starts ours (default this build's):
                     another build's, to measure two commits with the same generator (a build
                     before --masters starts its masters spread, and refuses --masters)
  --node-cpu-prof DIR  every process of our clusters writes a CPU profile into DIR when it stops
                     (node-N-PID.cpuprofile; each system of ours is a cluster of its own)
  --json             one JSON object per line per cell and system, and nothing else on stdout:
                       {"system":"ours"|"ours-no-sessions"|"ours-tls"|"etcd"|"ours-http"|"no-consensus"|"etcd-http","valueBytes":100,"clients":16,"ops":..,"opsPerSec":..,
                        "p50Ms":..,"p99Ms":..,"errors":..,"warmupErrors":..,"durationMs":..,"serverCpuMsPerPut":..|null}
                     serverCpuMsPerPut: user+system CPU of the server's processes (ours: cluster up and its
                     nodes; no-consensus: its process; Linux only, null for etcd) over the cell's warm-up and
                     measurement, divided by the puts asked for in it`;

export interface KvBenchSettings {
  readonly valueSizes: readonly number[];
  readonly clients: readonly number[];
  readonly durationMs: number;
  readonly warmupMs: number;
  readonly systemWarmupMs: number;
  readonly systems: readonly KvSystem[];
  readonly etcdBin: string | undefined;
  readonly groups: number;
  readonly httpGroups: number;
  /** cluster up --masters for every cluster of ours (undefined: its default). */
  readonly masters: MastersFlag | undefined;
  readonly oursCli: string | undefined;
  readonly nodeCpuProfileDir: string | undefined;
  readonly json: boolean;
  readonly help: boolean;
}

export interface KvCellResult extends ClosedLoopResult {
  readonly system: KvSystem;
  readonly valueBytes: number;
  readonly clients: number;
  /** CPU ms the server's processes used a put (ours and no-consensus on Linux; not etcd). */
  readonly serverCpuMsPerPut: number | undefined;
}

/** The settings of a run; UsageError for anything malformed. */
export function parseKvFlags(argv: readonly string[]): KvBenchSettings {
  const flags = parseFlags(argv, FLAGS);
  const durationMs = (flags['duration-ms'] as number | undefined) ?? 5000;
  const warmupMs = (flags['warmup-ms'] as number | undefined) ?? 1000;
  const groups = (flags.groups as number | undefined) ?? 1;
  const systemWarmupMs = (flags['system-warmup-ms'] as number | undefined) ?? 5000;
  if (systemWarmupMs < 0) throw new UsageError(`--system-warmup-ms must not be negative; got ${systemWarmupMs}`);
  if (durationMs < 1) throw new UsageError(`--duration-ms must be at least 1; got ${durationMs}`);
  if (warmupMs < 0) throw new UsageError(`--warmup-ms must not be negative; got ${warmupMs}`);
  if (groups < 1) throw new UsageError(`--groups must be at least 1; got ${groups}`);
  const httpGroups = (flags['http-groups'] as number | undefined) ?? DEFAULT_HTTP_GROUPS;
  if (httpGroups < 1) throw new UsageError(`--http-groups must be at least 1; got ${httpGroups}`);
  const masters = masterPlacementOf(flags.masters);
  const systems = listOf('systems', (flags.systems as string | undefined) ?? DEFAULT_SYSTEMS.join(','), (item) => {
    const system = SYSTEMS.find((name) => name === item);
    if (system === undefined) throw new UsageError(`--systems takes ${SYSTEMS.join(', ')}; got "${item}"`);
    return system;
  });
  return {
    valueSizes: listOf('values', (flags.values as string | undefined) ?? '100,2048', positiveInteger('values')),
    clients: listOf('clients', (flags.clients as string | undefined) ?? '1,16,64,256', positiveInteger('clients')),
    durationMs,
    warmupMs,
    systemWarmupMs,
    systems: SYSTEMS.filter((system) => systems.includes(system)),
    etcdBin: flags['etcd-bin'] as string | undefined,
    groups,
    httpGroups,
    masters,
    oursCli: flags['ours-cli'] as string | undefined,
    nodeCpuProfileDir: flags['node-cpu-prof'] as string | undefined,
    json: flags.json === true,
    help: flags.help === true,
  };
}

function listOf<T>(flag: string, raw: string, parse: (item: string) => T): T[] {
  const items = raw.split(',').map((item) => item.trim());
  if (items.some((item) => item === '')) throw new UsageError(`--${flag} needs a comma-separated list; got "${raw}"`);
  return [...new Set(items.map(parse))];
}

function positiveInteger(flag: string): (item: string) => number {
  return (item) => {
    const value = Number(item);
    if (!/^\d+$/.test(item) || !Number.isSafeInteger(value) || value < 1) {
      throw new UsageError(`--${flag} takes positive integers; got "${item}"`);
    }
    return value;
  };
}

export async function kvBench(argv: readonly string[]): Promise<number> {
  const settings = parseKvFlags(argv);
  if (settings.help) {
    console.log(KV_USAGE);
    return 0;
  }
  let systems = settings.systems;
  let etcdBinary: string | undefined;
  let etcdLabel = '';
  let etcdNote = systems.includes('etcd') || systems.includes('etcd-http') ? '' : 'etcd: not run';
  if (systems.includes('etcd') || systems.includes('etcd-http')) {
    etcdBinary = findEtcd(settings.etcdBin);
    const version = etcdBinary === undefined ? undefined : etcdVersion(etcdBinary);
    if (etcdBinary === undefined || version === undefined) {
      const where = settings.etcdBin === undefined ? 'on PATH' : `at ${settings.etcdBin}`;
      if (!systems.some((system) => system !== 'etcd' && system !== 'etcd-http')) {
        console.error(`etcd not found ${where}: install it with "apt-get install etcd-server" (Debian) to run it`);
        return 1;
      }
      console.error(ETCD_NOT_FOUND);
      console.error(`(no runnable etcd ${where})`);
      etcdNote = `etcd: not run (not found ${where})`;
      systems = systems.filter((system) => system !== 'etcd' && system !== 'etcd-http');
    } else {
      etcdLabel = `etcd ${version} (${etcdBinary})`;
    }
  }

  const machine = describeMachine();
  const log = (line: string): void => console.error(`kv: ${line}`);
  log(`${machine}${etcdLabel === '' ? '' : `; ${etcdLabel}`}`);
  const values = new Map(settings.valueSizes.map((size) => [size, randomLetters(size)]));
  const maxClients = Math.max(...settings.clients);
  const results: KvCellResult[] = [];
  const failures: string[] = [];
  for (const system of systems) {
    log(`starting ${describeSystem(system, settings, etcdLabel)}`);
    let target: KvBenchTarget & Partial<ServerCpu>;
    try {
      target = await startSystem(system, settings, etcdBinary as string, maxClients);
    } catch (error) {
      failures.push(`${system}: ${(error as Error).message}`);
      log(`${system} failed to start: ${(error as Error).stack ?? String(error)}`);
      continue;
    }
    try {
      if (settings.systemWarmupMs > 0) {
        log(`${system}: warming up for ${settings.systemWarmupMs} ms`);
        const warmValue = values.values().next().value as string;
        await runClosedLoop({
          clients: SYSTEM_WARMUP_CLIENTS, durationMs: settings.systemWarmupMs, warmupMs: 0,
          put: (clientIndex, sequence) => target.put(`warmup-${clientIndex}-${sequence}`, warmValue),
        });
      }
      for (const [valueBytes, value] of values) {
        for (const clients of settings.clients) {
          log(`${system}: ${valueBytes} B values × ${clients} clients…`);
          // The server's CPU over the whole cell (warm-up included) and every put it was asked for.
          let puts = 0;
          const cpuBefore = target.serverCpuMs?.();
          const result = await runClosedLoop({
            clients, durationMs: settings.durationMs, warmupMs: settings.warmupMs,
            put: (clientIndex, sequence) => {
              puts++;
              return target.put(`bench-${clientIndex}-${sequence}`, value);
            },
          });
          const cpuAfter = target.serverCpuMs?.();
          const serverCpuMsPerPut = cpuBefore === undefined || cpuAfter === undefined || puts === 0 ? undefined
            : (cpuAfter - cpuBefore) / puts;
          const cell: KvCellResult = { system, valueBytes, clients, ...result, serverCpuMsPerPut };
          results.push(cell);
          log(`${system}: ${valueBytes} B × ${clients}: ${Math.round(cell.opsPerSec)} ops/s, ` +
            `p50 ${fixed(cell.p50Ms)} ms, p99 ${fixed(cell.p99Ms)} ms, ${cell.errors} errors` +
            (serverCpuMsPerPut === undefined ? '' : `, server CPU ${serverCpuMsPerPut.toFixed(3)} ms a put`));
          for (const sample of cell.errorSamples) log(`${system}: a put failed: ${sample}`);
          if (settings.json) console.log(JSON.stringify(jsonLine(cell)));
        }
      }
    } finally {
      log(`stopping ${system}`);
      await target.stop();
    }
  }

  if (!settings.json) {
    console.log(`Closed-loop puts, 3 replicas each (fsync on), ${settings.durationMs} ms measured per cell after ` +
      `${settings.warmupMs} ms of warm-up; ours: ${settings.groups} group(s), ours-http: ${settings.httpGroups}` +
      `; ${etcdLabel === '' ? etcdNote : `${etcdLabel} via its v3 JSON gateway`}.`);
    console.log(`Machine: ${machine}.`);
    console.log('');
    printTable(settings, results);
  }
  for (const failure of failures) console.error(`kv: failed: ${failure}`);
  return failures.length === 0 ? 0 : 1;
}

function describeSystem(system: KvSystem, settings: KvBenchSettings, etcdLabel: string): string {
  switch (system) {
    case 'etcd': return `${etcdLabel}, 3 members, puts to the leader`;
    case 'etcd-http': return `${etcdLabel}, 3 members, puts spread over the members`;
    case 'no-consensus': return 'no-consensus Node HTTP server (in memory, no disk)';
    case 'ours-http': return `ours-http (3 nodes, ${settings.httpGroups} group(s), plain HTTP spread over the nodes, ` +
      `masters ${settings.masters ?? 'as cluster up starts them'})`;
    default: return `${system} (3 nodes, ${settings.groups} group(s)${system === 'ours-tls' ? ', mutual TLS, HTTPS, token' : ''})`;
  }
}

async function startSystem(
  system: KvSystem, settings: KvBenchSettings, etcdBinary: string, clients: number,
): Promise<KvBenchTarget & Partial<ServerCpu>> {
  switch (system) {
    case 'etcd': return await startEtcdTarget({ binary: etcdBinary, clients });
    case 'etcd-http': return await startEtcdTarget({ binary: etcdBinary, clients, spread: true });
    case 'no-consensus': {
      const { startNoConsensusTarget } = await import('./no-consensus-target.js');
      return await startNoConsensusTarget({ clients });
    }
    case 'ours-http': return await startOurs({ groups: settings.httpGroups, clients, plainHttp: true,
      cli: settings.oursCli, nodeCpuProfileDir: settings.nodeCpuProfileDir, masters: settings.masters });
    default: return await startOurs({ groups: settings.groups, clients, tls: system === 'ours-tls',
      sessions: system !== 'ours-no-sessions', cli: settings.oursCli, nodeCpuProfileDir: settings.nodeCpuProfileDir,
      masters: settings.masters });
  }
}

/** Loaded only when ours runs, so `--systems etcd` does not depend on it. */
async function startOurs(options: OursTargetOptions): Promise<KvBenchTarget & ServerCpu> {
  const { startOursTarget } = await import('./kv-ours-target.js');
  return startOursTarget(options);
}

function jsonLine(cell: KvCellResult): Record<string, unknown> {
  return {
    system: cell.system, valueBytes: cell.valueBytes, clients: cell.clients, ops: cell.ops,
    opsPerSec: round(cell.opsPerSec, 1), p50Ms: round(cell.p50Ms, 3), p99Ms: round(cell.p99Ms, 3),
    errors: cell.errors, warmupErrors: cell.warmupErrors, durationMs: Math.round(cell.durationMs),
    serverCpuMsPerPut: cell.serverCpuMsPerPut === undefined ? null : round(cell.serverCpuMsPerPut, 4),
  };
}

function printTable(settings: KvBenchSettings, results: readonly KvCellResult[]): void {
  const find = (system: KvSystem, valueBytes: number, clients: number): KvCellResult | undefined =>
    results.find((cell) => cell.system === system && cell.valueBytes === valueBytes && cell.clients === clients);
  printPlainHttpTable(settings, results, find);
  if (!results.some((cell) => !PLAIN_HTTP_SYSTEMS.includes(cell.system))) return;
  console.log('| valueBytes | clients | ours ops/s | ours p50/p99 ms | no sessions ops/s | no sessions p50/p99 ms | ' +
    'etcd ops/s | etcd p50/p99 ms | ours/etcd | errors |');
  console.log('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const valueBytes of settings.valueSizes) {
    for (const clients of settings.clients) {
      const ours = find('ours', valueBytes, clients);
      const bare = find('ours-no-sessions', valueBytes, clients);
      const etcd = find('etcd', valueBytes, clients);
      const ratio = ours !== undefined && etcd !== undefined && etcd.opsPerSec > 0
        ? (ours.opsPerSec / etcd.opsPerSec).toFixed(2) : '-';
      const errors = `${ours?.errors ?? '-'} / ${bare?.errors ?? '-'} / ${etcd?.errors ?? '-'}`;
      console.log(`| ${valueBytes} | ${clients} | ${opsCell(ours)} | ${latencyCell(ours)} | ${opsCell(bare)} | ` +
        `${latencyCell(bare)} | ${opsCell(etcd)} | ${latencyCell(etcd)} | ${ratio} | ${errors} |`);
    }
  }
  console.log('');
  console.log('ours: KvClient with sessions (exactly-once writes, the default); no sessions: ours with sessions off.');
  console.log('errors: ours / no sessions / etcd, failed puts in the measured window.');
  if (!results.some((cell) => cell.system === 'ours-tls')) return;
  console.log('');
  console.log('| valueBytes | clients | ours ops/s | ours-tls ops/s | tls/plain | ours-tls p50/p99 ms | errors |');
  console.log('|---:|---:|---:|---:|---:|---:|---:|');
  for (const valueBytes of settings.valueSizes) {
    for (const clients of settings.clients) {
      const ours = find('ours', valueBytes, clients);
      const secure = find('ours-tls', valueBytes, clients);
      const ratio = ours !== undefined && secure !== undefined && ours.opsPerSec > 0
        ? (secure.opsPerSec / ours.opsPerSec).toFixed(2) : '-';
      console.log(`| ${valueBytes} | ${clients} | ${opsCell(ours)} | ${opsCell(secure)} | ${ratio} | ` +
        `${latencyCell(secure)} | ${ours?.errors ?? '-'} / ${secure?.errors ?? '-'} |`);
    }
  }
  console.log('');
  console.log('ours-tls: cluster up --tls (mutual TLS between nodes, HTTPS, bearer token on every request).');
}

type FindCell = (system: KvSystem, valueBytes: number, clients: number) => KvCellResult | undefined;

/** The service as users reach it: plain HTTP over every node, ours against etcd and the no-consensus server. */
function printPlainHttpTable(settings: KvBenchSettings, results: readonly KvCellResult[], find: FindCell): void {
  if (!results.some((cell) => PLAIN_HTTP_SYSTEMS.includes(cell.system))) return;
  console.log('Plain HTTP/1.1 spread round-robin over every node (one generator for the three):');
  console.log('');
  console.log('| valueBytes | clients | ours-http ops/s | ours-http p50/p99 ms | etcd-http ops/s | etcd-http p50/p99 ms | ' +
    'no-consensus ops/s | no-consensus p50/p99 ms | ours/etcd | ours/no-consensus | errors |');
  console.log('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const valueBytes of settings.valueSizes) {
    for (const clients of settings.clients) {
      const ours = find('ours-http', valueBytes, clients);
      const etcd = find('etcd-http', valueBytes, clients);
      const bare = find('no-consensus', valueBytes, clients);
      const errors = `${ours?.errors ?? '-'} / ${etcd?.errors ?? '-'} / ${bare?.errors ?? '-'}`;
      console.log(`| ${valueBytes} | ${clients} | ${opsCell(ours)} | ${latencyCell(ours)} | ${opsCell(etcd)} | ` +
        `${latencyCell(etcd)} | ${opsCell(bare)} | ${latencyCell(bare)} | ${ratioCell(ours, etcd)} | ` +
        `${ratioCell(ours, bare)} | ${errors} |`);
    }
  }
  console.log('');
  console.log(`ours-http: a default cluster up (${settings.httpGroups} groups), a non-master node forwards to the key's ` +
    'master; etcd-http: a follower hands the put to the leader; no-consensus: one Node process, in memory, no disk.');
  console.log('errors: ours-http / etcd-http / no-consensus, failed puts in the measured window.');
  console.log('');
}

function ratioCell(numerator: KvCellResult | undefined, denominator: KvCellResult | undefined): string {
  return numerator !== undefined && denominator !== undefined && denominator.opsPerSec > 0
    ? (numerator.opsPerSec / denominator.opsPerSec).toFixed(2) : '-';
}

function opsCell(cell: KvCellResult | undefined): string {
  return cell === undefined ? '-' : String(Math.round(cell.opsPerSec));
}

function latencyCell(cell: KvCellResult | undefined): string {
  return cell === undefined ? '-' : `${fixed(cell.p50Ms)} / ${fixed(cell.p99Ms)}`;
}

function fixed(value: number): string {
  return Number.isNaN(value) ? '-' : value.toFixed(2);
}

function round(value: number, digits: number): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

function describeMachine(): string {
  const all = cpus();
  const model = all[0]?.model.trim() ?? 'unknown CPU';
  return `${all.length} × ${model}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB RAM, ${process.platform}, ` +
    `Node ${process.version}`;
}

const LETTERS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/** `size` random ASCII letters (so `size` bytes in UTF-8). */
export function randomLetters(size: number): string {
  const bytes = randomBytes(size);
  let text = '';
  for (const byte of bytes) text += LETTERS[byte % LETTERS.length] as string;
  return text;
}
