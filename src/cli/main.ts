#!/usr/bin/env node
/** The `multipaxos` command. */
import { logCommand, LOG_USAGE } from './log-inspect-command.js';
import { simCommand, SIM_USAGE } from './sim-command.js';
import { UsageError } from './flags.js';

const USAGE = `usage: multipaxos <command> [options]

commands:
  sim           run the deterministic simulator (see multipaxos sim --help)
  log inspect   dump and verify a node's log store, read-only (see multipaxos log --help)

${SIM_USAGE}

${LOG_USAGE}`;

async function main(argv: readonly string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'sim':
      return simCommand(rest);
    case 'log':
      return logCommand(rest);
    case undefined:
    case 'help':
    case '--help':
      console.log(USAGE);
      return command === undefined ? 2 : 0;
    default:
      throw new UsageError(`unknown command "${command}"`);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    if (error instanceof UsageError) {
      console.error(`multipaxos: ${error.message}\n\n${USAGE}`);
      process.exitCode = 2;
    } else {
      console.error(error);
      process.exitCode = 1;
    }
  },
);
