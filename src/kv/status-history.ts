/**
 * The last minutes of one node, for the status page and `multipaxos status --watch`: a bounded ring
 * of samples (rates and latencies over each interval) and a bounded list of recent events (master
 * and membership changes, errors).
 *
 * Why on the node rather than in the browser from successive polls: a page opened (or a terminal
 * started) now shows the minutes before it at once, every viewer sees the same figures, and the
 * node is the only one that sees every request it answered. Memory stays bounded: SAMPLES samples
 * and EVENTS events, whatever the load.
 */

/** What the node's counters read at one moment; all counts are cumulative since the node started. */
export interface StatusReading {
  /** Wall-clock time (ms since the epoch): shown to people, never used for any decision. */
  readonly at: number;
  readonly proposalsSucceeded: number;
  readonly proposalsFailed: Readonly<Record<string, number>>;
  /** KV requests answered here, by operation: how many, and their total latency in seconds. */
  readonly requests: Readonly<Record<string, { readonly count: number; readonly seconds: number }>>;
  /** KV requests answered here that ended in an error, by error code. */
  readonly requestErrors: Readonly<Record<string, number>>;
  readonly groups: readonly GroupReading[];
}

export interface GroupReading {
  readonly group: number;
  readonly nowInstanceId: number;
  /** 0: no master. */
  readonly masterNodeId: number;
  readonly membersVersion: number;
  readonly members: readonly number[];
  readonly halted: string | null;
}

/** One interval: rates are per second over it, latencies its mean in ms (null: no request). */
export interface HistorySample {
  readonly at: number;
  readonly proposalsPerSecond: number;
  readonly instancesPerSecond: number;
  readonly kvOpsPerSecond: number;
  readonly kvErrorsPerSecond: number;
  readonly writeLatencyMs: number | null;
  readonly readLatencyMs: number | null;
}

export type EventKind = 'started' | 'master' | 'membership' | 'error' | 'halted';

export interface StatusEvent {
  readonly at: number;
  readonly kind: EventKind;
  readonly text: string;
}

/** Five minutes of 2-second samples. */
export const SAMPLE_INTERVAL_MS = 2_000;
const SAMPLES = 150;
const EVENTS = 100;

/**
 * KV outcomes that are not faults of the cluster: answers to the caller's question, and NOT_MASTER,
 * which sends a client that asked not to be forwarded (KvClient does) to the master.
 */
const ORDINARY_OUTCOMES: ReadonlySet<string> = new Set(['KEY_NOT_FOUND', 'VERSION_CONFLICT', 'NOT_MASTER']);

export class StatusHistory {
  private readonly samples: HistorySample[] = [];
  private readonly events: StatusEvent[] = [];
  private last: StatusReading | undefined;

  constructor(startedAt: number) {
    this.push({ at: startedAt, kind: 'started', text: 'node started' });
  }

  /** Take a reading: a sample of the interval since the previous one, and the events between them. */
  record(reading: StatusReading): void {
    const before = this.last;
    this.last = reading;
    if (before === undefined) {
      for (const group of reading.groups) {
        if (group.masterNodeId === 0) continue;
        this.push({ at: reading.at, kind: 'master', text: `group ${group.group}: master is node ${group.masterNodeId}` });
      }
      return;
    }
    const seconds = Math.max(0.001, (reading.at - before.at) / 1000);
    const requests = (ops: readonly string[]): { count: number; seconds: number } => {
      let count = 0;
      let total = 0;
      for (const op of ops) {
        count += (reading.requests[op]?.count ?? 0) - (before.requests[op]?.count ?? 0);
        total += (reading.requests[op]?.seconds ?? 0) - (before.requests[op]?.seconds ?? 0);
      }
      return { count, seconds: total };
    };
    const writes = requests(['put', 'delete']);
    const reads = requests(['get']);
    const errors = sumOf(reading.requestErrors) - sumOf(before.requestErrors);
    let instances = 0;
    for (const group of reading.groups) {
      const previous = before.groups.find((other) => other.group === group.group);
      if (previous !== undefined) instances += Math.max(0, group.nowInstanceId - previous.nowInstanceId);
    }
    this.samples.push({
      at: reading.at,
      proposalsPerSecond: round((reading.proposalsSucceeded - before.proposalsSucceeded) / seconds),
      instancesPerSecond: round(instances / seconds),
      kvOpsPerSecond: round((writes.count + reads.count) / seconds),
      kvErrorsPerSecond: round(errors / seconds),
      writeLatencyMs: writes.count === 0 ? null : round((writes.seconds / writes.count) * 1000),
      readLatencyMs: reads.count === 0 ? null : round((reads.seconds / reads.count) * 1000),
    });
    if (this.samples.length > SAMPLES) this.samples.shift();
    this.noteChanges(before, reading);
  }

  /** The samples, oldest first. */
  recentSamples(): readonly HistorySample[] {
    return [...this.samples];
  }

  /** The events, newest first. */
  recentEvents(): readonly StatusEvent[] {
    return [...this.events].reverse();
  }

  private noteChanges(before: StatusReading, now: StatusReading): void {
    for (const group of now.groups) {
      const previous = before.groups.find((other) => other.group === group.group);
      if (previous === undefined) continue;
      if (previous.masterNodeId !== group.masterNodeId) {
        this.push({
          at: now.at, kind: 'master',
          text: group.masterNodeId === 0 ? `group ${group.group}: no master (node ${previous.masterNodeId} lost it)`
            : `group ${group.group}: master is node ${group.masterNodeId}` +
              (previous.masterNodeId === 0 ? '' : ` (was node ${previous.masterNodeId})`),
        });
      }
      if (previous.membersVersion !== group.membersVersion) {
        this.push({
          at: now.at, kind: 'membership',
          text: previous.membersVersion === -1
            ? `group ${group.group}: created with members ${group.members.join(', ')}`
            : `group ${group.group}: members are now ${group.members.join(', ')} (version ${group.membersVersion})`,
        });
      }
      if (previous.halted === null && group.halted !== null) {
        this.push({ at: now.at, kind: 'halted', text: `group ${group.group} halted: ${group.halted}` });
      }
    }
    type Counts = Readonly<Record<string, number>>;
    const counted = (label: string, nowCounts: Counts, then: Counts): void => {
      for (const [code, count] of Object.entries(nowCounts)) {
        const added = count - (then[code] ?? 0);
        if (added > 0 && !ORDINARY_OUTCOMES.has(code)) {
          this.push({ at: now.at, kind: 'error', text: `${added} ${label} failed with ${code}` });
        }
      }
    };
    counted('proposal(s)', now.proposalsFailed, before.proposalsFailed);
    counted('KV request(s)', now.requestErrors, before.requestErrors);
  }

  private push(event: StatusEvent): void {
    this.events.push(event);
    if (this.events.length > EVENTS) this.events.shift();
  }
}

function sumOf(counts: Readonly<Record<string, number>>): number {
  let total = 0;
  for (const [code, count] of Object.entries(counts)) if (!ORDINARY_OUTCOMES.has(code)) total += count;
  return total;
}

function round(value: number): number {
  return Math.round(value * 100) / 100;
}
