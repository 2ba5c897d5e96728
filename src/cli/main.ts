#!/usr/bin/env node
/** The `multipaxos` command. */
import { clusterCommand, CLUSTER_USAGE } from './cluster-command.js';
import { kvClientCommand, KV_CLIENT_USAGE, statusCommand, STATUS_USAGE } from './kv-client-command.js';
import { kvServeCommand, KV_SERVE_USAGE } from './kv-serve-command.js';
import { logCommand, LOG_USAGE } from './log-inspect-command.js';
import { nodeCommand, NODE_USAGE } from './node-command.js';
import {
  masterCommand, membersCommand, snapshotCommand, MASTER_USAGE, MEMBERS_USAGE, SNAPSHOT_USAGE,
} from './admin-commands.js';
import { simCommand, SIM_USAGE } from './sim-command.js';
import { runCommand } from './run-command.js';

const USAGE = `usage: multipaxos <command> [options]

commands:
  cluster up    start a local replicated KV cluster (npm start runs it; multipaxos cluster --help)
  kv serve      run one node of the replicated KV service (multipaxos kv serve --help)
  kv put|get|del  write, read and delete keys (multipaxos kv --help)
  status        show every node of a KV cluster (multipaxos status --help)
  node          run one node of a cluster with the echo state machine (see multipaxos node --help)
  members       list or change a group's members through a running node (multipaxos members --help)
  master        show or drop a group's master through a running node (multipaxos master --help)
  snapshot create  snapshot a running KV node's state now (multipaxos snapshot --help)
  sim           run the deterministic simulator (see multipaxos sim --help)
  log inspect   dump and verify a node's log store, read-only (see multipaxos log --help)

${CLUSTER_USAGE}

${KV_SERVE_USAGE}

${KV_CLIENT_USAGE}

${STATUS_USAGE}

${NODE_USAGE}

${MEMBERS_USAGE}

${MASTER_USAGE}

${SNAPSHOT_USAGE}

${SIM_USAGE}

${LOG_USAGE}`;

async function kvCommand(argv: readonly string[]): Promise<number> {
  const [action, ...rest] = argv;
  if (action === undefined || action === '--help' || action === 'help') {
    console.log(`${KV_SERVE_USAGE}\n\n${KV_CLIENT_USAGE}`);
    return action === undefined ? 2 : 0;
  }
  return action === 'serve' ? await kvServeCommand(rest) : await kvClientCommand(action, rest);
}

runCommand('multipaxos', USAGE, {
  cluster: clusterCommand, kv: kvCommand, status: statusCommand, node: nodeCommand, members: membersCommand,
  master: masterCommand, snapshot: snapshotCommand, sim: simCommand, log: logCommand,
}, process.argv.slice(2));
