/** `npm run bench -- <name> [options]`: the project's benchmarks (built into dist/bench). */
import { STORAGE_USAGE, storageBench } from './storage-bench.js';
import { UsageError } from '../src/cli/flags.js';

const USAGE = `usage: npm run bench -- <benchmark> [options]

benchmarks:
  storage   durable commit throughput and latency, recovery and bulk delete of the log store

${STORAGE_USAGE}`;

async function main(argv: readonly string[]): Promise<number> {
  const [name, ...rest] = argv;
  switch (name) {
    case 'storage':
      return storageBench(rest);
    case undefined:
    case 'help':
    case '--help':
      console.log(USAGE);
      return name === undefined ? 2 : 0;
    default:
      throw new UsageError(`unknown benchmark "${name}"`);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    if (error instanceof UsageError) {
      console.error(`bench: ${error.message}\n\n${USAGE}`);
      process.exitCode = 2;
    } else {
      console.error(error);
      process.exitCode = 1;
    }
  },
);
