/** `npm run bench -- <name> [options]`: the project's benchmarks (built into dist/bench). */
import { KV_USAGE, kvBench } from './kv-bench.js';
import { KV_RESTART_USAGE, kvRestartBench } from './kv-restart-bench.js';
import { KV_DISK_USAGE, kvDiskBench } from './kv-disk-bench.js';
import { CATCH_UP_USAGE, catchUpBench } from './catch-up-bench.js';
import { PROPOSE_USAGE, proposeBench } from './propose-bench.js';
import { STORAGE_USAGE, storageBench } from './storage-bench.js';
import { runCommand } from '../src/cli/run-command.js';

const USAGE = `usage: npm run bench -- <benchmark> [options]

benchmarks:
  propose   proposals/s and latency through real node processes on loopback, fsync on
  storage   durable commit throughput and latency, recovery and bulk delete of the log store
  kv        closed-loop puts against a 3-node cluster of ours and a 3-member etcd cluster, side by side,
            and plain HTTP over every node against etcd and a no-consensus Node HTTP server
  kv-restart  how long a KV node takes to start again with a million keys (whole log, then from a snapshot)
  kv-disk   the disk a KV node uses over millions of puts with snapshots and log cleaning, against its bound
  catch-up  how fast a restarted node catches up: from its peers' logs, and by a snapshot transfer

${PROPOSE_USAGE}

${STORAGE_USAGE}

${KV_USAGE}

${KV_RESTART_USAGE}

${KV_DISK_USAGE}

${CATCH_UP_USAGE}`;

runCommand('bench', USAGE, { propose: proposeBench, storage: storageBench, kv: kvBench, 'kv-restart': kvRestartBench,
  'kv-disk': kvDiskBench, 'catch-up': catchUpBench }, process.argv.slice(2));
