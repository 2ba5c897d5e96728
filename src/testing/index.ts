/**
 * multipaxos/testing: the deterministic simulator (and `simulate()`, which runs your own state
 * machines in it), the hand-driven core harness and a linearizability checker (with a model of the
 * KV service), for testing this library and the state machines built on it.
 */
export {
  simulate, type ChosenValue, type SimRandom, type SimulatedCluster, type SimulatedNode, type SimulateFailure,
  type SimulateOptions, type SimulateReport, type SimulateRun, type SimProposalPlace, type SimValue,
} from './sim/simulate.js';
export type { SimProcess } from './sim/sim-application.js';
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
export {
  checkLinearizability, UNKNOWN, type CheckOptions, type CheckResult, type Counterexample, type Model, type Operation,
  type Unknown,
} from './linearizability.js';
export {
  historyRecorder, kvModel, type HistoryRecorder, type KvClientLike, type KvInput, type KvOperation, type KvOutput,
  type KvReadOutput, type KvState, type KvWriteCallOptions, type KvWriteOutput, type OperationHandle,
  type RecordedOperation, type RecorderCounts,
} from './kv-model.js';
