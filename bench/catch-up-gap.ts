/**
 * The large-gap part of `npm run bench -- catch-up` (`--part gap`): a node that missed a million
 * instances (`--instances`) catches up while the cluster keeps writing.
 *
 * Three node processes (catch-up-child.ts) take 100 proposals through consensus (the group identity
 * and the log's first records are real), then all stop. The logs of nodes 1 and 2 are extended
 * with the gap by the fixture builder (catch-up-fixture.ts: the real FileLogStore, identical chosen
 * records, the checksum chain continued), and their state machine reports the gap as checkpointed,
 * so they start without replaying it. Nodes 1 and 2 start again and node 1 runs a closed loop of
 * `--writers` proposals (one value per instance, as everywhere in this benchmark); its rate is
 * measured alone for 2 s. Then node 3 starts from its old log and learns everything through the
 * protocol over TCP from its peers' logs, while the loop goes on.
 *
 * Reported: instances/s and MB/s (log record bytes learned) from node 3's first learned instance
 * to the instance the cluster was at when node 3 started, the time from its start to there, the
 * time until it also holds what was written meanwhile (current), and the writers' proposals/s alone
 * and from node 3's start to caught up.
 */
import { recordBytesOnDisk } from '../src/io/file-log-store.js';
import type { ChildCluster } from './catch-up-cluster.js';
import { appendChosen, fixtureBallot, fixtureValue, readLogEnd } from './catch-up-fixture.js';

const PAYLOAD_BYTES = 100;
const WRITERS_ALONE_MS = 2_000;

export interface GapRun {
  readonly build: string;
  readonly instances: number;
  /** Building the two logs of the gap (not part of the catch-up). */
  readonly fixtureMs: number;
  /** Node 3's process start to its start returning (its log opened). */
  readonly startMs: number;
  readonly toFirstLearnMs: number;
  /** From the first learned instance to the instance the cluster was at when node 3 started. */
  readonly streamMs: number;
  readonly instancesPerSec: number;
  readonly mbPerSec: number;
  /** From node 3's start returning to caught up with the gap. */
  readonly toCaughtUpMs: number;
  /** From caught up with the gap to holding what the writers added meanwhile. */
  readonly thenCurrentMs: number;
  readonly stallsMs: readonly number[];
  readonly writersAlonePerSec: number;
  readonly writersDuringPerSec: number;
  readonly load: number;
}

export interface GapOptions {
  readonly build: string;
  readonly label: string;
  readonly instances: number;
  readonly writers: number;
  readonly timeoutMs: number;
  readonly create: () => Promise<ChildCluster>;
  /** Stop the nodes gracefully at the end, so their CPU profiles get written. */
  readonly profiling: boolean;
  readonly load: () => number;
}

export async function gapRun(options: GapOptions): Promise<GapRun> {
  const cluster = await options.create();
  try {
    await Promise.all([1, 2, 3].map((id) => cluster.start(id)));
    await ok(cluster.request(1, { type: 'load', count: 100, inFlight: 8 }));
    await untilEqual(cluster, [1, 2, 3]);
    for (const id of [3, 1, 2]) await cluster.stop(id);

    const fixtureBegan = performance.now();
    const ends = await Promise.all([1, 2].map((id) => readLogEnd(cluster.dataDir(id))));
    const [end1, end2] = ends as [Awaited<ReturnType<typeof readLogEnd>>, Awaited<ReturnType<typeof readLogEnd>>];
    if (end1.nextInstanceId !== end2.nextInstanceId || end1.checksum !== end2.checksum) {
      throw new Error(`nodes 1 and 2 stopped at different log ends: ${JSON.stringify(ends)}`);
    }
    const ballot = fixtureBallot(ends);
    await Promise.all([1, 2].map((id) => appendChosen(cluster.dataDir(id), end1, ballot, options.instances,
      PAYLOAD_BYTES)));
    const fixtureMs = performance.now() - fixtureBegan;
    const checkpointThrough = end1.nextInstanceId + options.instances - 1;
    await Promise.all([1, 2].map((id) => cluster.start(id, undefined, checkpointThrough)));

    await ok(cluster.request(1, { type: 'write', inFlight: options.writers }));
    await sleep(500);
    const aloneFrom = await status(cluster, 1);
    const aloneBegan = performance.now();
    await sleep(WRITERS_ALONE_MS);
    const aloneTo = await status(cluster, 1);
    const writersAlonePerSec = ((aloneTo.written as number) - (aloneFrom.written as number)) /
      ((performance.now() - aloneBegan) / 1000);

    const load = options.load();
    const before = await status(cluster, 1);
    const target = before.nowInstanceId as number;
    const startedAt = performance.now();
    await cluster.start(3, target);
    const report = await cluster.caughtUp(3, options.timeoutMs);
    const caughtUpAt = performance.now();
    const after = await status(cluster, 1);
    const writersDuringPerSec = ((after.written as number) - (before.written as number)) /
      ((caughtUpAt - startedAt) / 1000);
    await untilCurrent(cluster, options.timeoutMs);
    const thenCurrentMs = performance.now() - caughtUpAt;
    await ok(cluster.request(1, { type: 'stopWrite' }));

    const streamMs = report.caughtUpMs - report.firstLearnMs;
    const learned = report.nowInstanceId - report.firstInstance;
    const recordBytes = recordBytesOnDisk(fixtureValue(0, PAYLOAD_BYTES).length);
    return {
      build: options.label, instances: learned, fixtureMs: Math.round(fixtureMs), startMs: Math.round(report.startMs),
      toFirstLearnMs: Math.round(report.firstLearnMs), streamMs: Math.round(streamMs),
      instancesPerSec: Math.round(learned / (streamMs / 1000)),
      mbPerSec: round(learned * recordBytes / 1e6 / (streamMs / 1000)),
      toCaughtUpMs: Math.round(report.caughtUpMs), thenCurrentMs: Math.round(thenCurrentMs), stallsMs: report.stallsMs,
      writersAlonePerSec: Math.round(writersAlonePerSec), writersDuringPerSec: Math.round(writersDuringPerSec),
      load: round(load),
    };
  } finally {
    if (options.profiling) await cluster.stopAll();
    await cluster.destroy();
  }
}

async function status(cluster: ChildCluster, id: number): Promise<Record<string, unknown>> {
  return await ok(cluster.request(id, { type: 'status' }));
}

/** Until every node in `ids` is at the same instance (the load's last values learned everywhere). */
async function untilEqual(cluster: ChildCluster, ids: readonly number[]): Promise<void> {
  const deadline = performance.now() + 30_000;
  for (;;) {
    const at = await Promise.all(ids.map(async (id) => (await status(cluster, id)).nowInstanceId as number));
    if (at.every((instance) => instance === at[0])) return;
    if (performance.now() > deadline) throw new Error(`nodes stay at different instances: ${at.join(', ')}`);
    await sleep(50);
  }
}

/** Until node 3 reaches the instance node 1 was at a moment before (the writers go on meanwhile). */
async function untilCurrent(cluster: ChildCluster, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  const mark = (await status(cluster, 1)).nowInstanceId as number;
  while (((await status(cluster, 3)).nowInstanceId as number) < mark) {
    if (performance.now() > deadline) throw new Error(`node 3 did not reach instance ${mark}`);
    await sleep(5);
  }
}

async function ok(reply: Promise<{ ok: boolean; [field: string]: unknown }>): Promise<Record<string, unknown>> {
  const result = await reply;
  if (!result.ok) throw new Error(`request failed: ${JSON.stringify(result)}`);
  return result;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function round(value: number): number {
  return Math.round(value * 10) / 10;
}
