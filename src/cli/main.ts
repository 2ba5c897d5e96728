#!/usr/bin/env node
/** The `multipaxos` command. */
import { logCommand, LOG_USAGE } from './log-inspect-command.js';
import { simCommand, SIM_USAGE } from './sim-command.js';
import { runCommand } from './run-command.js';

const USAGE = `usage: multipaxos <command> [options]

commands:
  sim           run the deterministic simulator (see multipaxos sim --help)
  log inspect   dump and verify a node's log store, read-only (see multipaxos log --help)

${SIM_USAGE}

${LOG_USAGE}`;

runCommand('multipaxos', USAGE, { sim: simCommand, log: logCommand }, process.argv.slice(2));
