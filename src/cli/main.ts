#!/usr/bin/env node
/** The `multipaxos` command. */
import { certCommand } from './cert-command.js';
import { clusterCommand } from './cluster-command.js';
import { kvClientCommand, KV_CLIENT_USAGE, statusCommand } from './kv-client-command.js';
import { kvServeCommand, KV_SERVE_USAGE } from './kv-serve-command.js';
import { logCommand } from './log-inspect-command.js';
import { nodeCommand } from './node-command.js';
import { masterCommand, membersCommand, snapshotCommand } from './admin-commands.js';
import { simCommand } from './sim-command.js';
import { runCommand } from './run-command.js';
import { UsageError } from './flags.js';

const USAGE = `usage: multipaxos <command> [options]

commands:
  cluster up    start a local replicated KV cluster (npm start runs it; multipaxos cluster --help)
  kv serve      run one node of the replicated KV service (multipaxos kv serve --help)
  kv put|get|del|list|watch  write, read, delete, list and watch keys (multipaxos kv --help)
  status        show every node of a KV cluster (multipaxos status --help)
  node          run one node of a cluster with the echo state machine (see multipaxos node --help)
  members       list or change a group's members through a running node (multipaxos members --help)
  master        show or drop a group's master through a running node (multipaxos master --help)
  snapshot create  snapshot a running KV node's state now (multipaxos snapshot --help)
  sim           run the deterministic simulator (see multipaxos sim --help)
  log inspect   dump and verify a node's log store, read-only (see multipaxos log --help)
  cert init|issue|token  a cluster's CA, node certificates and API tokens (multipaxos cert --help)

Run 'multipaxos COMMAND --help' for a command's usage.`;

async function kvCommand(argv: readonly string[]): Promise<number> {
  const [action, ...rest] = argv;
  if (action === '--help' || action === 'help') {
    console.log(`${KV_SERVE_USAGE}\n\n${KV_CLIENT_USAGE}`);
    return 0;
  }
  if (action === undefined) throw new UsageError('kv needs an action: serve, put, get, del, list or watch');
  return action === 'serve' ? await kvServeCommand(rest) : await kvClientCommand(action, rest);
}

runCommand('multipaxos', USAGE, {
  cluster: clusterCommand, kv: kvCommand, status: statusCommand, node: nodeCommand, members: membersCommand,
  master: masterCommand, snapshot: snapshotCommand, sim: simCommand, log: logCommand, cert: certCommand,
}, process.argv.slice(2), {
  cluster: ['up'], kv: ['serve', 'put', 'get', 'del', 'delete', 'list', 'watch'], members: ['list', 'add', 'remove', 'change'],
  master: ['show', 'drop'], snapshot: ['create'], log: ['inspect'], cert: ['init', 'issue', 'token'],
});
