/**
 * `npm run bench -- storage`: what a durable commit costs in the log store, against the floor the
 * disk sets and an off-the-shelf engine.
 *
 * Commit throughput and latency: records of 1 KiB values, 1, 16 and 128 records per commit, every
 * commit durable (fdatasync) before the next starts (one commit in flight), for
 *   raw            write + fdatasync of the same bytes into a pre-allocated file: no framing, no
 *                  index (the floor);
 *   file-log       FileLogStore, one put({sync: true}) per commit;
 *   classic-level  LevelDB, one batch({sync: true}) per commit, each value the record's encoded frame
 *                  (falls back to `append`, a plain O_APPEND file + fdatasync, if it cannot load:
 *                  it is not installed by default, see classic-level-loader.ts).
 * Then recovery (FileLogStore.open on a store of 1M records; 100k with --quick) and the bulk
 * delete of the oldest half, for file-log and the alternative. Runs on a real disk (refuses tmpfs
 * for its default directory), in a temporary directory it removes.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, open, readdir, readFile, rm, stat, statfs } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import type { AcceptorRecord } from '../src/core/ready.js';
import { DEFAULT_SEGMENT_BYTES, FileLogStore, recordBytesOnDisk } from '../src/io/file-log-store.js';
import { encodeRecord, frameBytes } from '../src/io/record-codec.js';
import { parseFlags, UsageError, type FlagSpec } from '../src/cli/flags.js';
import { loadLevel, type LevelDb, type LevelModule } from './classic-level-loader.js';

const FLAGS: FlagSpec = { quick: 'boolean', smoke: 'boolean', json: 'boolean', dir: 'string', engines: 'string',
  help: 'boolean' };
const VALUE_BYTES = 1024;
const RECORD_BYTES = recordBytesOnDisk(VALUE_BYTES);
const BATCH_SIZES = [1, 16, 128] as const;
const LOAD_BATCH = 1000;
const ENGINE_NAMES = ['raw', 'file-log', 'classic-level', 'append'] as const;
type EngineName = (typeof ENGINE_NAMES)[number];

export const STORAGE_USAGE = `usage: npm run bench -- storage [--quick] [--json] [--dir DIR] [--engines LIST]

Durable commits of records with ${VALUE_BYTES}-byte values (${RECORD_BYTES} bytes each on disk), one commit in
flight, each waiting for fdatasync, at ${BATCH_SIZES.join(', ')} records per commit, for raw (write + fdatasync
of the same bytes into a pre-allocated file: the floor), file-log (FileLogStore) and classic-level
(LevelDB, sync batches; \`npm install --no-save classic-level\` first, else a plain append file
stands in for it); then FileLogStore recovery (open) of 1M records and the bulk delete of the
oldest half (file-log and classic-level).
  --quick        shorter runs (under 30 s) and recovery of 100k records instead of 1M
  --smoke        a few hundred commits and 2k records in all (for the test suite; not a measurement)
  --json         one JSON object per line instead of the table:
                   {"kind":"environment",...}
                   {"kind":"commit","engine":"raw"|"file-log"|"classic-level"|"append",
                    "recordsPerCommit":16,"commits":..,"records":..,"seconds":..,"recordsPerSec":..,
                    "commitsPerSec":..,"mbPerSec":..,"p50Ms":..,"p99Ms":..,"maxMs":..,"vsRaw":0.93}
                   {"kind":"recovery","engine":..,"records":..,"bytes":..,"files":..,"ms":..,"runsMs":[..],
                    "recordsPerSec":..,"readMs":..}
                   {"kind":"delete","engine":..,"records":..,"deleted":..,"ms":..,"recordsPerSec":..,
                    "bytesBefore":..,"bytesAfter":..}
  --dir DIR      where to make the temporary directory (default: the OS temp dir, or ./tmp if that
                 is a tmpfs)
  --engines LIST comma-separated subset of ${ENGINE_NAMES.join(',')} (default raw,file-log,classic-level)`;

interface Profile {
  readonly name: 'full' | 'quick' | 'smoke';
  /** A commit measurement runs until both bounds are met (and stops at maxCommits). */
  readonly seconds: number;
  readonly minCommits: number;
  /** The engines take turns this many times (each turn a share of seconds and commits). */
  readonly rounds: number;
  readonly maxCommits: number;
  readonly warmupSeconds: number;
  readonly warmupCommits: number;
  readonly recoveryRecords: number;
  readonly openRuns: number;
  readonly segmentBytes: number;
}

const PROFILES: Readonly<Record<Profile['name'], Profile>> = {
  full: {
    name: 'full', seconds: 5, minCommits: 200, rounds: 5, maxCommits: Infinity, warmupSeconds: 0.5, warmupCommits: 20,
    recoveryRecords: 1_000_000, openRuns: 3, segmentBytes: DEFAULT_SEGMENT_BYTES,
  },
  quick: {
    name: 'quick', seconds: 0.75, minCommits: 50, rounds: 3, maxCommits: Infinity, warmupSeconds: 0.2,
    warmupCommits: 10, recoveryRecords: 100_000, openRuns: 3, segmentBytes: DEFAULT_SEGMENT_BYTES,
  },
  smoke: {
    name: 'smoke', seconds: 0, minCommits: 25, maxCommits: 25, rounds: 1, warmupSeconds: 0, warmupCommits: 3,
    recoveryRecords: 2_000, openRuns: 1, segmentBytes: 1024 * 1024,
  },
};

interface Engine {
  readonly name: EngineName;
  /** Write `count` records durably. */
  commit(count: number): Promise<void>;
  close(): Promise<void>;
}

export interface CommitResult {
  readonly kind: 'commit';
  readonly engine: EngineName;
  readonly recordsPerCommit: number;
  readonly commits: number;
  readonly records: number;
  readonly seconds: number;
  readonly recordsPerSec: number;
  readonly commitsPerSec: number;
  readonly mbPerSec: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  vsRaw?: number;
}

export interface RecoveryResult {
  readonly kind: 'recovery';
  readonly engine: EngineName;
  readonly records: number;
  readonly bytes: number;
  readonly files: number;
  /** Median of runsMs. */
  readonly ms: number;
  readonly runsMs: number[];
  readonly recordsPerSec: number;
  /** file-log: the time to read every segment file alone, the floor of an open. */
  readonly readMs?: number;
}

export interface DeleteResult {
  readonly kind: 'delete';
  readonly engine: EngineName;
  readonly records: number;
  readonly deleted: number;
  readonly ms: number;
  readonly recordsPerSec: number;
  readonly bytesBefore: number;
  readonly bytesAfter: number;
}

type Result = CommitResult | RecoveryResult | DeleteResult;

/**
 * Values are slices of a random pool, different for neighbouring records, so that no engine gains
 * from compressing repeats (LevelDB compresses its blocks with Snappy).
 */
const VALUE_POOL_VALUES = 8191;
const VALUE_POOL = randomBytes((VALUE_POOL_VALUES + 1) * VALUE_BYTES);

function valueOf(instanceId: number): Uint8Array {
  const offset = (instanceId % VALUE_POOL_VALUES) * VALUE_BYTES + (instanceId % 7);
  return VALUE_POOL.subarray(offset, offset + VALUE_BYTES);
}

function makeRecords(first: number, count: number): AcceptorRecord[] {
  const records: AcceptorRecord[] = [];
  for (let instanceId = first; instanceId < first + count; instanceId++) {
    const ballot = { proposalId: 1, nodeId: 1 };
    const checksum = (instanceId * 2654435761) >>> 0;
    records.push({ instanceId, promised: ballot, accepted: ballot, value: valueOf(instanceId), checksum });
  }
  return records;
}

function levelKey(instanceId: number): Buffer {
  const key = Buffer.alloc(12);
  key.writeUInt32BE(0, 0);
  key.writeBigUInt64BE(BigInt(instanceId), 4);
  return key;
}

function encoded(record: AcceptorRecord): Buffer {
  const buffer = Buffer.allocUnsafe(frameBytes(record));
  encodeRecord(buffer, 0, 0, 0, { write: 0, start: 0 }, record);
  return buffer;
}

async function preallocate(path: string, bytes: number): Promise<Awaited<ReturnType<typeof open>>> {
  const handle = await open(path, 'w+');
  const zeros = Buffer.alloc(1024 * 1024);
  for (let offset = 0; offset < bytes; offset += zeros.length) {
    await handle.write(zeros, 0, Math.min(zeros.length, bytes - offset), offset);
  }
  await handle.datasync();
  return handle;
}

async function openRaw(directory: string, profile: Profile): Promise<Engine> {
  const capacity = profile.segmentBytes;
  const handle = await preallocate(join(directory, 'raw.dat'), capacity);
  const data = randomBytes(Math.max(...BATCH_SIZES) * RECORD_BYTES);
  let position = 0;
  return {
    name: 'raw',
    async commit(count) {
      const bytes = count * RECORD_BYTES;
      if (position + bytes > capacity) position = 0;
      const { bytesWritten } = await handle.write(data, 0, bytes, position);
      if (bytesWritten !== bytes) throw new Error(`short write: ${bytesWritten} of ${bytes}`);
      await handle.datasync();
      position += bytes;
    },
    close: () => handle.close(),
  };
}

async function openAppend(directory: string): Promise<Engine> {
  const handle = await open(join(directory, 'append.dat'), 'a');
  const data = randomBytes(Math.max(...BATCH_SIZES) * RECORD_BYTES);
  return {
    name: 'append',
    async commit(count) {
      await handle.write(data, 0, count * RECORD_BYTES);
      await handle.datasync();
    },
    close: () => handle.close(),
  };
}

async function openFileLog(directory: string, profile: Profile): Promise<Engine> {
  const store = await FileLogStore.open({ directory, segmentBytes: profile.segmentBytes });
  let next = 0;
  return {
    name: 'file-log',
    commit(count) {
      const records = makeRecords(next, count);
      next += count;
      return store.put(0, records, { sync: true });
    },
    close: () => store.close(),
  };
}

async function openLevelDb(level: LevelModule, directory: string): Promise<LevelDb> {
  const db = new level.ClassicLevel(directory, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
  await db.open();
  return db;
}

async function openLevel(level: LevelModule, directory: string): Promise<Engine> {
  const db = await openLevelDb(level, directory);
  let next = 0;
  return {
    name: 'classic-level',
    async commit(count) {
      const records = makeRecords(next, count);
      next += count;
      await db.batch(records.map((record) => ({ type: 'put' as const, key: levelKey(record.instanceId),
        value: encoded(record) })), { sync: true });
    },
    close: () => db.close(),
  };
}

function percentile(sorted: readonly number[], fraction: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(fraction * sorted.length) - 1))] as number;
}

function round(value: number, digits = 3): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

interface Sample {
  readonly engine: Engine;
  readonly latencies: number[];
  milliseconds: number;
}

async function warmUp(engine: Engine, batch: number, profile: Profile): Promise<void> {
  const end = performance.now() + profile.warmupSeconds * 1000;
  for (let commits = 0; commits < profile.warmupCommits || performance.now() < end; commits++) {
    await engine.commit(batch);
  }
}

/** Run `engine` for one round's share of the profile's time and commits. */
async function runRound(sample: Sample, batch: number, profile: Profile): Promise<void> {
  const seconds = profile.seconds / profile.rounds;
  const minCommits = Math.ceil(profile.minCommits / profile.rounds);
  const maxCommits = Math.ceil(profile.maxCommits / profile.rounds);
  const start = performance.now();
  let now = start;
  let commits = 0;
  while (commits < maxCommits && (commits < minCommits || now - start < seconds * 1000)) {
    const before = now;
    await sample.engine.commit(batch);
    now = performance.now();
    sample.latencies.push(now - before);
    commits++;
  }
  sample.milliseconds += now - start;
}

/**
 * Measure every engine at `batch` records per commit. The engines take turns in rounds (in a
 * rotating order), so that a disk whose speed drifts (a VM's shared disk) weighs on each alike.
 */
async function measureCommits(engines: readonly Engine[], batch: number, profile: Profile): Promise<CommitResult[]> {
  for (const engine of engines) await warmUp(engine, batch, profile);
  const samples: Sample[] = engines.map((engine) => ({ engine, latencies: [], milliseconds: 0 }));
  for (let round = 0; round < profile.rounds; round++) {
    for (let turn = 0; turn < samples.length; turn++) {
      await runRound(samples[(round + turn) % samples.length] as Sample, batch, profile);
    }
  }
  return samples.map(({ engine, latencies, milliseconds }) => {
    const seconds = milliseconds / 1000;
    latencies.sort((a, b) => a - b);
    const records = latencies.length * batch;
    return {
      kind: 'commit', engine: engine.name, recordsPerCommit: batch, commits: latencies.length, records,
      seconds: round(seconds), recordsPerSec: round(records / seconds, 1),
      commitsPerSec: round(latencies.length / seconds, 1),
      mbPerSec: round((records * RECORD_BYTES) / seconds / 1e6, 2), p50Ms: round(percentile(latencies, 0.5)),
      p99Ms: round(percentile(latencies, 0.99)), maxMs: round(latencies[latencies.length - 1] ?? 0),
    };
  });
}

async function directoryBytes(directory: string): Promise<{ bytes: number; files: number }> {
  let bytes = 0;
  let files = 0;
  for (const entry of await readdir(directory, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    bytes += (await stat(join(entry.parentPath, entry.name))).size;
    files++;
  }
  return { bytes, files };
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)] as number;
}

async function fileLogRecoveryAndDelete(directory: string, profile: Profile): Promise<[RecoveryResult, DeleteResult]> {
  const total = profile.recoveryRecords;
  const writer = await FileLogStore.open({ directory, segmentBytes: profile.segmentBytes });
  for (let first = 0; first < total; first += LOAD_BATCH) {
    await writer.put(0, makeRecords(first, Math.min(LOAD_BATCH, total - first)), { sync: first + LOAD_BATCH >= total });
  }
  await writer.close();
  const readStart = performance.now();
  const logDirectory = join(directory, 'log');
  for (const name of await readdir(logDirectory)) await readFile(join(logDirectory, name));
  const readMs = performance.now() - readStart;
  const runsMs: number[] = [];
  for (let run = 0; run < profile.openRuns; run++) {
    const start = performance.now();
    const store = await FileLogStore.open({ directory, segmentBytes: profile.segmentBytes });
    runsMs.push(performance.now() - start);
    const found = store.recovery.records;
    await store.close();
    if (found !== total) throw new Error(`file-log recovery found ${found} records, wrote ${total}`);
  }
  const size = await directoryBytes(directory);
  const ms = median(runsMs);
  const recovery: RecoveryResult = { kind: 'recovery', engine: 'file-log', records: total, bytes: size.bytes,
    files: size.files, ms: round(ms), runsMs: runsMs.map((value) => round(value)),
    recordsPerSec: round(total / (ms / 1000), 1), readMs: round(readMs) };

  const store = await FileLogStore.open({ directory, segmentBytes: profile.segmentBytes });
  const half = Math.floor(total / 2);
  const start = performance.now();
  await store.deleteBelow(0, half);
  const deleteMs = performance.now() - start;
  const gone = (await store.get(0, half - 1)) === undefined && (await store.get(0, half)) !== undefined;
  await store.close();
  if (!gone) throw new Error('file-log deleteBelow did not delete exactly the oldest half');
  const after = await directoryBytes(directory);
  return [recovery, { kind: 'delete', engine: 'file-log', records: total, deleted: half, ms: round(deleteMs),
    recordsPerSec: round(half / (deleteMs / 1000), 1), bytesBefore: size.bytes, bytesAfter: after.bytes }];
}

async function levelRecoveryAndDelete(level: LevelModule, directory: string,
  profile: Profile): Promise<[RecoveryResult, DeleteResult]> {
  const total = profile.recoveryRecords;
  let db = await openLevelDb(level, directory);
  for (let first = 0; first < total; first += LOAD_BATCH) {
    const records = makeRecords(first, Math.min(LOAD_BATCH, total - first));
    await db.batch(records.map((record) => ({ type: 'put' as const, key: levelKey(record.instanceId),
      value: encoded(record) })), { sync: first + LOAD_BATCH >= total });
  }
  await db.close();
  const runsMs: number[] = [];
  for (let run = 0; run < profile.openRuns; run++) {
    const start = performance.now();
    db = await openLevelDb(level, directory);
    runsMs.push(performance.now() - start);
    await db.close();
  }
  const size = await directoryBytes(directory);
  const ms = median(runsMs);
  const recovery: RecoveryResult = { kind: 'recovery', engine: 'classic-level', records: total, bytes: size.bytes,
    files: size.files, ms: round(ms), runsMs: runsMs.map((value) => round(value)),
    recordsPerSec: round(total / (ms / 1000), 1) };

  db = await openLevelDb(level, directory);
  const half = Math.floor(total / 2);
  const start = performance.now();
  await db.clear({ lt: levelKey(half) });
  // clear() writes without sync; one synced write after it makes the deletions durable (LevelDB's
  // log is sequential, so its fsync covers everything written before).
  await db.batch([{ type: 'del', key: levelKey(half - 1) }], { sync: true });
  const deleteMs = performance.now() - start;
  const gone = (await db.get(levelKey(half - 1))) === undefined && (await db.get(levelKey(half))) !== undefined;
  await db.close();
  if (!gone) throw new Error('classic-level clear did not delete exactly the oldest half');
  const after = await directoryBytes(directory);
  return [recovery, { kind: 'delete', engine: 'classic-level', records: total, deleted: half, ms: round(deleteMs),
    recordsPerSec: round(half / (deleteMs / 1000), 1), bytesBefore: size.bytes, bytesAfter: after.bytes }];
}

const FS_TYPES: Readonly<Record<number, string>> = {
  0xef53: 'ext2/3/4', 0x58465342: 'xfs', 0x9123683e: 'btrfs', 0x01021994: 'tmpfs', 0x858458f6: 'ramfs',
  0x794c7630: 'overlayfs', 0x6969: 'nfs', 0x2fc12fc1: 'zfs', 0xf2f52010: 'f2fs',
};

async function fileSystemType(path: string): Promise<string> {
  const type = (await statfs(path)).type;
  return FS_TYPES[type] ?? `0x${type.toString(16)}`;
}

function inMemory(fsType: string): boolean {
  return fsType === 'tmpfs' || fsType === 'ramfs';
}

async function chooseRoot(requested: string | undefined): Promise<{ root: string; fsType: string }> {
  if (requested !== undefined) {
    const root = resolve(requested);
    await mkdir(root, { recursive: true });
    return { root, fsType: await fileSystemType(root) };
  }
  const temporary = tmpdir();
  const fsType = await fileSystemType(temporary);
  if (!inMemory(fsType)) return { root: temporary, fsType };
  const local = resolve('tmp');
  await mkdir(local, { recursive: true });
  return { root: local, fsType: await fileSystemType(local) };
}

function parseEngines(list: string | undefined): EngineName[] {
  if (list === undefined) return ['raw', 'file-log', 'classic-level'];
  const names = list.split(',').map((name) => name.trim()).filter((name) => name !== '');
  for (const name of names) {
    if (!(ENGINE_NAMES as readonly string[]).includes(name)) {
      throw new UsageError(`--engines: unknown engine "${name}" (known: ${ENGINE_NAMES.join(', ')})`);
    }
  }
  return names as EngineName[];
}

export async function storageBench(argv: readonly string[]): Promise<number> {
  const flags = parseFlags(argv, FLAGS);
  if (flags.help === true) {
    console.log(STORAGE_USAGE);
    return 0;
  }
  const profile = PROFILES[flags.smoke === true ? 'smoke' : flags.quick === true ? 'quick' : 'full'];
  const json = flags.json === true;
  let engines = parseEngines(typeof flags.engines === 'string' ? flags.engines : undefined);
  const { root, fsType } = await chooseRoot(typeof flags.dir === 'string' ? flags.dir : undefined);
  const notes: string[] = [];
  if (inMemory(fsType)) notes.push(`${root} is ${fsType}: these numbers say nothing about a disk`);
  let level: LevelModule | null = null;
  if (engines.includes('classic-level')) {
    try {
      level = await loadLevel();
    } catch (error) {
      notes.push(`classic-level failed to load (${error instanceof Error ? error.message : String(error)}); ` +
        'measuring append (O_APPEND file + fdatasync) as the alternative instead');
      engines = engines.map((name) => (name === 'classic-level' ? 'append' : name));
    }
  }
  const base = await mkdtemp(join(root, 'multipaxos-bench-'));
  const cpuList = cpus();
  const environment = {
    kind: 'environment', profile: profile.name, directory: base, fileSystem: fsType, cpus: cpuList.length,
    cpuModel: cpuList[0]?.model ?? 'unknown', memoryGiB: round(totalmem() / 2 ** 30, 1), node: process.version,
    valueBytes: VALUE_BYTES, recordBytes: RECORD_BYTES, engines, notes,
  };
  const results: Result[] = [];
  const emit = (result: Result): void => {
    results.push(result);
    if (json) console.log(JSON.stringify(result));
    else process.stderr.write(`  ${describe(result)}\n`);
  };
  if (json) console.log(JSON.stringify(environment));
  else process.stderr.write(`storage bench (${profile.name}) in ${base} (${fsType})\n`);
  try {
    for (const batch of BATCH_SIZES) {
      const opened: Engine[] = [];
      try {
        for (const name of engines) {
          const directory = join(base, `${name}-${batch}`);
          await mkdir(directory);
          opened.push(name === 'raw' ? await openRaw(directory, profile)
            : name === 'file-log' ? await openFileLog(directory, profile)
              : name === 'append' ? await openAppend(directory)
                : await openLevel(level as LevelModule, directory));
        }
        const measured = await measureCommits(opened, batch, profile);
        const raw = measured.find((result) => result.engine === 'raw');
        for (const result of measured) {
          if (raw !== undefined && result !== raw) result.vsRaw = round(result.recordsPerSec / raw.recordsPerSec);
          emit(result);
        }
      } finally {
        for (const engine of opened) await engine.close();
        for (const name of engines) await rm(join(base, `${name}-${batch}`), { recursive: true, force: true });
      }
    }
    if (engines.includes('file-log')) {
      const directory = join(base, 'file-log-recovery');
      const [recovery, deletion] = await fileLogRecoveryAndDelete(directory, profile);
      await rm(directory, { recursive: true, force: true });
      emit(recovery);
      emit(deletion);
    }
    if (level !== null) {
      const directory = join(base, 'classic-level-recovery');
      const [recovery, deletion] = await levelRecoveryAndDelete(level, directory, profile);
      await rm(directory, { recursive: true, force: true });
      emit(recovery);
      emit(deletion);
    }
  } finally {
    await rm(base, { recursive: true, force: true });
  }
  if (!json) printReport(environment, results, profile);
  return 0;
}

function describe(result: Result): string {
  switch (result.kind) {
    case 'commit':
      return `${result.engine} × ${result.recordsPerCommit}: ${Math.round(result.recordsPerSec)} records/s, ` +
        `p50 ${result.p50Ms} ms, p99 ${result.p99Ms} ms`;
    case 'recovery':
      return `${result.engine} recovery of ${result.records} records: ${result.ms} ms`;
    case 'delete':
      return `${result.engine} delete of ${result.deleted} records: ${result.ms} ms`;
  }
}

function number(value: number, digits = 0): string {
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function megabytes(bytes: number): string {
  return `${number(bytes / 1e6, 1)} MB`;
}

function printReport(environment: { cpus: number; cpuModel: string; memoryGiB: number; node: string;
  fileSystem: string; notes: string[] }, results: readonly Result[], profile: Profile): void {
  console.log(`storage benchmark (${profile.name}): ${VALUE_BYTES}-byte values, ${RECORD_BYTES} bytes per record on disk; ` +
    'every commit durable (fdatasync) before the next starts');
  console.log(`machine: ${environment.cpus} × ${environment.cpuModel}, ${environment.memoryGiB} GiB, ` +
    `node ${environment.node}; file system ${environment.fileSystem}`);
  for (const note of environment.notes) console.log(`note: ${note}`);
  console.log('');
  const header = ['engine', 'rec/commit', 'records/s', 'commits/s', 'MB/s', 'p50 ms', 'p99 ms', 'max ms', 'vs raw'];
  const rows = results.filter((result): result is CommitResult => result.kind === 'commit').map((result) => [
    result.engine, String(result.recordsPerCommit), number(result.recordsPerSec), number(result.commitsPerSec),
    number(result.mbPerSec, 1), number(result.p50Ms, 2), number(result.p99Ms, 2), number(result.maxMs, 2),
    result.vsRaw === undefined ? '' : `${Math.round(result.vsRaw * 100)}%`,
  ]);
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => (row[column] ?? '').length)));
  const format = (row: readonly string[]): string => row.map((cell, column) =>
    (column === 0 ? cell.padEnd(widths[column] ?? 0) : cell.padStart(widths[column] ?? 0))).join('  ');
  console.log(format(header));
  for (const row of rows) console.log(format(row));
  console.log('');
  for (const result of results) {
    if (result.kind === 'recovery') {
      console.log(`recovery  ${result.engine.padEnd(13)}  open of ${number(result.records)} records ` +
        `(${megabytes(result.bytes)} in ${result.files} files): ${number(result.ms)} ms, median of ` +
        `${result.runsMs.length} (${result.runsMs.map((value) => number(value)).join(', ')}), ` +
        `${number(result.recordsPerSec)} records/s` +
        (result.readMs === undefined ? '' : `; reading the segment files alone: ${number(result.readMs)} ms`));
    } else if (result.kind === 'delete') {
      console.log(`delete    ${result.engine.padEnd(13)}  oldest ${number(result.deleted)} of ${number(result.records)} ` +
        `records: ${number(result.ms, 1)} ms (${number(result.recordsPerSec)} records/s); on disk ` +
        `${megabytes(result.bytesBefore)} → ${megabytes(result.bytesAfter)}`);
    }
  }
  if (profile.name !== 'full') console.log(`(--${profile.name}: recovery and delete of ${number(profile.recoveryRecords)} records, not 1M)`);
  console.log('(recovery times are with the files in the page cache: they were just written)');
  const fileLog16 = results.find((result): result is CommitResult => result.kind === 'commit' &&
    result.engine === 'file-log' && result.recordsPerCommit === 16);
  if (fileLog16?.vsRaw !== undefined) {
    console.log(`file-log at 16 records/commit: ${Math.round(fileLog16.vsRaw * 100)}% of raw's records/s ` +
      `(target ≥ 80%: ${fileLog16.vsRaw >= 0.8 ? 'met' : 'NOT met'})`);
  }
}
