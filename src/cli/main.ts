#!/usr/bin/env node
/** The `multipaxos` command. */
import { logCommand, LOG_USAGE } from './log-inspect-command.js';
import { nodeCommand, NODE_USAGE } from './node-command.js';
import { masterCommand, membersCommand, MASTER_USAGE, MEMBERS_USAGE } from './admin-commands.js';
import { simCommand, SIM_USAGE } from './sim-command.js';
import { runCommand } from './run-command.js';

const USAGE = `usage: multipaxos <command> [options]

commands:
  node          run one node of a cluster with the echo state machine (see multipaxos node --help)
  members       list or change a group's members through a running node (multipaxos members --help)
  master        show or drop a group's master through a running node (multipaxos master --help)
  sim           run the deterministic simulator (see multipaxos sim --help)
  log inspect   dump and verify a node's log store, read-only (see multipaxos log --help)

${NODE_USAGE}

${MEMBERS_USAGE}

${MASTER_USAGE}

${SIM_USAGE}

${LOG_USAGE}`;

runCommand('multipaxos', USAGE, { node: nodeCommand, members: membersCommand, master: masterCommand, sim: simCommand, log: logCommand }, process.argv.slice(2));
