// The faults of a nemesis run. Each one is planned (whom it hits, from the run's seeded generator
// and who is master now), injected, held, and healed; the driver times it. Network faults are
// nftables cuts between node addresses (test/nemesis/firewall.ts); the others act on processes or
// on a node's disk.
import { closeSync, openSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Random } from '../support/random.js';
import { between, keepOnly, type Firewall } from './firewall.js';
import { paxosAddress, type KvNodes } from './nodes.js';

export const FAULT_KINDS = [
  'partition', 'one-way', 'isolate-master', 'ring', 'bridge', 'pause-master', 'kill-one', 'kill-two', 'replace-member',
  'disk-full',
] as const;
export type FaultKind = typeof FAULT_KINDS[number];

/**
 * What a run injects unless told otherwise: every kind. (A full disk joined once a node halted by
 * ENOSPC resumed by itself when space came back: before that its final state differed.)
 */
export const DEFAULT_FAULTS: readonly FaultKind[] = FAULT_KINDS;

/**
 * Faults after which the cluster must serve writes again within the bound: each leaves one majority
 * connected and the rest unable to form another. The others are checked for safety only: in a ring
 * or behind a bridge, majorities overlap without being connected, so a node that no longer hears the
 * master bids with a majority of its own and the two can keep pre-empting each other (seen: a group
 * without a write for a whole 5 s ring), which Paxos allows; and a full disk is a node's to recover.
 */
export const AVAILABILITY_ASSERTED: ReadonlySet<FaultKind> = new Set<FaultKind>([
  'partition', 'one-way', 'isolate-master', 'pause-master', 'kill-one', 'kill-two', 'replace-member',
]);

export interface FaultContext {
  readonly nodes: KvNodes;
  readonly firewall: Firewall;
  readonly random: Random;
  /** The current members; replace-member changes it in place. */
  readonly ids: number[];
  readonly groups: number;
  readonly leaseMs: number;
  /** The node serving `group` as master now (undefined when none does within a few seconds). */
  masterOf(group: number): Promise<number | undefined>;
  /** The node whose data directory is a small tmpfs (for disk-full), if any. */
  readonly smallDiskNode: number | undefined;
}

export interface PlannedFault {
  readonly kind: FaultKind;
  readonly label: string;
  readonly nodes: readonly number[];
  /** The shortest hold this fault needs to mean anything (a pause must outlast the lease). */
  readonly minimumHoldMs: number;
  inject(): Promise<void>;
  heal(): Promise<void>;
  /** What the fault found out, for its label once healed (e.g. how long a new node took to catch up). */
  outcome?(): string;
}

export function shuffled<T>(random: Random, list: readonly T[]): T[] {
  const copy = [...list];
  for (let index = copy.length - 1; index > 0; index--) {
    const other = random.int(index + 1);
    [copy[index], copy[other]] = [copy[other] as T, copy[index] as T];
  }
  return copy;
}

const set = (nodes: readonly number[]): string => `{${[...nodes].sort((a, b) => a - b).join(',')}}`;

/** The master of a random group, or a random node when no master shows up. */
async function someMaster(context: FaultContext): Promise<{ node: number; group: number; known: boolean }> {
  const group = context.random.int(context.groups);
  const master = await context.masterOf(group);
  return master === undefined ? { node: context.random.pick(context.ids), group, known: false }
    : { node: master, group, known: true };
}

export async function planFault(kind: FaultKind, context: FaultContext): Promise<PlannedFault> {
  const { firewall, nodes, random, ids } = context;
  const network = (label: string, hit: readonly number[], cuts: Parameters<Firewall['apply']>[0]): PlannedFault => ({
    kind, label, nodes: hit, minimumHoldMs: 0,
    inject: () => firewall.apply(cuts),
    heal: () => firewall.heal(),
  });
  switch (kind) {
    case 'partition': {
      // A random split into a minority and a majority, both ways.
      const order = shuffled(random, ids);
      const minority = order.slice(0, 1 + random.int(Math.floor((ids.length - 1) / 2)));
      const majority = order.filter((id) => !minority.includes(id));
      return network(`partition ${set(minority)} | ${set(majority)}`, minority, between(minority, majority));
    }
    case 'one-way': {
      // The master's packets to every other node are dropped; it still hears them.
      const { node, group } = await someMaster(context);
      const others = ids.filter((id) => id !== node);
      return network(`one-way: ${node} (master g${group}) -/-> ${set(others)}`, [node],
        others.map((to) => ({ from: node, to })));
    }
    case 'isolate-master': {
      const { node, group } = await someMaster(context);
      const others = ids.filter((id) => id !== node);
      return network(`isolate ${node} (master g${group})`, [node], between([node], others));
    }
    case 'ring': {
      // Each node reaches only its two neighbours on a random ring: every node sees a majority
      // (itself and two of five), no two majorities are the same.
      const order = shuffled(random, ids);
      const at = (id: number): number => order.indexOf(id);
      const adjacent = (x: number, y: number): boolean => {
        const distance = Math.abs(at(x) - at(y));
        return distance === 1 || distance === order.length - 1;
      };
      return network(`ring ${order.join('-')}-${order[0]}`, ids, keepOnly(ids, adjacent));
    }
    case 'bridge': {
      // Two halves that reach each other only through one bridge node.
      const order = shuffled(random, ids);
      const half = Math.floor((order.length - 1) / 2);
      const left = order.slice(0, half);
      const bridge = order[half] as number;
      const right = order.slice(half + 1);
      return network(`bridge ${set(left)} - ${bridge} - ${set(right)}`, [bridge], between(left, right));
    }
    case 'pause-master': {
      const { node, group } = await someMaster(context);
      return {
        kind, label: `SIGSTOP ${node} (master g${group})`, nodes: [node], minimumHoldMs: 2.5 * context.leaseMs,
        inject: async () => nodes.pause(node),
        heal: async () => nodes.resume(node),
      };
    }
    case 'kill-one':
    case 'kill-two': {
      const { node, group } = await someMaster(context);
      const victims = [node];
      if (kind === 'kill-two') victims.push(random.pick(ids.filter((id) => id !== node)));
      return {
        kind, label: `kill -9 ${victims.join(', ')} (${node}: master g${group})`, nodes: victims, minimumHoldMs: 0,
        inject: async () => {
          await Promise.all(victims.map((id) => nodes.kill(id)));
        },
        heal: async () => {
          await Promise.all(victims.map((id) => nodes.start(id)));
        },
      };
    }
    case 'replace-member': {
      // A node that is not the master is lost for good (kill -9, data deleted), and while it is down
      // the operator replaces it with a new, empty node in every group: a membership change during a
      // fault, with the new node catching up from nothing.
      const masters = new Set<number>();
      for (let group = 0; group < context.groups; group++) {
        const master = await context.masterOf(group);
        if (master !== undefined) masters.add(master);
      }
      // Not the node with the small disk: the disk-full fault needs it. A node added by an earlier
      // replacement goes first, so that at most one of the nodes the clients were given is ever lost.
      const eligible = ids.filter((id) => id !== context.smallDiskNode);
      const added = eligible.filter((id) => !nodes.settings.ids.includes(id));
      const candidates = added.length > 0 ? added : eligible;
      const followers = candidates.filter((id) => !masters.has(id));
      const lost = random.pick(followers.length > 0 ? followers : candidates);
      const fresh = Math.max(...nodes.started(), ...ids) + 1;
      const next = [...ids.filter((id) => id !== lost), fresh];
      let caughtUp = '';
      return {
        kind, label: `replace ${lost} by new node ${fresh}`, nodes: [lost, fresh], minimumHoldMs: 0,
        inject: async () => {
          await nodes.destroy(lost);
          await nodes.start(fresh, next);
          for (let group = 0; group < context.groups; group++) {
            await changeMember(next.filter((id) => id !== fresh).map((id) => nodes.endpoint(id)), group, lost, fresh);
          }
          ids.splice(0, ids.length, ...next);
        },
        // Healed once the new node has caught up: until then it cannot vote on new instances, so a
        // majority that needs it (a partition right after) could not decide anything.
        heal: async () => {
          const started = performance.now();
          const done = await waitForCatchUp(nodes.endpoint(fresh), next.filter((id) => id !== fresh)
            .map((id) => nodes.endpoint(id)), context.groups, 30_000);
          caughtUp = done ? `new node caught up ${((performance.now() - started) / 1000).toFixed(1)} s after the change`
            : 'new node NOT caught up 30 s after the change';
        },
        outcome: () => caughtUp,
      };
    }
    case 'disk-full': {
      const node = context.smallDiskNode;
      if (node === undefined) throw new Error('disk-full needs a node with a small disk');
      const filler = join(nodes.dataDir(node), 'nemesis-filler');
      return {
        kind, label: `disk of ${node} full`, nodes: [node], minimumHoldMs: 0,
        inject: async () => fillDisk(filler),
        heal: async () => {
          rmSync(filler, { force: true });
          // Whatever the node did about the full disk, it must come back: a node that exited restarts.
          if (!nodes.isRunning(node)) await nodes.start(node);
        },
      };
    }
  }
}

/** Write zeros to `path` until the file system says ENOSPC. */
function fillDisk(path: string): void {
  const chunk = Buffer.alloc(1024 * 1024);
  const fd = openSync(path, 'w');
  try {
    for (;;) {
      try {
        writeSync(fd, chunk);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOSPC') break;
        throw error;
      }
    }
    // The last bytes: a partial chunk may still fit.
    for (let size = 512 * 1024; size >= 512; size /= 2) {
      try {
        writeSync(fd, chunk, 0, size);
      } catch {
        // Full at this size; try smaller.
      }
    }
  } finally {
    closeSync(fd);
  }
}

/**
 * Replace member `from` by `to` in `group` through the admin API of any of `endpoints`, retrying
 * until the group's membership shows it (an attempt whose outcome was unknown may have done it).
 */
async function changeMember(endpoints: readonly string[], group: number, from: number, to: number): Promise<void> {
  const deadline = performance.now() + 30_000;
  let last = '';
  for (let attempt = 0; performance.now() < deadline; attempt++) {
    const endpoint = endpoints[attempt % endpoints.length] as string;
    try {
      const members = await fetch(`${endpoint}/v1/members?group=${group}`, { signal: AbortSignal.timeout(2_000) });
      const shown = await members.json() as { members?: { id: number }[] };
      if (members.ok && shown.members?.some((member) => member.id === to) === true) return;
      const address = paxosAddress(to);
      const reply = await fetch(`${endpoint}/v1/members/change?group=${group}`, {
        method: 'POST', signal: AbortSignal.timeout(5_000), headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ from, id: to, host: address.host, port: address.port }),
      });
      last = `${reply.status} ${await reply.text()}`;
      if (reply.ok) return;
    } catch (error) {
      last = (error as Error).message;
    }
    await sleep(300);
  }
  throw new Error(`could not replace ${from} by ${to} in group ${group} within 30 s: ${last}`);
}

/** Each group's instance as `endpoint` reports it (undefined when it does not answer). */
async function instances(endpoint: string): Promise<number[] | undefined> {
  try {
    const reply = await fetch(`${endpoint}/status`, { signal: AbortSignal.timeout(2_000) });
    const body = await reply.json() as { groups?: { nowInstanceId: number }[] };
    return body.groups?.map((group) => group.nowInstanceId);
  } catch {
    return undefined;
  }
}

/**
 * Wait until the node at `endpoint` is, in every group, within a few instances of the furthest of
 * `others` (writes go on meanwhile, so "equal" might never be seen). False after `timeoutMs`.
 */
async function waitForCatchUp(endpoint: string, others: readonly string[], groups: number, timeoutMs: number,
): Promise<boolean> {
  const SLACK = 5;
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    const own = await instances(endpoint);
    const theirs = (await Promise.all(others.map(instances))).filter((list) => list !== undefined);
    const furthest = Array.from({ length: groups }, (_, group) =>
      Math.max(0, ...theirs.map((list) => list[group] ?? 0)));
    if (own !== undefined && furthest.every((instance, group) => (own[group] ?? -1) >= instance - SLACK)) return true;
    await sleep(200);
  }
  return false;
}
