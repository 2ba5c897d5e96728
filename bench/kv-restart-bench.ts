/**
 * `npm run bench -- kv-restart`: how long a KV node takes to start again with N keys. The KV
 * state is rebuilt from the Paxos log at start-up (no snapshot), so this is the cost of that
 * choice: open the log store, replay every instance into the state machine, begin serving.
 *
 * One node (a one-member cluster: replay does not depend on the others) loads N keys of 100-byte
 * values through KvService with 256 writes in flight (so instances carry batches, as under real
 * load), stops, and starts again; the start is timed until the node serves linearizable reads
 * (master, fence executed), `--runs` times.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { parseFlags, UsageError, type FlagSpec } from '../src/cli/flags.js';
import { KvService } from '../src/kv/kv-service.js';
import type { MemberAddress } from '../src/node/node-options.js';

const FLAGS: FlagSpec = { keys: 'number', runs: 'number', json: 'boolean', help: 'boolean' };
const IN_FLIGHT = 256;
const VALUE = 'v'.repeat(100);

export const KV_RESTART_USAGE = `usage: npm run bench -- kv-restart [--keys 1000000] [--runs 3] [--json]

Loads --keys keys (100-byte values) into a one-node KV service, then times restarts: open the log,
replay it into the KV state machine, serve. Prints the median of --runs restarts.`;

export async function kvRestartBench(argv: readonly string[]): Promise<number> {
  const flags = parseFlags(argv, FLAGS);
  if (flags.help === true) {
    console.log(KV_RESTART_USAGE);
    return 0;
  }
  const keys = (flags.keys as number | undefined) ?? 1_000_000;
  const runs = (flags.runs as number | undefined) ?? 3;
  if (keys < 1 || runs < 1) throw new UsageError('--keys and --runs must be positive');
  const dir = await mkdtemp(join(tmpdir(), 'multipaxos-kv-restart-'));
  try {
    const port = await freePort();
    const start = (): Promise<KvService> => startNode(dir, port);
    const loadStarted = performance.now();
    let service = await start();
    // The node has been sole master before its first write can go through.
    await waitServing(service);
    let next = 0;
    await Promise.all(Array.from({ length: IN_FLIGHT }, async () => {
      while (next < keys) {
        const key = `key-${next++}`;
        await service.put(key, VALUE, { timeoutMs: 60_000 });
      }
    }));
    const loadSeconds = (performance.now() - loadStarted) / 1000;
    const instances = service.node.nowInstanceId(0);
    await service.stop();
    const restartsMs: number[] = [];
    const openMs: number[] = [];
    let heapMb = 0;
    for (let run = 0; run < runs; run++) {
      const began = performance.now();
      service = await start();
      const startedMs = performance.now() - began;
      // Serving means master with its fence executed: the log's last instance, which start-up
      // cannot know was chosen, has been decided again and executed by then.
      await waitServing(service);
      restartsMs.push(performance.now() - began);
      openMs.push(startedMs);
      const stats = service.machine.stats();
      if (stats.keys !== keys) throw new Error(`restart found ${stats.keys} keys, expected ${keys}`);
      heapMb = process.memoryUsage().heapUsed / 2 ** 20;
      await service.stop();
    }
    const sorted = [...restartsMs].sort((a, b) => a - b);
    const result = {
      keys, instances, loadSeconds: round(loadSeconds),
      restartMedianMs: Math.round(sorted[Math.floor(runs / 2)] as number),
      restartsMs: restartsMs.map(Math.round), startMs: openMs.map(Math.round), heapUsedMb: Math.round(heapMb),
      machine: `${cpus().length} × ${cpus()[0]?.model.trim() ?? 'unknown'}, ` +
        `${(totalmem() / 2 ** 30).toFixed(1)} GiB, Node ${process.version}`,
    };
    if (flags.json === true) console.log(JSON.stringify(result));
    else {
      console.log(`loaded ${keys} keys in ${result.loadSeconds} s (${instances} instances, ${IN_FLIGHT} writes in flight)`);
      console.log(`restart (open the log, replay, serve): median ${result.restartMedianMs} ms of ` +
        `${runs} [${result.restartsMs.join(', ')}] (of which PaxosNode.start: ${result.startMs.join(', ')}); ` +
        `heap after start ${result.heapUsedMb} MiB`);
      console.log(`machine: ${result.machine}`);
    }
    return 0;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function startNode(dir: string, port: number): Promise<KvService> {
  const members: MemberAddress[] = [{ id: 1, host: '127.0.0.1', port }];
  return await KvService.start({
    nodeId: 1, members, dataDir: join(dir, 'node-1'), groups: 1,
    masterLeaseMs: 1_000, httpEndpoint: 'http://127.0.0.1:1', sync: false,
  });
}

async function waitServing(service: KvService): Promise<void> {
  const deadline = performance.now() + 30_000;
  while (service.status()[0]?.serving !== true) {
    if (performance.now() > deadline) throw new Error('the node did not become master');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer().once('error', reject).listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

function round(value: number): number {
  return Math.round(value * 10) / 10;
}
