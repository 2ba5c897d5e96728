/** Aggregates many runs into the summary `npm run sim` prints. */
import type { CanaryName, SimRunResult } from './simulator.js';

export interface SimSummary {
  seeds: number;
  failures: number;
  failedSeeds: number[];
  instancesChosen: number;
  noopsChosen: number;
  executions: number;
  crashes: number;
  crashesDuringWrite: number;
  partitions: number;
  pauses: number;
  messages: number;
  messagesLost: number;
  messagesDuplicated: number;
  messagesByKind: Record<string, number>;
  proposalsChosen: number;
  masterChanges: number;
  masterDrops: number;
  membershipChanges: number;
  /** Seeds with checkpoints on, snapshot saves (durable), checkpoints sent and installed, checks. */
  checkpointSeeds: number;
  snapshotsSaved: number;
  checkpointsSent: number;
  checkpointsInstalled: number;
  checkpointCrashes: number;
  restoresChecked: number;
  statesCompared: number;
  ackedViaSnapshot: number;
  /**
   * Per seed, the longest wait of a healthy majority with a proposal pending (stall-checker.ts), in
   * ms; finishSummary turns them into the median, 90th percentile and the worst seed.
   */
  longestStalls: { seed: number; ms: number }[];
  stallMedianMs: number;
  stallP90Ms: number;
  worstStall: { seed: number; groupIndex: number; fromMs: number; ms: number } | null;
  simulatedSeconds: number;
  wallSeconds: number;
  seedsPerSecond: number;
  instancesPerSecond: number;
  canary: CanaryName | null;
}

export function emptySummary(canary: CanaryName | null): SimSummary {
  return {
    seeds: 0, failures: 0, failedSeeds: [], instancesChosen: 0, noopsChosen: 0, executions: 0, crashes: 0,
    crashesDuringWrite: 0,
    partitions: 0, pauses: 0, messages: 0, messagesLost: 0, messagesDuplicated: 0, messagesByKind: {},
    proposalsChosen: 0, masterChanges: 0, masterDrops: 0, membershipChanges: 0,
    checkpointSeeds: 0, snapshotsSaved: 0, checkpointsSent: 0, checkpointsInstalled: 0, checkpointCrashes: 0,
    restoresChecked: 0, statesCompared: 0, ackedViaSnapshot: 0,
    longestStalls: [], stallMedianMs: 0, stallP90Ms: 0, worstStall: null,
    simulatedSeconds: 0, wallSeconds: 0, seedsPerSecond: 0, instancesPerSecond: 0, canary,
  };
}

export function addRun(summary: SimSummary, run: SimRunResult): void {
  summary.seeds++;
  if (!run.ok) {
    summary.failures++;
    summary.failedSeeds.push(run.seed);
  }
  summary.instancesChosen += run.instancesChosen;
  summary.noopsChosen += run.noopsChosen;
  summary.executions += run.executions;
  summary.crashes += run.faults.crashes;
  summary.crashesDuringWrite += run.faults.crashesDuringWrite;
  summary.partitions += run.faults.partitions;
  summary.pauses += run.faults.pauses;
  summary.messages += run.network.sent;
  summary.messagesLost += run.network.lost;
  summary.messagesDuplicated += run.network.duplicated;
  for (const [kind, count] of Object.entries(run.network.byKind)) {
    summary.messagesByKind[kind] = (summary.messagesByKind[kind] ?? 0) + count;
  }
  summary.proposalsChosen += run.workload.chosen;
  summary.masterChanges += run.masterChanges;
  summary.masterDrops += run.faults.masterDrops;
  summary.membershipChanges += run.membershipChanges;
  if (run.config.includes('checkpoints=')) summary.checkpointSeeds++;
  summary.snapshotsSaved += run.checkpoints.saved;
  summary.checkpointsSent += run.checkpoints.sent;
  summary.checkpointsInstalled += run.checkpoints.installed;
  summary.checkpointCrashes += run.faults.checkpointCrashes;
  summary.restoresChecked += run.checkpoints.restoresChecked;
  summary.statesCompared += run.checkpoints.statesCompared;
  summary.ackedViaSnapshot += run.checkpoints.ackedViaSnapshot;
  const stall = run.longestStall;
  summary.longestStalls.push({ seed: run.seed, ms: stall === null ? 0 : Math.round(stall.ms) });
  if (stall !== null && (summary.worstStall === null || stall.ms > summary.worstStall.ms)) {
    summary.worstStall = { seed: run.seed, groupIndex: stall.groupIndex, fromMs: Math.round(stall.fromMs),
      ms: Math.round(stall.ms) };
  }
  summary.simulatedSeconds += run.simulatedMs / 1000;
}

export function finishSummary(summary: SimSummary, wallMs: number): SimSummary {
  summary.failedSeeds.sort((a, b) => a - b);
  summary.longestStalls.sort((a, b) => a.seed - b.seed);
  const stalls = summary.longestStalls.map((stall) => stall.ms).sort((a, b) => a - b);
  summary.stallMedianMs = percentile(stalls, 0.5);
  summary.stallP90Ms = percentile(stalls, 0.9);
  summary.wallSeconds = Math.round(wallMs) / 1000;
  const seconds = Math.max(wallMs / 1000, 1e-3);
  summary.seedsPerSecond = Math.round((summary.seeds / seconds) * 100) / 100;
  summary.instancesPerSecond = Math.round(summary.instancesChosen / seconds);
  summary.simulatedSeconds = Math.round(summary.simulatedSeconds);
  return summary;
}

/** The value below which `share` of the sorted values lie (nearest rank); 0 for none. */
function percentile(sorted: readonly number[], share: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.ceil(share * sorted.length) - 1)] as number;
}
