/** `npm run bench -- <name> [options]`: the project's benchmarks (built into dist/bench). */
import { STORAGE_USAGE, storageBench } from './storage-bench.js';
import { runCommand } from '../src/cli/run-command.js';

const USAGE = `usage: npm run bench -- <benchmark> [options]

benchmarks:
  storage   durable commit throughput and latency, recovery and bulk delete of the log store

${STORAGE_USAGE}`;

runCommand('bench', USAGE, { storage: storageBench }, process.argv.slice(2));
