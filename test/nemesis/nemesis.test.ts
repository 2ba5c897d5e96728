// The nemesis suite in CI (test/nemesis/driver.ts does the work): five KV nodes in a private network
// namespace, six clients (four KvClients, two plain HTTP, each on the keys of one group), and every
// fault once, in an order drawn from a printed seed (NEMESIS_SEED=N repeats it): partitions (random,
// one-way, isolated master, ring, bridge), SIGSTOP of the master beyond the lease, kill -9 of one and
// of two nodes, and a member replaced while lost; clocks run at rates within the lease's drift bound
// (libfaketime). Asserted: the history is linearizable (and a forged stale read in it is caught),
// stale reads return only written values, no acknowledged write is lost, every node ends in the same
// state, and after every fault that leaves one connected majority (not the ring, not the bridge) a
// write succeeds again within the lease-derived bound, in every group and for every KvClient. It
// needs root, `ip netns` and nft, and skips saying so without them. The history and the timeline
// picture stay in a temporary directory whose path is printed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DriverResult } from './driver.js';
import { AVAILABILITY_ASSERTED, DEFAULT_FAULTS, type FaultKind } from './faults.js';
import type { HistoryFile } from './history-file.js';
import { createNamespace, nemesisUnsupported } from './netns.js';
import { faketimeAvailable } from './nodes.js';

const DRIVER = fileURLToPath(new URL('./driver.js', import.meta.url));
/** The driver is killed (and the namespace removed) if it has not finished by then. */
const DRIVER_DEADLINE_MS = 210_000;

test('nemesis: partitions, pauses, kills, member replacement and clock skew on real processes', {
  timeout: DRIVER_DEADLINE_MS + 30_000,
}, async (t) => {
  const why = await nemesisUnsupported();
  if (why !== undefined) {
    t.diagnostic(`SKIPPED: the nemesis suite cannot run here: ${why}`);
    console.log(`nemesis suite skipped: ${why}`);
    t.skip(why);
    return;
  }
  const seed = Number(process.env.NEMESIS_SEED ?? Math.floor(Math.random() * 2 ** 31));
  const out = mkdtempSync(join(tmpdir(), 'multipaxos-nemesis-ci-'));
  t.diagnostic(`seed ${seed} (NEMESIS_SEED=${seed} repeats it); history and timeline in ${out}`);
  const data = mkdtempSync(join(tmpdir(), 'multipaxos-nemesis-data-'));
  const namespace = await createNamespace();
  let output = '';
  let code: number | null;
  try {
    const driver = namespace.spawn(process.execPath, [DRIVER, '--out', out, '--data', data, '--seed', String(seed),
      '--hold', '5000', '--quiet', '3000'], 'pipe');
    driver.stdout?.on('data', (chunk: Buffer) => { output += chunk.toString('utf8'); });
    driver.stderr?.on('data', (chunk: Buffer) => { output += chunk.toString('utf8'); });
    const deadline = setTimeout(() => driver.kill('SIGTERM'), DRIVER_DEADLINE_MS);
    code = await new Promise<number | null>((resolve) => driver.once('exit', (exit) => resolve(exit)));
    clearTimeout(deadline);
  } finally {
    // Whatever happened: every process in the namespace killed, the namespace and the data gone.
    await namespace.remove();
    rmSync(data, { recursive: true, force: true, maxRetries: 3 });
  }
  for (const line of output.trimEnd().split('\n')) t.diagnostic(line);
  assert.ok(existsSync(join(out, 'result.json')), `the driver wrote no result (exit ${code}):\n${output}`);
  const result = JSON.parse(readFileSync(join(out, 'result.json'), 'utf8')) as DriverResult;
  assert.deepEqual(result.failures, [], `seed ${seed}`);
  assert.equal(code, 0, output);
  assert.equal(result.linearizability.result, 'ok');
  assert.equal(result.linearizability.forgedRejected, true);

  // Every fault ran once, and after each that leaves one connected majority the cluster took writes
  // again within the bound.
  assert.deepEqual(result.faults.map((fault) => fault.kind).sort(), [...DEFAULT_FAULTS].sort());
  for (const fault of result.faults) {
    assert.equal(fault.asserted, AVAILABILITY_ASSERTED.has(fault.kind as FaultKind), fault.label);
    if (!fault.asserted) continue;
    assert.ok(fault.worstGroupGapMs <= result.groupBoundMs, `${fault.label}: ${fault.worstGroupGapMs} ms without a write`);
    assert.ok(fault.kvClientGapMs <= result.clientBoundMs, `${fault.label}: a KvClient ${fault.kvClientGapMs} ms`);
  }
  // Clocks were skewed wherever libfaketime is installed (.ci/run installs it).
  if (faketimeAvailable()) assert.equal(Object.keys(result.clockRates).length, 5, JSON.stringify(result.clockRates));
  else t.diagnostic('clock skew left out: libfaketime is not installed');
  // Enough happened to mean something.
  assert.ok(result.operations.ok! >= 2_000, `only ${result.operations.ok} operations succeeded`);
  assert.ok(result.operations.staleReadsOk! >= 200, `only ${result.operations.staleReadsOk} stale reads answered`);

  // The files a person opens: the history, and the picture with a band per fault.
  const history = JSON.parse(readFileSync(result.files.history, 'utf8')) as HistoryFile;
  assert.equal(history.faults.length, result.faults.length);
  assert.equal(history.operations.length, result.operations.total);
  const svg = readFileSync(result.files.timeline, 'utf8');
  assert.match(svg, /^<svg /);
  for (const fault of history.faults) assert.ok(svg.includes(fault.label.replace(/>/g, '&gt;')), fault.label);
  t.diagnostic(`timeline: ${result.files.timeline}`);
});
