import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual } from 'node:util';
import { crc32 } from 'node:zlib';
import { wrapProposal } from '../../src/core/proposal-identity.js';
import type { AcceptorRecord } from '../../src/core/ready.js';
import { FileLogStore } from '../../src/io/file-log-store.js';
import { encodeKvCommand } from '../../src/kv/kv-command.js';
import { snapshotDirectory, snapshotFileName, writeSnapshotFile } from '../../src/kv/kv-snapshot-files.js';
import { KvStateMachine } from '../../src/kv/kv-state-machine.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

interface Run {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function inspect(...args: string[]): Run {
  const run = spawnSync(process.execPath, [CLI, 'log', 'inspect', ...args], { encoding: 'utf8', timeout: 30_000 });
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

function jsonLines(stdout: string): Record<string, unknown>[] {
  return stdout.trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
}

function valueOf(groupIndex: number, instanceId: number): Buffer {
  // Every third value is binary, the rest text; all are unique so a test can find one in a segment.
  const text = `g${groupIndex}-value-${String(instanceId).padStart(4, '0')}-${'x'.repeat(instanceId % 7)}`;
  const binary = instanceId % 3 === 0;
  const body = binary ? Buffer.concat([Buffer.from([0, 1, 2, 0xff]), Buffer.from(text)]) : Buffer.from(text);
  // Group 2's values are in their proposal's identity envelope, as a node writes them.
  if (groupIndex !== 2) return body;
  const identity = { nodeId: 1, incarnation: IDENTITY_INCARNATION, startPromise: 3, sequence: instanceId + 1 };
  return Buffer.from(wrapProposal(identity, body));
}

const IDENTITY_INCARNATION = { high: 0xabc, low: 1 };

/** Records first..last of a group with a correct checksum chain (instance 0 chains from 0). */
function chain(groupIndex: number, first: number, last: number, startChecksum: number): AcceptorRecord[] {
  const records: AcceptorRecord[] = [];
  let previous = startChecksum;
  for (let instanceId = first; instanceId <= last; instanceId++) {
    const value = valueOf(groupIndex, instanceId);
    const checksum = crc32(value, previous);
    const ballot = { proposalId: 3 + (instanceId % 2), nodeId: 1 + (instanceId % 3) };
    records.push({ instanceId, promised: ballot, accepted: ballot, value, checksum });
    previous = checksum;
  }
  return records;
}

interface Made {
  readonly directory: string;
  readonly records: Map<number, AcceptorRecord[]>;
}

/**
 * A store in small segments: group 0 holds instances 0..59 (min chosen 5 after deleting below it),
 * group 2 holds 0..9. `tamper` may change records before they are written.
 */
async function makeStore(tamper: (groupIndex: number, record: AcceptorRecord) => AcceptorRecord = (_, r) => r,
): Promise<Made> {
  const directory = await mkdtemp(join(tmpdir(), 'log-inspect-'));
  const store = await FileLogStore.open({ directory, segmentBytes: 4096 });
  const records = new Map<number, AcceptorRecord[]>();
  records.set(0, chain(0, 0, 59, 0).map((record) => tamper(0, record)));
  records.set(2, chain(2, 0, 9, 0).map((record) => tamper(2, record)));
  const group0 = records.get(0) ?? [];
  for (let i = 0; i < group0.length; i += 8) await store.put(0, group0.slice(i, i + 8), { sync: true });
  await store.put(2, records.get(2) ?? [], { sync: true });
  await store.deleteBelow(0, 5);
  await store.close();
  return { directory, records };
}

/** Every file under `directory` with its bytes' hash, size and mtime. */
async function snapshot(directory: string): Promise<Map<string, string>> {
  const result = new Map<string, string>();
  for (const entry of await readdir(directory, { recursive: true, withFileTypes: true })) {
    const path = join(entry.parentPath, entry.name);
    const info = await stat(path);
    if (entry.isDirectory()) {
      result.set(path, 'directory');
      continue;
    }
    const hash = createHash('sha256').update(await readFile(path)).digest('hex');
    result.set(path, `${hash} ${info.size} ${info.mtimeMs}`);
  }
  return result;
}

/** A snapshot once the writer's background work (pre-allocating its spare segment) has settled. */
async function settledSnapshot(directory: string): Promise<Map<string, string>> {
  let previous: Map<string, string> | undefined;
  for (let attempt = 0; attempt < 200; attempt++) {
    const current = await snapshot(directory).catch(() => undefined);
    const busy = current === undefined || [...current.keys()].some((path) => path.endsWith('.tmp'));
    if (!busy && previous !== undefined && isDeepStrictEqual(current, previous)) return current;
    previous = busy ? undefined : current;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`${directory} did not settle`);
}

/** The segment holding `needle` and its offset there. */
async function locate(directory: string, needle: Buffer): Promise<{ path: string; offset: number }> {
  for (const name of (await readdir(join(directory, 'log'))).sort()) {
    const path = join(directory, 'log', name);
    const offset = (await readFile(path)).indexOf(needle);
    if (offset >= 0) return { path, offset };
  }
  throw new Error(`${needle.toString()} is in no segment`);
}

async function flipByte(path: string, offset: number): Promise<void> {
  const bytes = await readFile(path);
  bytes[offset] = (bytes[offset] as number) ^ 0x5a;
  await writeFile(path, bytes);
}

test('text output lists every live record and the per-group summary; the directory is unchanged', async () => {
  const { directory } = await makeStore();
  try {
    const before = await snapshot(directory);
    const run = inspect('--data', directory);
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, /segments scanned, 70 frames, every CRC ok/);
    assert.match(run.stdout, /no torn tail/);
    assert.match(run.stdout,
      /group 0: instances 5\.\.59, min chosen 5, 55 records listed; chain ok \(54 links checked, 1 unknown\)/);
    assert.match(run.stdout,
      /group 2: instances 0\.\.9, min chosen 0, 10 records listed; chain ok \(10 links checked, 0 unknown\)/);
    assert.match(run.stdout, /^ +7 +4\.2 +4\.2 +0x[0-9a-f]{8} +14 +ok +"g0-value-0007-"/m);
    assert.match(run.stdout, /^ +6 +3\.1 +3\.1 +0x[0-9a-f]{8} +24 +ok +hex 000102ff6730/m);
    // A value in its identity envelope shows its body and who proposed it.
    assert.match(run.stdout,
      /^ +4 +\S+ +\S+ +0x[0-9a-f]{8} +50 +ok +"g2-value-0004-xxxx" {2}from n1\/00000abc00000001\/3\/5$/m);
    const group0 = run.stdout.slice(0, run.stdout.indexOf('\ngroup 2\n'));
    assert.match(group0, /^ +5 +4\.3 /m);
    assert.doesNotMatch(group0, /^ +4 +\d/m, 'instance 4 was deleted');
    assert.match(run.stdout, /^ok$/m);
    assert.deepEqual(await snapshot(directory), before);
  } finally {
    await rm(directory, { recursive: true, force: true });
  }
});

test('--json prints one object per record and a final summary; --group, --from and --to select', async () => {
  const { directory, records } = await makeStore();
  try {
    const before = await snapshot(directory);
    const all = jsonLines(inspect('--data', directory, '--json').stdout);
    assert.equal(all.length, 55 + 10 + 1);
    assert.ok(all.slice(0, -1).every((line) => line.type === 'record'));
    const seven = all.find((line) => line.group === 0 && line.instance === 7);
    const expected = records.get(0)?.[7];
    assert.deepEqual(seven, {
      type: 'record', group: 0, instance: 7, promised: { proposalId: 4, nodeId: 2 }, accepted: { proposalId: 4, nodeId: 2 },
      checksum: expected?.checksum, valueBytes: 14, proposal: null, preview: 'g0-value-0007-', previewEncoding: 'text',
      previewTruncated: false, chain: 'ok',
    });
    const summary = all.at(-1);
    assert.deepEqual(summary, {
      type: 'summary', directory, ok: true, segments: summary?.segments, frames: 70, truncatedTail: null, chainBreaks: 0,
      groups: [
        { group: 0, minChosen: 5, minInstance: 5, maxInstance: 59, records: 55,
          chain: { linksChecked: 54, unknown: 1, breaks: 0, firstBreak: null },
          pendingCheckpoint: null, kvSnapshots: [] },
        { group: 2, minChosen: 0, minInstance: 0, maxInstance: 9, records: 10,
          chain: { linksChecked: 10, unknown: 0, breaks: 0, firstBreak: null },
          pendingCheckpoint: null, kvSnapshots: [] },
      ],
    });
    assert.ok(typeof summary?.segments === 'number' && summary.segments >= 2);

    const some = inspect('--data', directory, '--json', '--group', '0', '--from', '20', '--to', '24');
    assert.equal(some.status, 0, some.stderr);
    const lines = jsonLines(some.stdout);
    assert.deepEqual(lines.slice(0, -1).map((line) => line.instance), [20, 21, 22, 23, 24]);
    assert.deepEqual(lines.slice(0, -1).map((line) => line.chain), ['ok', 'ok', 'ok', 'ok', 'ok'], 'link into 20 checked');
    const groups = lines.at(-1)?.groups as { group: number; records: number; minInstance: number }[];
    assert.deepEqual(groups.map(({ group, records: count, minInstance }) => ({ group, count, minInstance })),
      [{ group: 0, count: 5, minInstance: 5 }]);
    assert.deepEqual(await snapshot(directory), before);
  } finally {
    await rm(directory, { recursive: true, force: true });
  }
});

test('a broken checksum chain is reported with its instance numbers and exits 1', async () => {
  const { directory } = await makeStore((groupIndex, record) =>
    groupIndex === 0 && record.instanceId === 31 ? { ...record, checksum: (record.checksum ^ 1) >>> 0 } : record);
  try {
    const before = await snapshot(directory);
    const text = inspect('--data', directory);
    assert.equal(text.status, 1);
    // 31's own link and the link from 31 into 32 both fail.
    assert.match(text.stdout, /group 0: .*2 CHAIN BREAK\(S\), the first at instance 31 \(after 30\)/);
    assert.match(text.stdout, /^ +31 .* BREAK /m);
    assert.match(text.stdout, /^FAILED: 2 chain break\(s\)$/m);

    const json = inspect('--data', directory, '--json');
    assert.equal(json.status, 1);
    const summary = jsonLines(json.stdout).at(-1) as { ok: boolean; chainBreaks: number;
      groups: { group: number; chain: { firstBreak: Record<string, number> | null } }[] };
    assert.equal(summary.ok, false);
    assert.equal(summary.chainBreaks, 2);
    const firstBreak = summary.groups[0]?.chain.firstBreak;
    assert.equal(firstBreak?.instance, 31);
    assert.equal(firstBreak?.previousInstance, 30);
    assert.equal(firstBreak?.expected, crc32(valueOf(0, 31), firstBreak?.previousChecksum));
    assert.equal(firstBreak?.found, ((firstBreak?.expected ?? 0) ^ 1) >>> 0);
    assert.equal(summary.groups[1]?.chain.firstBreak, null);

    const other = inspect('--data', directory, '--group', '2');
    assert.equal(other.status, 0, 'group 2 alone is intact');
    const before31 = inspect('--data', directory, '--group', '0', '--to', '30');
    assert.equal(before31.status, 0, 'the chain up to 30 is intact');
    assert.deepEqual(await snapshot(directory), before);
  } finally {
    await rm(directory, { recursive: true, force: true });
  }
});

test('a checksum of 0 is unknown and restarts the chain', async () => {
  const { directory } = await makeStore((groupIndex, record) =>
    groupIndex === 2 && record.instanceId === 4 ? { ...record, checksum: 0 } : record);
  try {
    const json = inspect('--data', directory, '--json', '--group', '2');
    assert.equal(json.status, 0, json.stderr);
    const lines = jsonLines(json.stdout);
    assert.deepEqual(lines.slice(0, -1).map((line) => line.chain),
      ['ok', 'ok', 'ok', 'ok', 'unknown', 'unknown', 'ok', 'ok', 'ok', 'ok']);
  } finally {
    await rm(directory, { recursive: true, force: true });
  }
});

test('a corrupt record with valid data after it is reported with file and offset; exit 1', async () => {
  const { directory } = await makeStore();
  try {
    const { path, offset } = await locate(directory, valueOf(0, 10));
    await flipByte(path, offset + 3);
    const before = await snapshot(directory);
    const text = inspect('--data', directory);
    assert.equal(text.status, 1);
    assert.equal(text.stdout, '');
    assert.match(text.stderr,
      /^multipaxos log inspect: .*0000000001\.log: CRC mismatch at offset \d+ \(valid records follow it/);
    const json = inspect('--data', directory, '--json');
    assert.equal(json.status, 1);
    const [error] = jsonLines(json.stdout);
    assert.equal(error?.type, 'error');
    assert.equal(error?.code, 'STORAGE_CORRUPT');
    assert.match(String(error?.message), /CRC mismatch/);
    assert.deepEqual(await snapshot(directory), before);
  } finally {
    await rm(directory, { recursive: true, force: true });
  }
});

test('a torn tail is reported, not repaired', async () => {
  const { directory } = await makeStore();
  try {
    const { path, offset } = await locate(directory, valueOf(2, 9));
    await flipByte(path, offset);
    const before = await snapshot(directory);
    const text = inspect('--data', directory);
    assert.equal(text.status, 0, text.stderr);
    assert.match(text.stdout, /torn tail: .*\.log at offset \d+ \(CRC mismatch\); reported only, not repaired/);
    assert.match(text.stdout, /group 2: instances 0\.\.8, min chosen 0, 9 records listed/);
    const summary = jsonLines(inspect('--data', directory, '--json').stdout).at(-1);
    const tail = summary?.truncatedTail as { file: string; offset: number; reason: string };
    assert.equal(tail.file, path);
    assert.equal(tail.reason, 'CRC mismatch');
    assert.ok(tail.offset < offset);
    assert.deepEqual(await snapshot(directory), before);
  } finally {
    await rm(directory, { recursive: true, force: true });
  }
});

test('inspecting the directory of a store that is open for writing changes nothing', async () => {
  const directory = await mkdtemp(join(tmpdir(), 'log-inspect-'));
  const store = await FileLogStore.open({ directory, segmentBytes: 4096 });
  try {
    const records = chain(0, 0, 29, 0);
    await store.put(0, records.slice(0, 20), { sync: true });
    const before = await settledSnapshot(directory);
    const run = inspect('--data', directory, '--json');
    assert.equal(run.status, 0, run.stderr);
    assert.equal(jsonLines(run.stdout).length, 21);
    assert.deepEqual(await snapshot(directory), before);
    await store.put(0, records.slice(20), { sync: true });
    assert.equal(await store.maxInstanceId(0), 29);
  } finally {
    await store.close();
    await rm(directory, { recursive: true, force: true });
  }
});

test('--group naming a group the store does not hold is an error (exit 1), in text and JSON', async () => {
  const { directory } = await makeStore();
  try {
    const seven = inspect('--data', directory, '--group', '7');
    assert.equal(seven.status, 1, seven.stderr);
    assert.match(seven.stderr, /^multipaxos log inspect: .* holds no group 7 \(it holds groups 0, 2\)$/m);
    assert.equal(seven.stdout.includes('record'), false, seven.stdout);
    const json = inspect('--data', directory, '--group', '7', '--json');
    assert.equal(json.status, 1);
    assert.deepEqual(jsonLines(json.stdout).map((line) => [line.type, line.code]), [['error', 'BAD_OPTIONS']]);
    assert.equal(inspect('--data', directory, '--group', '2').status, 0, 'a group it holds is fine');
  } finally {
    await rm(directory, { recursive: true, force: true });
  }
});

test('a missing directory, a directory without a log and bad usage fail clearly', async () => {
  const directory = await mkdtemp(join(tmpdir(), 'log-inspect-'));
  try {
    const missing = inspect('--data', join(directory, 'nope'));
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /^multipaxos log inspect: cannot read .*nope: no such directory$/m);
    const empty = inspect('--data', directory, '--json');
    assert.equal(empty.status, 1);
    assert.match(empty.stderr, /holds no log/);
    assert.equal(jsonLines(empty.stdout)[0]?.code, 'BAD_OPTIONS');
    assert.deepEqual(await readdir(directory), [], 'nothing created');
    assert.equal(inspect().status, 2);
    assert.equal(inspect('--data', directory, '--bogus').status, 2);
    assert.equal(inspect('--data', directory, '--from', '5', '--to', '2').status, 2);
    const help = inspect('--help');
    assert.equal(help.status, 0);
    assert.match(help.stdout, /"type":"summary"/);
  } finally {
    await rm(directory, { recursive: true, force: true });
  }
});

test('KV snapshots, the cleaned range and a pending checkpoint are shown per group', async () => {
  const { directory } = await makeStore();
  try {
    const store = await FileLogStore.open({ directory });
    await store.setPendingCheckpoint(0, { instanceId: 70 });
    await store.close();
    const machine = new KvStateMachine({ groups: 3 });
    const fence = { nodeId: 1, masterVersion: 1 };
    machine.execute({ groupIndex: 0, instanceId: 0, context: undefined,
      value: encodeKvCommand({ kind: 'fence', fence, httpAddress: 'http://h:1' }) });
    const snapshots = snapshotDirectory(directory, 0);
    await writeSnapshotFile(snapshots, machine.captureSnapshot(0, 20));
    await writeSnapshotFile(snapshots, machine.captureSnapshot(0, 40));
    await flipByte(join(snapshots, snapshotFileName(40)), 55);
    const size = (await stat(join(snapshots, snapshotFileName(20)))).size;

    const text = inspect('--data', directory);
    assert.equal(text.status, 0, text.stderr);
    assert.match(text.stdout, /^ {2}log cleaned: instances below 5; checkpoint install pending at 70$/m);
    assert.match(text.stdout, /^ {2}log cleaned: never$/m);
    assert.match(text.stdout, new RegExp(`^  KV snapshot ${snapshotFileName(20)}: instance 20, ${size} bytes, decodes$`, 'm'));
    assert.match(text.stdout, new RegExp(`^  KV snapshot ${snapshotFileName(40)}: instance 40, \\d+ bytes, DOES NOT ` +
      'DECODE \\(KV snapshot: CRC mismatch', 'm'));

    const summary = jsonLines(inspect('--data', directory, '--json').stdout).at(-1) as {
      groups: { group: number; minChosen: number; pendingCheckpoint: number | null;
        kvSnapshots: { file: string; instanceId: number; bytes: number; decodes: boolean }[] }[] };
    const [group0, group2] = summary.groups;
    assert.equal(group0?.minChosen, 5);
    assert.equal(group0?.pendingCheckpoint, 70);
    const shown = group0?.kvSnapshots.map(({ file, instanceId, bytes, decodes }) =>
      ({ file, instanceId, bytes, decodes }));
    assert.deepEqual(shown,
      [{ file: snapshotFileName(20), instanceId: 20, bytes: size, decodes: true },
        { file: snapshotFileName(40), instanceId: 40, bytes: size, decodes: false }]);
    assert.equal(group2?.pendingCheckpoint, null);
    assert.deepEqual(group2?.kvSnapshots, []);
  } finally {
    await rm(directory, { recursive: true, force: true });
  }
});
