/**
 * `npm run bench -- kv-disk`: the disk a KV node uses under a long write load with snapshots and
 * log cleaning on (their defaults), against the bound the design promises.
 *
 * One node (a one-member cluster, 3 groups; disk use does not depend on the others) takes --puts
 * puts of 100-byte values over --keys keys with 256 in flight, and the size of its data directory
 * (log segments, snapshots, metadata: bytes allocated, as `du` counts them) is sampled as it goes.
 *
 * The bound: per group, the log keeps at most hold + one snapshot interval + what arrives between
 * two cleaning passes, so the log files hold about groups × (hold + interval) instances, rounded up
 * to whole segments, plus the active segment and its spare; snapshots are two per group, each the
 * size of the group's state. Both are independent of how many puts were made.
 */
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseFlags, UsageError, type FlagSpec } from '../src/cli/flags.js';
import { KvService } from '../src/kv/kv-service.js';
import { DEFAULT_SNAPSHOT_EVERY_INSTANCES } from '../src/kv/kv-snapshotter.js';
import { NODE_DEFAULTS } from '../src/node/node-options.js';
import { freePort, waitServing } from './local-kv-node.js';

const FLAGS: FlagSpec = { puts: 'number', keys: 'number', sync: 'boolean', json: 'boolean', help: 'boolean' };
const IN_FLIGHT = 256;
const GROUPS = 3;
const VALUE = 'v'.repeat(100);

export const KV_DISK_USAGE = `usage: npm run bench -- kv-disk [--puts 5000000] [--keys 100000] [--sync=false] [--json]

Writes --puts puts (100-byte values) over --keys keys into a one-node, 3-group KV service with
snapshots and log cleaning at their defaults, and reports the data directory's size on disk (log
and snapshots) every tenth of the run and at the end, with the bound it should stay under.`;

interface Sample {
  readonly puts: number;
  /** Since the first put. */
  readonly seconds: number;
  /** Log segment files and snapshot files present. */
  readonly segments: number;
  readonly snapshots: number;
  readonly logMb: number;
  readonly snapshotsMb: number;
  readonly totalMb: number;
}

export async function kvDiskBench(argv: readonly string[]): Promise<number> {
  const flags = parseFlags(argv, FLAGS);
  if (flags.help === true) {
    console.log(KV_DISK_USAGE);
    return 0;
  }
  const puts = (flags.puts as number | undefined) ?? 5_000_000;
  const keys = (flags.keys as number | undefined) ?? 100_000;
  if (!(puts >= 1 && keys >= 1)) throw new UsageError('--puts and --keys must be positive');
  const dir = await mkdtemp(join(tmpdir(), 'multipaxos-kv-disk-'));
  const dataDir = join(dir, 'node-1');
  try {
    const service = await KvService.start({
      nodeId: 1, members: [{ id: 1, host: '127.0.0.1', port: await freePort() }], dataDir, groups: GROUPS,
      masterLeaseMs: 3_000, httpEndpoint: 'http://127.0.0.1:1', sync: flags.sync !== false,
    });
    await waitServing(service);
    const samples: Sample[] = [];
    const began = performance.now();
    let next = 0;
    let sampledAt = 0;
    let sampling: Promise<void> = Promise.resolve();
    await Promise.all(Array.from({ length: IN_FLIGHT }, async () => {
      while (next < puts) {
        const n = next++;
        await putRetrying(service, `key-${n % keys}`);
        if (n - sampledAt >= puts / 10) {
          sampledAt = n;
          sampling = sampling.then(async () => { samples.push({ puts: n, ...await sizes(dataDir, began) }); });
        }
      }
    }));
    await sampling;
    const seconds = (performance.now() - began) / 1000;
    // Let one more cleaning cycle run after the last write, as a node at rest would.
    await new Promise((resolve) => setTimeout(resolve, 4_000));
    const final = { puts, ...await sizes(dataDir, began) };
    samples.push(final);
    const instances = Array.from({ length: GROUPS }, (_, group) => service.node.nowInstanceId(group));
    const minChosen = Array.from({ length: GROUPS }, (_, group) => service.node.minChosenInstanceId(group));
    await service.stop();
    // The bound: the instances each group keeps (hold + one snapshot interval + a cleaning lag of a
    // few seconds of load, generously another interval) at the mean size of an instance seen here
    // (puts per instance × bytes per put on disk), plus three segments (active, spare, one partly
    // dead), plus two snapshots per group of all keys.
    const hold = Math.max(NODE_DEFAULTS.logCleaning.holdInstances, 2 * DEFAULT_SNAPSHOT_EVERY_INSTANCES);
    const totalInstances = instances.reduce((sum, count) => sum + count, 0);
    const bytesPerInstance = (puts / totalInstances) * 200 + 100;
    const logBound = GROUPS * (hold + 2 * DEFAULT_SNAPSHOT_EVERY_INSTANCES) * bytesPerInstance +
      3 * NODE_DEFAULTS.segmentBytes;
    const snapshotBound = 2 * keys * (VALUE.length + 40);
    const boundMb = mb(logBound + snapshotBound);
    const report = {
      puts, keys, seconds: round(seconds), putsPerSecond: Math.round(puts / seconds), instances, minChosen, samples,
      final, boundMb, withinBound: Math.max(...samples.map((sample) => sample.totalMb)) <= boundMb,
    };
    if (flags.json === true) {
      console.log(JSON.stringify(report));
    } else {
      console.log(`kv-disk: ${puts} puts over ${keys} keys in ${report.seconds} s (${report.putsPerSecond}/s), ` +
        `instances per group ${instances.join('/')}, log kept from ${minChosen.join('/')}`);
      for (const sample of samples) {
        console.log(`  after ${String(sample.puts).padStart(9)} puts (${sample.seconds} s): log ${sample.logMb} MiB ` +
          `(${sample.segments} files), snapshots ${sample.snapshotsMb} MiB (${sample.snapshots} files), total ` +
          `${sample.totalMb} MiB`);
      }
      console.log(`  bound ${boundMb} MiB (log: ${GROUPS} groups × (hold ${hold} + 2 × ${DEFAULT_SNAPSHOT_EVERY_INSTANCES}) ` +
        `instances × ~${Math.round(bytesPerInstance)} B + 3 segments; snapshots: 2 × every key): ` +
        `${report.withinBound ? 'within' : 'EXCEEDED'}`);
    }
    return report.withinBound ? 0 : 1;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Allocated bytes under the data directory (as du counts them), split into log and snapshots. */
async function sizes(dataDir: string, began: number): Promise<Omit<Sample, 'puts'>> {
  const seconds = round((performance.now() - began) / 1000);
  const log = await allocated(join(dataDir, 'log'));
  const total = await allocated(dataDir);
  const snapshots = await allocated(join(dataDir, 'kv-snapshots'));
  return {
    seconds, segments: await countFiles(join(dataDir, 'log')), snapshots: await countFiles(join(dataDir, 'kv-snapshots')),
    logMb: mb(log), snapshotsMb: mb(snapshots), totalMb: mb(total),
  };
}

/** Files under `path`, subdirectories included. */
async function countFiles(path: string): Promise<number> {
  try {
    const info = await stat(path);
    if (!info.isDirectory()) return 1;
    let count = 0;
    for (const name of await readdir(path)) count += await countFiles(join(path, name));
    return count;
  } catch {
    return 0;
  }
}

async function allocated(path: string): Promise<number> {
  try {
    const info = await stat(path);
    if (!info.isDirectory()) return info.blocks * 512;
    let bytes = 0;
    for (const name of await readdir(path)) bytes += await allocated(join(path, name));
    return bytes;
  } catch {
    return 0; // A file unlinked while we looked (a dead segment, a replaced snapshot).
  }
}

/** A put, again after a moment when it was certainly not applied (a lease lapsed under load: NO_MASTER). */
async function putRetrying(service: KvService, key: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await service.put(key, VALUE, { timeoutMs: 60_000 });
      return;
    } catch (error) {
      if (attempt >= 100 || (error as { mayHaveBeenApplied?: boolean }).mayHaveBeenApplied !== false) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}



function mb(bytes: number): number {
  return Math.round(bytes / 1024 / 1024 * 10) / 10;
}

function round(value: number): number {
  return Math.round(value * 10) / 10;
}
