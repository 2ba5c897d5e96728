/**
 * `multipaxos cluster up`: a local KV cluster of child processes (`multipaxos kv serve`), for
 * trying the service and for scripts. It prints the endpoints, then a status line whenever a node
 * comes or goes or a master changes, and once every group has a master serving it, a line
 * `ready URL,URL,...`. A node that dies is restarted (node-supervisor.ts, restart-backoff.ts).
 * SIGINT/SIGTERM stop every node cleanly and exit 0. The data directory keeps the cluster's shape
 * (cluster.json), so starting again resumes with the data intact.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { KvClient } from '../kv/client.js';
import { ensureClusterSecrets } from '../security/cluster-secrets.js';
import { CommandError, listenFailure, parseFlags, UsageError, type FlagSpec } from './flags.js';
import { DEFAULT_BASE_PORT } from './kv-client-command.js';
import { KV_DEFAULT_GROUPS, KV_DEFAULT_LEASE_MS } from './kv-serve-command.js';
import { masterPlacementOf } from './masters-flag.js';
import { nodeArgs, type ClusterShape } from './cluster-node.js';
import { sayNodeEvent } from './cluster-events.js';
import { SupervisedNode, type SupervisorEvent } from './node-supervisor.js';
import { DEFAULT_RESTART_POLICY } from './restart-backoff.js';

const FLAGS: FlagSpec = {
  nodes: 'number', dir: 'string', 'base-port': 'number', groups: 'number', host: 'string', 'master-lease': 'number',
  sync: 'boolean', json: 'boolean', help: 'boolean', 'segment-mb': 'number', 'log-hold': 'number',
  'snapshot-every': 'number', 'clean-interval': 'number', restart: 'boolean', tls: 'boolean', masters: 'string',
};

export const CLUSTER_USAGE = `usage: multipaxos cluster up [--nodes 3] [--dir ./data] [--base-port ${DEFAULT_BASE_PORT}] [--groups ${KV_DEFAULT_GROUPS}]
                           [--master-lease MS] [--masters together] [--host 127.0.0.1] [--sync=false] [--json]
                           [--segment-mb N] [--log-hold N] [--snapshot-every N] [--clean-interval MS]
                           [--restart=false] [--tls]

Starts a local replicated KV cluster: one \`multipaxos kv serve\` process per node, node i with its
HTTP API on BASE+i and Paxos on BASE+100+i, its data in DIR/node-i. Prints the endpoints, a status
line on every change, and "ready URL,URL,..." once every group has a master and every running
node knows where each group's master is (or 10 s after the masters, if one node lags). A node that dies
(a crash, kill -9, a non-zero exit) is restarted after 0.5 s, doubling on each death in a row up to
10 s (30 s of running resets it); one that fails to start 5 times in a row is reported and left
down. A node that exits 0 (stopped with SIGTERM/SIGINT) stays down. Ctrl-C or SIGTERM stops every
node cleanly and exits 0; if cluster up is killed, its nodes stop by themselves. Run it again with
the same --dir and the data is still there. \`npm start\` runs it.
  --nodes N          voting members (default 3; 1 to 9)
  --dir DIR          data directory (default ./data)
  --base-port P      see above (default ${DEFAULT_BASE_PORT}: HTTP on ${DEFAULT_BASE_PORT + 1}.., Paxos on ${DEFAULT_BASE_PORT + 101}..)
  --groups G         Paxos groups the keys are spread over (default ${KV_DEFAULT_GROUPS})
  --master-lease MS  master lease (default ${KV_DEFAULT_LEASE_MS})
  --masters P        where the groups' masters start out: together (default: all on node 1, so the
                     nodes' Paxos traffic is a star; about 1.45x the writes/s of spread at 64
                     clients on a 2-core machine, see docs/kv-service.md) or spread (group g on
                     node g mod N + 1). Only the start is steered: a master lost later moves
                     to whichever node wins the election
  --segment-mb N     each node's log segment size in MiB (default 8: a fresh node holds two, 16 MiB)
  --log-hold N       instances of log each node keeps below its newest snapshot (default 20000)
  --snapshot-every N each node snapshots a group after N instances (default 10000)
  --clean-interval MS  time between each node's log cleaning passes (default 1000; 0: never clean)
  --restart=false    do not restart nodes that die (for tests that kill and restart nodes themselves)
  --tls              secure the cluster (docs/security.md): a CA, node certificates and an admin
                     token are made in DIR/tls (kept for the next start); nodes talk mutual TLS,
                     the API is HTTPS and needs the token. How to use it with curl and the CLI is
                     printed. A cluster started with --tls keeps it (--tls=false to turn it off)
  --json             print events as JSON lines instead of text`;

const POLL_MS = 500;
/** Every group has had a master this long: ready, even if a live node does not know them all yet. */
const READY_WITHOUT_EVERY_NODE_MS = 10_000;
const STOP_GRACE_MS = 15_000;

export async function clusterCommand(argv: readonly string[]): Promise<number> {
  const [action, ...rest] = argv;
  const flags = parseFlags(rest, FLAGS);
  if (action === '--help' || flags.help === true) {
    console.log(CLUSTER_USAGE);
    return 0;
  }
  if (action === undefined) throw new UsageError('cluster needs an action: up');
  if (action !== 'up') throw new UsageError(`unknown cluster action "${action}" (up)`);
  const json = flags.json === true;
  // A local cluster's nodes share one machine's cores: its masters start out together unless asked.
  flags.masters = masterPlacementOf(flags.masters) ?? 'together';
  const dir = resolve((flags.dir as string | undefined) ?? './data');
  const shape = await loadShape(dir, {
    nodes: flags.nodes as number | undefined, groups: flags.groups as number | undefined,
    basePort: flags['base-port'] as number | undefined, host: flags.host as string | undefined,
    masterLeaseMs: flags['master-lease'] as number | undefined, tls: flags.tls as boolean | undefined,
  });
  const ids = Array.from({ length: shape.nodes }, (_, index) => index + 1);
  for (const id of ids) {
    for (const port of [shape.basePort + id, shape.basePort + 100 + id]) await checkPortFree(shape.host, port);
  }
  await writeFile(join(dir, 'cluster.json'), `${JSON.stringify(shape, null, 2)}\n`);
  const secrets = shape.tls === true ? await ensureClusterSecrets(dir, ids, shape.host).catch((error: Error) => {
    throw new CommandError(`--tls: ${error.message}`, 2);
  }) : undefined;
  const say = (event: string, fields: Record<string, unknown>, text: string): void => {
    console.log(json ? JSON.stringify({ event, ...fields }) : text);
  };

  let stopping = false;
  let wakeUp: () => void = () => {};
  // process.on, not once: Ctrl-C under `npm start` delivers SIGINT twice (from the terminal and
  // forwarded by npm), and a second one must not kill cluster up halfway through stopping its nodes.
  const onSignal = (): void => {
    stopping = true;
    wakeUp();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const report = (event: SupervisorEvent): void => {
    if (!stopping) sayNodeEvent(say, event);
  };
  const restarts = flags.restart !== false;
  const nodes = ids.map((id) => new SupervisedNode(id, nodeArgs(id, shape, dir, flags), report,
    restarts ? DEFAULT_RESTART_POLICY : null));
  const host = shape.host.includes(':') ? `[${shape.host}]` : shape.host;
  const scheme = secrets === undefined ? 'http' : 'https';
  const endpoints = ids.map((id) => `${scheme}://${host}:${shape.basePort + id}`);
  const described = nodes.map((node, index) => ({
    id: node.id, endpoint: endpoints[index], paxos: `${shape.host}:${shape.basePort + 100 + node.id}`, pid: node.pid,
  }));
  const statusPage = `${endpoints[0] as string}/ui`;
  say('starting', { nodes: described, groups: shape.groups, dir, endpoints, restarts, statusPage },
    `multipaxos cluster: ${shape.nodes} nodes, ${shape.groups} groups, data in ${dir}\n` +
    described.map((node) => `  node ${node.id}  ${node.endpoint}  paxos ${node.paxos}  pid ${node.pid ?? '?'}`)
      .join('\n') + `\n  status page: ${statusPage} (every node serves it)`);
  if (secrets !== undefined) {
    say('tls', { ca: secrets.ca, adminTokenFile: secrets.adminTokenFile, tokens: secrets.tokens },
      `TLS: nodes talk mutual TLS, the API is HTTPS with CA ${secrets.ca} and needs a token ` +
      `(admin token in ${secrets.adminTokenFile}; more roles in ${secrets.tokens}). Use it with:\n` +
      `  export MULTIPAXOS_ENDPOINTS=${endpoints.join(',')} MULTIPAXOS_CA=${secrets.ca} ` +
      `MULTIPAXOS_TOKEN=$(cat ${secrets.adminTokenFile})\n` +
      '  multipaxos kv put greeting hello && multipaxos kv get greeting\n' +
      `  curl --cacert ${secrets.ca} -H "Authorization: Bearer $MULTIPAXOS_TOKEN" ${endpoints[0]}/v1/kv/greeting`);
  }

  const client = new KvClient({
    endpoints, timeoutMs: 1_000,
    ...(secrets === undefined ? {} : { ca: await readFile(secrets.ca), token: secrets.adminToken }),
  });
  let ready = false;
  let mastersSince: number | undefined;
  let lastSummary = '';
  let killed: number[] = [];
  try {
    while (!stopping) {
      if (nodes.every((node) => node.state === 'stopped' || node.state === 'gave-up' || node.state === 'exited')) {
        // Every node stopped on request (Ctrl-C in a terminal reaches them too): a clean stop.
        if (nodes.every((node) => node.state === 'stopped')) break;
        say('failed', {}, 'every node exited; see the messages above');
        return 1;
      }
      const view = await observe(client, endpoints, shape.groups);
      if (view.summary !== lastSummary) {
        lastSummary = view.summary;
        say('status', { up: view.up, masters: view.masters }, `status: ${view.summary}`);
      }
      const mastered = view.masters.every((master) => master !== null);
      mastersSince = mastered ? mastersSince ?? performance.now() : undefined;
      // Ready once a request to any live node is served: each knows where every group's master is.
      // A node that does not get there (a long replay at restart) holds the line back at most a while.
      const live = nodes.filter((node) => node.state === 'running').map((node) => node.id);
      const everyNodeRoutes = live.every((id) => view.routing.includes(id));
      if (!ready && !stopping && mastersSince !== undefined &&
        (everyNodeRoutes || performance.now() - mastersSince >= READY_WITHOUT_EVERY_NODE_MS)) {
        ready = true;
        say('ready', { endpoints, routing: view.routing }, `ready ${endpoints.join(',')}`);
      }
      await Promise.race([sleep(POLL_MS, undefined, { ref: false }), new Promise<void>((wake) => { wakeUp = wake; })]);
    }
  } finally {
    stopping = true;
    client.close();
    if (!json) console.log('stopping...');
    const stuck = await Promise.all(nodes.map(async (node) => await node.stop(STOP_GRACE_MS)));
    killed = nodes.filter((_, index) => stuck[index]).map((node) => node.id);
  }
  if (killed.length > 0) {
    say('stopped', { killed }, `stopped; node(s) ${killed.join(', ')} did not stop within ${STOP_GRACE_MS} ms ` +
      'and were killed');
    return 1;
  }
  say('stopped', {}, 'stopped');
  return 0;
}

/** The shape saved in the data directory wins over defaults; a different one given by flag is refused. */
async function loadShape(dir: string, given: Partial<ClusterShape>): Promise<ClusterShape> {
  const file = join(dir, 'cluster.json');
  let saved: ClusterShape | undefined;
  try {
    saved = JSON.parse(await readFile(file, 'utf8')) as ClusterShape;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw new UsageError(`${file}: ${(error as Error).message}`);
  }
  const shape: ClusterShape = {
    nodes: given.nodes ?? saved?.nodes ?? 3,
    groups: given.groups ?? saved?.groups ?? KV_DEFAULT_GROUPS,
    basePort: given.basePort ?? saved?.basePort ?? DEFAULT_BASE_PORT,
    host: given.host ?? saved?.host ?? '127.0.0.1',
    masterLeaseMs: given.masterLeaseMs ?? saved?.masterLeaseMs ?? KV_DEFAULT_LEASE_MS,
    // Saved only when on: a plain cluster's cluster.json stays as it was.
    ...(given.tls ?? saved?.tls ?? false ? { tls: true } : {}),
  };
  if (!Number.isInteger(shape.masterLeaseMs) || shape.masterLeaseMs < 1_000) {
    throw new UsageError('--master-lease must be at least 1000 ms');
  }
  if (!Number.isInteger(shape.nodes) || shape.nodes < 1 || shape.nodes > 9) throw new UsageError('--nodes must be 1 to 9');
  if (!Number.isInteger(shape.groups) || shape.groups < 1 || shape.groups > 64) {
    throw new UsageError('--groups must be 1 to 64');
  }
  if (!Number.isInteger(shape.basePort) || shape.basePort < 1 || shape.basePort + 200 > 65_535) {
    throw new UsageError('--base-port must leave room for 200 ports below 65536');
  }
  if (saved !== undefined) {
    for (const field of ['nodes', 'groups'] as const) {
      if (saved[field] !== shape[field]) {
        throw new UsageError(`${dir} holds a cluster of ${saved.nodes} nodes and ${saved.groups} groups; ` +
          `start it with those, or use another --dir`);
      }
    }
  }
  await mkdir(dir, { recursive: true });
  return shape;
}

interface ClusterView {
  readonly up: number[];
  /** The nodes that know, for every group, the master to send its requests to (or are it). */
  readonly routing: number[];
  /** Per group, the node serving it as master, or null. */
  readonly masters: (number | null)[];
  readonly summary: string;
}

async function observe(client: KvClient, endpoints: readonly string[], groups: number): Promise<ClusterView> {
  const masters: (number | null)[] = new Array<number | null>(groups).fill(null);
  const up: number[] = [];
  const reports = new Map<number, readonly GroupReport[]>();
  // A node that exited is still asked: someone may have started it again by hand.
  await Promise.all(endpoints.map(async (endpoint, index) => {
    try {
      const status = await client.status(endpoint, { timeoutMs: 1_000 });
      up.push(index + 1);
      const reported = (status.groups as GroupReport[] | undefined) ?? [];
      reports.set(index + 1, reported);
      for (const group of reported) {
        if (group.serving && group.group < groups) masters[group.group] = index + 1;
      }
    } catch {
      // Not answering (yet): it counts as down in this round.
    }
  }));
  up.sort((a, b) => a - b);
  // A node routes a group when it serves it, or names its serving master with an endpoint.
  const routing = up.filter((nodeId) => masters.every((master, group) => master !== null &&
    (reports.get(nodeId) ?? []).some((report) => report.group === group && (report.serving ||
      (report.master?.nodeId === master && typeof report.master.endpoint === 'string')))));
  const summary = `nodes up ${up.length}/${endpoints.length} [${up.join(',')}] | ` +
    masters.map((master, group) => `g${group} master ${master ?? 'none'}`).join(' | ');
  return { up, routing, masters, summary };
}

/** What `observe` reads of a group in a node's /status. */
interface GroupReport {
  readonly group: number;
  readonly serving: boolean;
  readonly master?: { readonly nodeId?: number; readonly endpoint?: string | null } | null;
}

async function checkPortFree(host: string, port: number): Promise<void> {
  await new Promise<void>((resolvePort, reject) => {
    const probe = createServer();
    probe.once('error', (error: NodeJS.ErrnoException) => reject(error.code === 'EADDRINUSE'
      ? new CommandError(`port ${port} on ${host} is in use (is another cluster running? try --base-port)`, 2)
      : listenFailure(`${host}:${port}`, error) ?? new CommandError(`cannot listen on ${host}:${port}: ${error.message}`, 2)));
    probe.listen(port, host, () => probe.close(() => resolvePort()));
  });
}
