#!/usr/bin/env node
/** The `multipaxos` command. */
import { logCommand, LOG_USAGE } from './log-inspect-command.js';
import { nodeCommand, NODE_USAGE } from './node-command.js';
import { simCommand, SIM_USAGE } from './sim-command.js';
import { runCommand } from './run-command.js';

const USAGE = `usage: multipaxos <command> [options]

commands:
  node          run one node of a cluster with the echo state machine (see multipaxos node --help)
  sim           run the deterministic simulator (see multipaxos sim --help)
  log inspect   dump and verify a node's log store, read-only (see multipaxos log --help)

${NODE_USAGE}

${SIM_USAGE}

${LOG_USAGE}`;

runCommand('multipaxos', USAGE, { node: nodeCommand, sim: simCommand, log: logCommand }, process.argv.slice(2));
