/**
 * Where the KV client sends a key's next request: the master of the key's group when it is known
 * and not suspect, else the next endpoint in turn. An endpoint is suspect once an attempt on it
 * went unanswered (silent, refused, cut off) and until it answers again: a frozen or isolated master
 * is routed around at once, while the other nodes are asked who the master is (a NOT_MASTER names it).
 */
import type { HttpReply } from './client-http.js';
import { groupOfKey } from './key-hash.js';

export class MasterRoutes {
  private readonly endpoints: readonly string[];
  /** Learned from answers: the number of groups, and each group's master endpoint. */
  private groups: number | undefined;
  private readonly masters = new Map<number, string>();
  private readonly suspects = new Set<string>();
  private next = 0;

  constructor(endpoints: readonly string[]) {
    this.endpoints = endpoints;
  }

  /** The master of the key's group when known and not suspect, else the next endpoint in turn. */
  endpointFor(key: string): string {
    const master = this.masterOf(key);
    return master !== undefined && !this.suspects.has(master) ? master : this.nextEndpoint();
  }

  /** The key's group, once an answer told how many groups there are. */
  groupOf(key: string): number | undefined {
    return this.groups === undefined ? undefined : groupOfKey(key, this.groups);
  }

  /** The master of the key's group as last learned (suspect or not). */
  masterOf(key: string): string | undefined {
    return this.groups === undefined ? undefined : this.masters.get(groupOfKey(key, this.groups));
  }

  /**
   * The next endpoint in turn other than `avoid`, skipping suspects; when every other one is
   * suspect, the next in turn all the same (it may have come back; there is nothing better to try).
   */
  nextEndpoint(avoid?: string): string {
    const count = this.endpoints.length;
    for (let tried = 0; tried < count; tried++) {
      const endpoint = this.endpoints[this.next++ % count] as string;
      if (endpoint !== avoid && !this.suspects.has(endpoint)) return endpoint;
    }
    const fallback = this.endpoints[this.next++ % count] as string;
    return fallback === avoid && count > 1 ? this.endpoints[this.next++ % count] as string : fallback;
  }

  /** A NOT_MASTER named the key's master: the next request for its group goes there. */
  setMaster(key: string, endpoint: string): void {
    if (this.groups !== undefined) this.masters.set(groupOfKey(key, this.groups), endpoint);
  }

  /** `endpoint` said it is not (or no longer) the master of the key's group. */
  forgetMaster(key: string, endpoint: string): void {
    if (this.groups === undefined) return;
    const group = groupOfKey(key, this.groups);
    if (this.masters.get(group) === endpoint) this.masters.delete(group);
  }

  suspect(endpoint: string): void {
    this.suspects.add(endpoint);
  }

  isSuspect(endpoint: string): boolean {
    return this.suspects.has(endpoint);
  }

  /** Any answer from `endpoint` (even an error) shows it is alive and reachable. */
  answered(endpoint: string): void {
    this.suspects.delete(endpoint);
  }

  /** Answers name the node that served them (the master, for a linearizable read or a write). */
  learn(key: string, reply: HttpReply, normalize: (endpoint: string) => string): void {
    const groups = Number(reply.headers['x-multipaxos-groups']);
    if (Number.isSafeInteger(groups) && groups > 0) {
      if (groups !== this.groups) this.masters.clear();
      this.groups = groups;
    }
    const served = reply.headers['x-multipaxos-endpoint'];
    const group = Number(reply.headers['x-multipaxos-group']);
    // Only answers a master gives: a success, or the outcome of a write it decided.
    const authoritative = (reply.status >= 200 && reply.status < 300) || reply.status === 409 ||
      reply.body.error === 'KEY_NOT_FOUND';
    if (typeof served === 'string' && Number.isSafeInteger(group) && authoritative && this.groups !== undefined &&
      groupOfKey(key, this.groups) === group) {
      const endpoint = parsedOrUndefined(served, normalize);
      if (endpoint !== undefined) this.masters.set(group, endpoint);
    }
  }
}

/**
 * A header naming an endpoint this client cannot use (a proxy's, a bad advertised address) is
 * ignored: learning must never turn an answer, such as an applied write's, into an error.
 */
function parsedOrUndefined(endpoint: string, normalize: (endpoint: string) => string): string | undefined {
  try {
    return normalize(endpoint);
  } catch {
    return undefined;
  }
}
