/**
 * `multipaxos node`: run one node of a cluster with the echo state machine (examples/echo), and
 * propose what arrives on standard input, one value per line (typed, or piped by a script). Each
 * executed value is printed; the proposer also prints where its value was chosen. SIGINT and
 * SIGTERM stop the node gracefully. Started with an IPC channel, it also serves node-control.ts.
 */
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { EchoStateMachine } from '../../examples/echo/echo-state-machine.js';
import { PaxosError } from '../errors.js';
import { isLoopbackHost } from '../kv/cleartext-guard.js';
import { PaxosNode } from '../node/paxos-node.js';
import { SILENT_LOGGER } from '../runtime/interfaces.js';
import { STDERR_LOGGER } from './stderr-logger.js';
import { stopSignal } from './stop-signal.js';
import { parseFlags, UsageError, type FlagSpec } from './flags.js';
import { serveControlChannel } from './node-control.js';
import { startAdminServer } from '../node/admin-api.js';
import { parseAddress, parsePeers } from './peer-list.js';

const FLAGS: FlagSpec = {
  id: 'number', listen: 'string', peers: 'string', data: 'string', groups: 'number', cluster: 'string',
  sync: 'boolean', quiet: 'boolean', verbose: 'boolean', 'timeout-ms': 'number', 'max-batch': 'number', help: 'boolean',
  'master-lease': 'number', admin: 'string', 'tls-dir': 'string', 'inline-write-bytes': 'number',
};

export const NODE_USAGE = `usage: multipaxos node --id N --listen HOST:PORT --peers 1=HOST:PORT,2=HOST:PORT,3=HOST:PORT
                       --data DIR [--groups G] [--cluster NAME] [--sync=false] [--quiet] [--verbose]
                       [--inline-write-bytes N]

Runs one node with the echo state machine. Each line typed (or piped) on standard input is proposed
("G:text" proposes to group G, otherwise group 0); every node prints each value it executes, and
the proposer prints the instance it was chosen in. Ctrl-C stops it cleanly.
  --id N           this node's id (a positive integer, never reused)
  --listen H:P     the address to listen on
  --peers LIST     every node of the cluster as ID=HOST:PORT, comma-separated (this one may be included)
  --data DIR       the node's log directory (created if missing)
  --groups G       independent Paxos groups (default 1)
  --cluster NAME   nodes refuse peers from another cluster (default multipaxos)
  --sync=false     do not fsync (fast, and not durable: for experiments only)
  --timeout-ms T   propose timeout (default 10000)
  --max-batch N    proposals one instance may carry (default 1000; 1 turns batching off)
  --inline-write-bytes N  durable log writes of up to N bytes are made on the event loop's
                   thread (default 65536; 0: all through the thread pool)
  --master-lease MS  elect a master in every group with this lease (at least 1000; default: no election)
  --admin H:P      serve the admin endpoint (multipaxos members / master) on this address (plain
                   HTTP, no authentication: with --tls-dir it must be a loopback address)
  --tls-dir DIR    mutual TLS between nodes with DIR/ca.crt and DIR/node-<id>.crt/.key, as
                   'multipaxos cert init/issue --dir DIR' make them (see docs/security.md)
  --quiet          do not print executed values
  --verbose        log the node's own events to standard error`;

export async function nodeCommand(argv: readonly string[]): Promise<number> {
  const flags = parseFlags(argv, FLAGS);
  if (flags.help === true) {
    console.log(NODE_USAGE);
    return 0;
  }
  const nodeId = required(flags.id, '--id') as number;
  const listen = parseAddress(required(flags.listen, '--listen') as string, '--listen');
  const members = parsePeers(required(flags.peers, '--peers') as string, '--peers');
  if (!members.some((member) => member.id === nodeId)) members.push({ id: nodeId, ...listen });
  const adminAddress = flags.admin === undefined ? undefined : parseAddress(flags.admin as string, '--admin');
  // The admin endpoint is plain HTTP with no authentication: with --tls-dir the operator asked for
  // a secured cluster, and an open endpoint that can drop masters and change members must not undo
  // that from the network.
  if (adminAddress !== undefined && flags['tls-dir'] !== undefined && !isLoopbackHost(adminAddress.host)) {
    throw new UsageError(`--admin ${adminAddress.host}:${adminAddress.port} with --tls-dir: the admin endpoint has no `
      + 'TLS or authentication; bind it to loopback (127.0.0.1, ::1 or localhost)');
  }
  const quiet = flags.quiet === true;
  const echo = new EchoStateMachine(quiet ? undefined : ({ groupIndex, instanceId, value }) => {
    console.log(`executed group ${groupIndex} instance ${instanceId}: ${Buffer.from(value).toString('utf8')}`);
  });
  // Signals, and a parent process that goes away, stop the node, even while it is starting.
  // The control channel (when there is one) is closed when the node stops; it may keep it alive until then.
  const { requested: stopRequested, request: requestStop } = stopSignal({ unrefChannel: false });
  const node = await PaxosNode.start({
    nodeId, members, listen, dataDir: required(flags.data, '--data') as string,
    groups: flags.groups as number | undefined, clusterId: flags.cluster as string | undefined,
    sync: flags.sync as boolean | undefined, proposeTimeoutMs: flags['timeout-ms'] as number | undefined,
    maxBatchCount: flags['max-batch'] as number | undefined,
    inlineWriteBytes: flags['inline-write-bytes'] as number | undefined,
    ...(flags['master-lease'] === undefined ? {} : { master: { groups: 'all', leaseMs: flags['master-lease'] as number } }),
    onMasterChange: quiet ? undefined : (group, master) => {
      console.log(`master of group ${group}: ${master === undefined ? 'none' : `node ${master.nodeId}`}`);
    },
    stateMachines: [echo], logger: flags.verbose === true ? STDERR_LOGGER : SILENT_LOGGER,
    ...(flags['tls-dir'] === undefined ? {} : { tls: tlsDirFiles(flags['tls-dir'] as string, nodeId) }),
  });
  const address = node.address();
  if (!quiet) console.log(`node ${nodeId} listening on ${address?.host}:${address?.port}; type a value to propose it`);

  const admin = adminAddress === undefined ? undefined
    : await startAdminServer(node, adminAddress.host, adminAddress.port);
  const stopped = stopRequested.then(async () => {
    if (admin !== undefined) {
      const closed = new Promise<void>((resolve) => admin.close(() => resolve()));
      admin.closeAllConnections();
      await closed;
    }
    await node.stop();
  });
  const control = serveControlChannel(node, echo, () => {
    requestStop();
    return stopped;
  });
  const input = control === null ? proposeFromInput(node, quiet) : null;
  try {
    await stopped;
  } finally {
    input?.close();
    control?.close();
  }
  if (!quiet) console.log(`node ${nodeId} stopped`);
  return 0;
}

function proposeFromInput(node: PaxosNode, quiet: boolean): ReturnType<typeof createInterface> {
  const lines = createInterface({ input: process.stdin, terminal: false });
  lines.on('line', (line) => {
    const match = /^(\d+):(.*)$/.exec(line);
    const group = match === null ? 0 : Number(match[1]);
    const text = match === null ? line : match[2] as string;
    if (text.length === 0) return;
    node.propose(group, text).then(({ instanceId, batchIndex }) => {
      if (!quiet) console.log(`chosen: group ${group} instance ${instanceId} batch index ${batchIndex}: ${text}`);
    }, (error: unknown) => {
      const detail = error instanceof PaxosError ? `${error.code}${error.mayBeChosen ? ' (may still be chosen)' : ''}: ${error.message}` : String(error);
      console.error(`not chosen: ${text}: ${detail}`);
    });
  });
  return lines;
}

function required(value: unknown, flag: string): unknown {
  if (value === undefined) throw new UsageError(`${flag} is required`);
  return value;
}

/** The files `multipaxos cert init/issue --dir DIR` make for node `nodeId`. */
function tlsDirFiles(dir: string, nodeId: number): { ca: string; cert: string; key: string } {
  return { ca: join(dir, 'ca.crt'), cert: join(dir, `node-${nodeId}.crt`), key: join(dir, `node-${nodeId}.key`) };
}
