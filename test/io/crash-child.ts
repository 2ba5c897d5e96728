// The child process of test/io/crash.test.ts (not a test itself). It opens a FileLogStore over a
// LazyFileSystem, so that its unsynced writes die with it as in a power cut, and writes forever:
// concurrent puts with sync to several groups, new instances after what the store already holds and
// some rewrites of recent instances at a higher ballot. After each put resolves it prints one line
// per record, `ack <group> <instance> <proposalId>`; the parent SIGKILLs it at a random moment and
// checks that every acknowledged record is on disk. To keep the log (and the time to reopen it)
// bounded it also cleans each group's log behind it with deleteBelow, announcing `trim <group>
// <instance>` before the call: the parent checks no record at or above what was announced is gone.
// So segment unlinking and metadata replacement are killed at random too.
//
// usage: node crash-child.js <directory> [--skip-datasync] [--reverse-writeback] [--inline-writes]
//   --skip-datasync      the store's test fault: puts resolve without fdatasync (the canary)
//   --reverse-writeback  the LazyFileSystem writes pages back last first (out-of-order persistence)
//   --inline-writes      durable writes as a node makes them by default: on the loop's thread, with
//                        O_DSYNC (they bypass the LazyFileSystem's page cache); without the flag,
//                        write + fdatasync, so the page cache's write-back is what a kill tears
//
// stdout lines: `ready <json>` once the store is open, then `ack ...` and `trim ...` lines.
// process.stdout.write is synchronous for pipes on Linux, so a line is in the pipe before the next
// put is issued; where it is not (macOS), a kill can only lose acks, which weakens the check but
// cannot fail it falsely. An ack is written only after its put resolved, never before.
import { FileLogStore } from '../../src/io/file-log-store.js';
import type { AcceptorRecord } from '../../src/core/ready.js';
import { LazyFileSystem } from '../../src/testing/lazy-file-system.js';
import { GROUPS, SEGMENT_BYTES, workloadRecord } from './crash-workload.js';

/** Puts in flight at once (group commit gathers them into batches). */
const CONCURRENCY = 8;
const REWRITE_CHANCE = 0.2;
/** Recent instances per group that may be rewritten at a higher ballot. */
const RECENT = 32;
/** Instances per group kept behind the newest when cleaning, and how far past that cleaning waits. */
const KEEP = 600;
const TRIM_EVERY = 300;

interface GroupState {
  next: number;
  /** The group's low-water mark (deleteBelow), and whether a deleteBelow is running. */
  trimmedTo: number;
  trimming: boolean;
  /** Highest ballot issued per instance (known ones only), to rewrite above it. */
  readonly ballots: Map<number, number>;
  readonly recent: number[];
}

async function main(): Promise<void> {
  const [directory, ...flags] = process.argv.slice(2);
  if (directory === undefined) throw new Error('usage: crash-child.js <directory> [--skip-datasync] [--reverse-writeback]');
  const skipDatasync = flags.includes('--skip-datasync');
  const fileSystem = new LazyFileSystem({ writeback: flags.includes('--reverse-writeback') ? 'reverse' : 'in-order' });
  const store = await FileLogStore.open({
    directory, sync: true, segmentBytes: SEGMENT_BYTES, fileSystem, faults: { skipDatasync },
    inlineWriteBytes: flags.includes('--inline-writes') ? undefined : 0,
  });
  const groups: GroupState[] = [];
  for (let group = 0; group < GROUPS; group++) {
    const max = await store.maxInstanceId(group);
    const state: GroupState = {
      next: max === undefined ? 0 : max + 1, trimmedTo: await store.minChosenInstanceId(group), trimming: false,
      ballots: new Map(), recent: [],
    };
    // The last few instances from earlier lives, so rewrites also land on records in older segments.
    for (let instanceId = Math.max(0, state.next - RECENT); instanceId < state.next; instanceId++) {
      const record = await store.get(group, instanceId);
      if (record === undefined) continue;
      state.ballots.set(instanceId, record.accepted.proposalId);
      state.recent.push(instanceId);
    }
    groups.push(state);
  }
  process.stdout.write(`ready ${JSON.stringify({ next: groups.map((state) => state.next), recovery: store.recovery })}\n`);
  await Promise.all(Array.from({ length: CONCURRENCY }, () => writeForever(store, groups)));
}

async function writeForever(store: FileLogStore, groups: readonly GroupState[]): Promise<never> {
  for (;;) {
    const group = Math.floor(Math.random() * groups.length);
    const state = groups[group] as GroupState;
    const records: AcceptorRecord[] = [];
    const count = 1 + Math.floor(Math.random() * 3);
    for (let i = 0; i < count; i++) {
      let instanceId: number;
      const rewrite = state.recent[Math.floor(Math.random() * state.recent.length)];
      if (rewrite !== undefined && Math.random() < REWRITE_CHANCE && !records.some((r) => r.instanceId === rewrite)) {
        instanceId = rewrite;
      } else {
        instanceId = state.next++;
        state.recent.push(instanceId);
        if (state.recent.length > RECENT) state.recent.shift();
      }
      // Ballots are issued in put order, and puts are written in that order: the last write is the highest.
      const proposalId = (state.ballots.get(instanceId) ?? 0) + 1;
      state.ballots.set(instanceId, proposalId);
      records.push(workloadRecord(group, instanceId, proposalId));
    }
    await store.put(group, records, { sync: true });
    process.stdout.write(records.map((r) => `ack ${group} ${r.instanceId} ${r.accepted.proposalId}\n`).join(''));
    if (!state.trimming && state.next - state.trimmedTo >= KEEP + TRIM_EVERY) {
      // Runs while the other writers keep putting: cleaning races with appends and segment rolls.
      state.trimming = true;
      const below = state.next - KEEP;
      process.stdout.write(`trim ${group} ${below}\n`);
      await store.deleteBelow(group, below);
      state.trimmedTo = below;
      state.trimming = false;
    }
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`crash-child failed: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
