// Watches across faults on a real `multipaxos cluster up` cluster (3 node processes, 2 groups, a 1 s
// lease), under a write load: kill -9 of group 0's master (a watcher's node; a master change; the
// node restarted), SIGSTOP of group 1's master for 3 s (a node cut off: a new master, its watcher
// goes silent and moves on; thawed, it lags), then watches resumed on the lagging and the restarted
// node from cursors taken elsewhere (etcd #15271: a watch must not travel back in time). The checker
// (test/support/watch-checker.ts) holds every watcher to every acknowledged write of its keys, in
// version order, with no gap and no duplicate; and `multipaxos kv watch` prints the changes too.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { KvClient } from '../../src/kv/client.js';
import type { KvWatch, KvWatchEvent } from '../../src/kv/client-watch.js';
import { KvError } from '../../src/kv/kv-error.js';
import { clusterScope, spawnCli, startClusterUp } from '../support/cluster-up.js';
import { MasterNemesis } from '../support/kv-nemesis.js';
import { checkWatcher, type WrittenValue } from '../support/watch-checker.js';

const PREFIX = 'w/';
const KEYS = 8;
const WRITERS = 4;
const HEARTBEAT_MS = 300;

interface Consumer {
  readonly name: string;
  readonly watch: KvWatch;
  readonly events: KvWatchEvent[];
  readonly done: Promise<unknown>;
}

function consume(name: string, watch: KvWatch): Consumer {
  const events: KvWatchEvent[] = [];
  const done = (async () => {
    for await (const event of watch) events.push(event);
  })().then(() => undefined, (error: unknown) => error);
  return { name, watch, events, done };
}

async function until(condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) return false;
    await sleep(50);
  }
  return true;
}

test('watches across a master kill and restart, a frozen master and resumes on lagging nodes', { timeout: 180_000 },
  async (t) => {
    const { dir, track, undo } = await clusterScope(t, 'kv-watch-faults');
    const cluster = await startClusterUp({
      dir, json: true, flags: ['--groups', '2', '--master-lease', '1000', '--restart=false'], track,
    });
    const { endpoints } = cluster;
    const writerClient = new KvClient({ endpoints, timeoutMs: 8_000 });
    const probe = new KvClient({ endpoints, timeoutMs: 1_000 });
    const nemesis = new MasterNemesis({ dir, endpoints, probe, track });
    const clients: KvClient[] = [writerClient, probe];
    undo.push(() => {
      nemesis.thawAll();
      for (const client of clients) client.close();
    });
    /** A watch that starts on node `first` (1-based), then tries the others. */
    const watchFrom = (first: number, cursor?: string): KvWatch => {
      const ordered = [...endpoints.slice(first - 1), ...endpoints.slice(0, first - 1)];
      const client = new KvClient({ endpoints: ordered });
      clients.push(client);
      return client.watch(PREFIX, { cursor, heartbeatMs: HEARTBEAT_MS });
    };
    const consumers: Consumer[] = [];
    undo.push(() => { for (const consumer of consumers) consumer.watch.close(); });
    // One watcher per node, each started before any write, so each owes every version from 1.
    for (let node = 1; node <= 3; node++) consumers.push(consume(`node ${node}`, watchFrom(node)));
    assert.ok(await until(() => consumers.every(({ watch }) => watch.cursor !== undefined), 10_000), 'watchers started');

    // The CLI's watch too, from node 3.
    const cli = spawnCli(['kv', 'watch', PREFIX, '--json', '--endpoints', [...endpoints].reverse().join(',')]);
    track.push(cli);
    const watchesOn = async (endpoint: string): Promise<number> =>
      ((await probe.status(endpoint).catch(() => ({}))) as { watches?: number }).watches ?? 0;
    const watching = async (): Promise<number> =>
      (await Promise.all(endpoints.map(watchesOn))).reduce((a, b) => a + b, 0);
    const deadline = Date.now() + 10_000;
    while (await watching() < 4) {
      assert.ok(Date.now() < deadline, 'the CLI watch connected');
      await sleep(50);
    }

    const writes: WrittenValue[] = [];
    let writing = true;
    const writers = Array.from({ length: WRITERS }, async (_, w) => {
      for (let seq = 0; writing; seq++) {
        const key = `${PREFIX}k${(w + seq * WRITERS) % KEYS}`;
        const value = `w${w}-${seq}`;
        try {
          const { version } = await writerClient.put(key, value);
          writes.push({ key, value, version });
        } catch (error) {
          if (!(error instanceof KvError)) throw error;
          writes.push({ key, value, version: undefined });
        }
      }
    });

    await sleep(2_000);
    // A master change with a watcher's node killed under it; the node comes back after a second.
    const beforeKill = consumers.map(({ watch, events }) => ({ nodeId: watch.nodeId, count: events.length }));
    const kill = await nemesis.killAndRestart(0, 1_000);
    // A cursor from before the kill, of a watcher that was not on the killed node.
    const baseIndex = beforeKill.findIndex(({ nodeId, count }) => nodeId !== kill.nodeId && count > 0);
    const restartedBase = consumers[baseIndex] as Consumer;
    const baseCount = beforeKill[baseIndex]?.count ?? 0;
    const cursorBeforeKill = restartedBase?.events[baseCount - 1]?.cursor;
    await sleep(2_000);
    // A master cut off for 3 s (frozen): a new master is elected; its watcher hears nothing and moves.
    const pause = await nemesis.pause(1, 3_000);
    // Just thawed, that node lags: a watch resumed there from another watcher's newest cursor must
    // wait for it (or move on), never stream from its older state.
    const ahead = consumers.find(({ watch }) => watch.nodeId !== pause.nodeId) as Consumer;
    const aheadCount = ahead.events.length;
    const lagging = consume(`resumed on lagging node ${pause.nodeId}`, watchFrom(pause.nodeId, ahead.watch.cursor));
    consumers.push(lagging);
    // The restarted node, from a cursor taken before it was killed.
    const restarted = consume(`resumed on restarted node ${kill.nodeId}`, watchFrom(kill.nodeId, cursorBeforeKill));
    consumers.push(restarted);
    await sleep(2_000);
    writing = false;
    await Promise.all(writers);

    // Every watcher must reach the last acknowledged version of every key.
    const lastAcked = new Map<string, number>();
    for (const { key, version } of writes) {
      if (version !== undefined) lastAcked.set(key, Math.max(lastAcked.get(key) ?? 0, version));
    }
    const caughtUp = (events: readonly KvWatchEvent[], from: readonly KvWatchEvent[] = []): boolean =>
      [...lastAcked].every(([key, version]) =>
        [...from, ...events].some((event) => event.key === key && event.version >= version));
    await until(() => consumers.slice(0, 3).every(({ events }) => caughtUp(events)) &&
      caughtUp(lagging.events, ahead.events.slice(0, aheadCount)) &&
      caughtUp(restarted.events, restartedBase.events.slice(0, baseCount)), 20_000);
    for (const consumer of consumers) consumer.watch.close();
    const endings = await Promise.all(consumers.map(({ done }) => done));
    endings.forEach((ending, index) =>
      assert.equal(ending, undefined, `${consumers[index]?.name} ended with ${String(ending)}`));

    t.diagnostic(`faults: ${JSON.stringify(nemesis.faults.map(({ kind, group, nodeId }) => ({ kind, group, nodeId })))}`);
    for (const { name, watch, events } of consumers) {
      t.diagnostic(`${name}: ${events.length} events, ${watch.connections} connections, ends on node ${watch.nodeId}`);
    }
    const acknowledged = writes.filter(({ version }) => version !== undefined).length;
    assert.ok(acknowledged > 50, `only ${acknowledged} writes were acknowledged`);
    for (const consumer of consumers.slice(0, 3)) {
      assert.deepEqual(checkWatcher(PREFIX, writes, consumer.events), [], consumer.name);
    }
    assert.ok(cursorBeforeKill !== undefined && baseCount > 0, 'a cursor from before the kill');
    assert.deepEqual(checkWatcher(PREFIX, writes, [...ahead.events.slice(0, aheadCount), ...lagging.events]), [],
      lagging.name);
    const restartedSeen = [...restartedBase.events.slice(0, baseCount), ...restarted.events];
    assert.deepEqual(checkWatcher(PREFIX, writes, restartedSeen), [], restarted.name);
    // Those two were served where they were resumed, in one connection: the lagging node waited
    // for the cursor (saying so each heartbeat, so the client did not leave it for dead), and the
    // restarted node, which took no snapshot in so short a run, replayed its log into its history.
    for (const [consumer, nodeId] of [[lagging, pause.nodeId], [restarted, kill.nodeId]] as const) {
      assert.deepEqual([consumer.watch.nodeId, consumer.watch.connections], [nodeId, 1], consumer.name);
    }
    // The faults did move watchers: the killed and the frozen node's watchers reconnected.
    const reconnected = consumers.slice(0, 3).filter(({ watch }) => watch.connections > 1).length;
    assert.ok(reconnected >= 1, 'some watcher reconnected');

    // The CLI's watch notices a frozen node only after three of its default heartbeats (15 s).
    const printedSoFar = (): KvWatchEvent[] =>
      cli.stdout().split('\n').filter((line) => line.endsWith('}')).map((line) => JSON.parse(line) as KvWatchEvent);
    await until(() => caughtUp(printedSoFar()), 30_000);
    cli.child.kill('SIGINT');
    const exit = await cli.exited;
    assert.equal(exit.code, 0, cli.stderr());
    const printed = cli.stdout().trim().split('\n').map((line) => JSON.parse(line) as KvWatchEvent);
    assert.deepEqual(checkWatcher(PREFIX, writes, printed), [], 'kv watch --json');
  });
