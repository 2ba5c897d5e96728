// Checkpoint transfer of the KV state machine: a snapshot opened on one node installs on another
// (different data directories), rejected installs change nothing, a crash around the commit point
// leaves the old state or the new one, and the sending stream survives its file being pruned.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { cp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { encodeKvCommand } from '../../src/kv/kv-command.js';
import { KvCheckpoints } from '../../src/kv/kv-checkpoints.js';
import { encodeKvSnapshot } from '../../src/kv/kv-snapshot-codec.js';
import { snapshotDirectory, snapshotFileName, writeSnapshotFile } from '../../src/kv/kv-snapshot-files.js';
import type { InstallHooks } from '../../src/kv/kv-snapshot-install.js';
import { loadKvSnapshots } from '../../src/kv/kv-snapshotter.js';
import { KvStateMachine } from '../../src/kv/kv-state-machine.js';
import { SILENT_LOGGER, type ReceivedSnapshot } from '../../src/runtime/interfaces.js';
import { tempRoot } from '../support/local.js';

const GROUPS = 2;

interface Node {
  readonly dataDir: string;
  readonly machine: KvStateMachine;
}

async function node(hooks?: InstallHooks, dataDir?: string): Promise<Node> {
  const dir = dataDir ?? await tempRoot('kv-checkpoint');
  const checkpoints = new KvCheckpoints(dir, GROUPS, SILENT_LOGGER, hooks);
  const machine = new KvStateMachine({ groups: GROUPS, checkpoints });
  return { dataDir: dir, machine };
}

/** Execute a fence then `count` puts (keys of every group) from `first` on; returns the next instance. */
function load(machine: KvStateMachine, group: number, first: number, count: number, tag: string): number {
  const fence = { nodeId: 1, masterVersion: first + 1 };
  let instanceId = first;
  machine.execute({ groupIndex: group, instanceId: instanceId++,
    value: encodeKvCommand({ kind: 'fence', fence, httpAddress: 'http://h:1' }), context: undefined });
  for (let i = 0; instanceId < first + 1 + count; i++) {
    const key = `${tag}-${i}`;
    if (machine.read(group, key) === undefined) continue;
    const value = encodeKvCommand({ kind: 'put', key, value: Buffer.from(`${tag}${i}`), expectedVersion: undefined, fence });
    const outcome = machine.execute({ groupIndex: group, instanceId, value, context: undefined });
    if (outcome.ok) instanceId++;
  }
  return instanceId;
}

/** Write the group's snapshot at `instanceId` (everything executed so far) and record it. */
async function snapshotAt(target: Node, group: number, instanceId: number): Promise<void> {
  await writeSnapshotFile(snapshotDirectory(target.dataDir, group), target.machine.captureSnapshot(group, instanceId));
  target.machine.recordCheckpoint(group, instanceId);
}

async function collect(chunks: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const chunk of chunks) parts.push(chunk);
  return Buffer.concat(parts);
}

function received(bytes: Uint8Array, instanceId: number): ReceivedSnapshot {
  return { instanceId, bytes: bytes.length, chunks: (async function* () {
    for (let offset = 0; offset < bytes.length; offset += 1000) yield bytes.subarray(offset, offset + 1000);
  })() };
}

/** Everything a group's state is: entries (with versions), fence, last instance, checkpoint. */
function stateOf(machine: KvStateMachine, group: number): unknown {
  const snapshot = machine.captureSnapshot(group, Number.MAX_SAFE_INTEGER);
  const entries = snapshot.keys.map((key, index) => [key, snapshot.entries[index]?.version,
    Buffer.from(snapshot.entries[index]?.value ?? []).toString()]).sort();
  return { entries, fence: snapshot.fence, last: snapshot.lastExecutedInstanceId,
    checkpoint: machine.checkpointInstanceId(group) };
}

async function files(target: Node, group: number): Promise<string[]> {
  return (await readdir(snapshotDirectory(target.dataDir, group)).catch(() => [])).sort();
}

/** A sender with group 1 snapshotted at instance `at`, and its bytes. */
async function sender(at = 40): Promise<{ source: Node; bytes: Buffer }> {
  const source = await node();
  const next = load(source.machine, 1, 0, at, 'k');
  await snapshotAt(source, 1, next - 1);
  const opened = await source.machine.openSnapshot(1);
  assert.equal(opened?.instanceId, next - 1);
  const bytes = await collect(opened.chunks);
  await opened.close?.();
  return { source, bytes };
}

describe('KV checkpoint transfer', () => {
  test('open then install round trip: the receiver holds the same state and reports the checkpoint', async () => {
    const { source, bytes } = await sender();
    const target = await node();
    load(target.machine, 1, 0, 5, 'old');
    await snapshotAt(target, 1, 5);
    const statsBefore = target.machine.stats();
    await target.machine.installSnapshot(1, received(bytes, 40));
    assert.deepEqual(stateOf(target.machine, 1), stateOf(source.machine, 1));
    assert.equal(target.machine.checkpointInstanceId(1), 40);
    assert.equal(target.machine.read(1, 'old-0').version, 0, 'the old state is gone');
    assert.equal(target.machine.stats().keys, source.machine.stats().keys, 'key counts follow the swap');
    assert.notDeepEqual(target.machine.stats(), statsBefore);
    assert.deepEqual(await files(target, 1), [snapshotFileName(5), snapshotFileName(40)]);
    // Execution goes on after the installed instance.
    const next = target.machine.execute({ groupIndex: 1, instanceId: 41, context: undefined,
      value: encodeKvCommand({ kind: 'fence', fence: { nodeId: 2, masterVersion: 99 }, httpAddress: 'http://h:2' }) });
    assert.deepEqual(next, { ok: true, version: 99 });

    // A restart loads the installed snapshot.
    const restarted = new KvStateMachine({ groups: GROUPS });
    await loadKvSnapshots(restarted, target.dataDir, GROUPS, SILENT_LOGGER);
    assert.deepEqual(stateOf(restarted, 1), stateOf(source.machine, 1));
  });

  const bad: [string, (bytes: Buffer) => { bytes: Uint8Array; instanceId: number; group?: number }][] = [
    ['corrupt bytes', (bytes) => {
      const copy = Buffer.from(bytes);
      copy[60] = (copy[60] as number) ^ 0xff;
      return { bytes: copy, instanceId: 40 };
    }],
    ['a mismatched instance id', (bytes) => ({ bytes, instanceId: 41 })],
    ['another group\'s snapshot', (bytes) => ({ bytes, instanceId: 40, group: 0 })],
  ];
  for (const [what, make] of bad) {
    test(`an install of ${what} rejects and leaves the old state and files, no temporary file`, async () => {
      const { bytes } = await sender();
      const target = await node();
      const group = make(bytes).group ?? 1;
      load(target.machine, group, 0, 5, 'old');
      await snapshotAt(target, group, 5);
      const before = stateOf(target.machine, group);
      const filesBefore = await files(target, group);
      const { bytes: sent, instanceId } = make(bytes);
      await assert.rejects(target.machine.installSnapshot(group, received(sent, instanceId)));
      assert.deepEqual(stateOf(target.machine, group), before);
      assert.deepEqual(await files(target, group), filesBefore);
    });
  }

  test('a snapshot of another group count is refused', async () => {
    const source = new KvStateMachine({ groups: 3 });
    const bytes = encodeKvSnapshot(source.captureSnapshot(1, 7));
    const target = await node();
    await assert.rejects(target.machine.installSnapshot(1, received(bytes, 7)), /group 1 of 3, not group 1 of 2/);
    assert.deepEqual(await files(target, 1), []);
    assert.equal(target.machine.checkpointInstanceId(1), -1);
  });

  test('fewer bytes than announced are refused', async () => {
    const { bytes } = await sender();
    const target = await node();
    await assert.rejects(target.machine.installSnapshot(1, { ...received(bytes, 40), bytes: bytes.length + 1 }),
      /announced/);
    assert.deepEqual(await files(target, 1), []);
  });

  test('a failure right before the commit leaves the old state, in memory and after a restart', async () => {
    const { bytes } = await sender();
    const target = await node({ beforeCommit: () => { throw new Error('injected'); } });
    load(target.machine, 1, 0, 5, 'old');
    await snapshotAt(target, 1, 5);
    const before = stateOf(target.machine, 1);
    await assert.rejects(target.machine.installSnapshot(1, received(bytes, 40)), /injected/);
    assert.deepEqual(stateOf(target.machine, 1), before);
    assert.deepEqual(await files(target, 1), [snapshotFileName(5)]);
    const restarted = new KvStateMachine({ groups: GROUPS });
    await loadKvSnapshots(restarted, target.dataDir, GROUPS, SILENT_LOGGER);
    assert.deepEqual(stateOf(restarted, 1), before);
  });

  test('a crash right after the rename restarts into the new state, never a mix', async () => {
    const { source, bytes } = await sender();
    const crashed = await tempRoot('kv-checkpoint-crash');
    // The disk as a crash right after the rename leaves it: a copy taken at that moment.
    const target = await node({ afterRename: () => cp(target.dataDir, crashed, { recursive: true }) });
    load(target.machine, 1, 0, 5, 'old');
    await snapshotAt(target, 1, 5);
    await target.machine.installSnapshot(1, received(bytes, 40));
    const restarted = new KvStateMachine({ groups: GROUPS });
    await loadKvSnapshots(restarted, crashed, GROUPS, SILENT_LOGGER);
    assert.deepEqual(stateOf(restarted, 1), stateOf(source.machine, 1));
  });

  test('a failure after the rename takes the file back: the old state stands, in memory and on disk', async () => {
    const { bytes } = await sender();
    const target = await node({ afterRename: () => { throw new Error('injected'); } });
    load(target.machine, 1, 0, 5, 'old');
    await snapshotAt(target, 1, 5);
    const before = stateOf(target.machine, 1);
    await assert.rejects(target.machine.installSnapshot(1, received(bytes, 40)), /injected/);
    assert.deepEqual(stateOf(target.machine, 1), before);
    assert.deepEqual(await files(target, 1), [snapshotFileName(5)]);
    const restarted = new KvStateMachine({ groups: GROUPS });
    await loadKvSnapshots(restarted, target.dataDir, GROUPS, SILENT_LOGGER);
    assert.deepEqual(stateOf(restarted, 1), before);
  });

  test('a temporary file of an interrupted install is removed at start-up and never loaded', async () => {
    const { bytes } = await sender();
    const target = await node();
    load(target.machine, 1, 0, 5, 'old');
    await snapshotAt(target, 1, 5);
    const before = stateOf(target.machine, 1);
    await writeFile(join(snapshotDirectory(target.dataDir, 1), `${snapshotFileName(40)}.install.tmp`), bytes);
    const restarted = new KvStateMachine({ groups: GROUPS });
    await loadKvSnapshots(restarted, target.dataDir, GROUPS, SILENT_LOGGER);
    assert.deepEqual(stateOf(restarted, 1), before);
    assert.deepEqual(await files(target, 1), [snapshotFileName(5)]);
  });

  test('a snapshot file above the installed instance does not win at the next start', async () => {
    const { source, bytes } = await sender();
    const target = await node();
    load(target.machine, 1, 0, 60, 'old');
    await snapshotAt(target, 1, 60);
    await target.machine.installSnapshot(1, received(bytes, 40));
    assert.deepEqual(await files(target, 1), [snapshotFileName(40)]);
    assert.equal(target.machine.checkpointInstanceId(1), 40);
    const restarted = new KvStateMachine({ groups: GROUPS });
    await loadKvSnapshots(restarted, target.dataDir, GROUPS, SILENT_LOGGER);
    assert.deepEqual(stateOf(restarted, 1), stateOf(source.machine, 1));
  });

  test('the opened stream survives its file being deleted mid-read', async () => {
    const source = await node();
    // Large enough for several chunks of the stream.
    const value = Buffer.alloc(60_000, 7);
    const fence = { nodeId: 1, masterVersion: 1 };
    source.machine.execute({ groupIndex: 0, instanceId: 0, context: undefined,
      value: encodeKvCommand({ kind: 'fence', fence, httpAddress: 'http://h:1' }) });
    let instanceId = 1;
    for (let i = 0; instanceId <= 60; i++) {
      const outcome = source.machine.execute({ groupIndex: 0, instanceId, context: undefined,
        value: encodeKvCommand({ kind: 'put', key: `big-${i}`, value, expectedVersion: undefined, fence }) });
      if (outcome.ok) instanceId++;
    }
    await snapshotAt(source, 0, 60);
    const path = join(snapshotDirectory(source.dataDir, 0), snapshotFileName(60));
    const expected = await readFile(path);
    const opened = await source.machine.openSnapshot(0);
    assert.ok(opened !== undefined);
    const parts: Uint8Array[] = [];
    for await (const chunk of opened.chunks) {
      if (parts.length === 0) await rm(path);
      parts.push(chunk);
    }
    assert.ok(parts.length > 1, 'read in several chunks');
    assert.deepEqual(Buffer.concat(parts), expected);
    await opened.close?.();
  });

  test('open offers nothing newer than the checkpoint, skips a damaged file, and nothing without files', async () => {
    const source = await node();
    assert.equal(await source.machine.openSnapshot(0), undefined, 'no snapshot yet');
    load(source.machine, 0, 0, 4, 'k');
    await snapshotAt(source, 0, 5);
    load(source.machine, 0, 5, 5, 'm');
    await writeSnapshotFile(snapshotDirectory(source.dataDir, 0), source.machine.captureSnapshot(0, 10));
    // The file at 10 is on disk but not recorded as the checkpoint: it is not offered.
    const older = await source.machine.openSnapshot(0);
    assert.equal(older?.instanceId, 5);
    await older?.close?.();
    source.machine.recordCheckpoint(0, 10);
    const newest = join(snapshotDirectory(source.dataDir, 0), snapshotFileName(10));
    const damaged = await readFile(newest);
    damaged[50] = (damaged[50] as number) ^ 1;
    await writeFile(newest, damaged);
    const opened = await source.machine.openSnapshot(0);
    assert.equal(opened?.instanceId, 5);
    await opened?.close?.();
    const memory = new KvStateMachine({ groups: 1 });
    assert.equal(await memory.openSnapshot(0), undefined);
    await assert.rejects(memory.installSnapshot(0, received(Buffer.alloc(0), 1)), /no snapshot files/);
  });
});
