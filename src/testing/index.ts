/**
 * multipaxos/testing: the deterministic simulator and the hand-driven core harness, for testing
 * this library and the state machines built on it.
 */
export { runSeed, CANARIES, FREQUENT_CANARIES, LIVENESS_BOUND_MS, type CanaryName, type SimRunOptions, type SimRunResult } from './sim/simulator.js';
export { addRun, emptySummary, finishSummary, type SimSummary } from './sim/sim-summary.js';
export { chooseSwarm, describeSwarm, type SwarmConfig } from './sim/swarm.js';
export { SimScheduler } from './sim/scheduler.js';
export { SimNetwork, type NetworkFaults, type NetworkStats } from './sim/sim-network.js';
export { SimDisk, type DiskFaults } from './sim/sim-disk.js';
export { AgreementChecker, ExecutionChecker, Violations } from './sim/checkers.js';
export { CoreHarness, restoreFromRecords, type CoreHarnessOptions, type HarnessNode, type MessageFilter } from './core-harness.js';
export { fullCrc32 } from './crc32.js';
export { LazyFileSystem, type LazyFileSystemOptions } from './lazy-file-system.js';
export { NodeCluster, type ClusterOptions, type ControlReply, type GroupSummary } from './process-cluster.js';
