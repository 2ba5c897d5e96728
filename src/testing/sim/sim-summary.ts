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
  summary.simulatedSeconds += run.simulatedMs / 1000;
}

export function finishSummary(summary: SimSummary, wallMs: number): SimSummary {
  summary.failedSeeds.sort((a, b) => a - b);
  summary.wallSeconds = Math.round(wallMs) / 1000;
  const seconds = Math.max(wallMs / 1000, 1e-3);
  summary.seedsPerSecond = Math.round((summary.seeds / seconds) * 100) / 100;
  summary.instancesPerSecond = Math.round(summary.instancesChosen / seconds);
  summary.simulatedSeconds = Math.round(summary.simulatedSeconds);
  return summary;
}
