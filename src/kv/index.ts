/**
 * multipaxos/kv: the replicated KV service (PhxPaxos's PhxKV as a product). `KvClient` talks to
 * a cluster over HTTP; `KvService` and `KvHttpServer` run one node of it inside your process, as
 * `multipaxos kv serve` does.
 */
export { KvClient, type KvClientOptions, type KvCallOptions, type KvPutOptions, type KvGetOptions, type KvValue,
  type KvDeleted, type KvListOptions, type KvPage } from './client.js';
export { KvWatch, KvWatchError, type KvWatchEvent, type KvWatchOptions,
  type KvWatchKeyOptions } from './client-watch.js';
export { KvWatchHub, type WatchOptions } from './watch-hub.js';
export { KvError, type KvErrorCode, type MasterHint } from './kv-error.js';
export {
  KvService, type KvServiceOptions, type KvWriteOptions, type KvReadOptions, type KvRecord, type KvGroupStatus,
  type KvWritten,
} from './kv-service.js';
export { type KvSnapshotOptions, type TakenSnapshot } from './kv-snapshotter.js';
export { KvHttpServer, type KvHttpServerOptions } from './http-server.js';
export { KvStateMachine, KV_STATE_MACHINE_ID, type KvOutcome } from './kv-state-machine.js';
export { groupOfKey } from './key-hash.js';
export { MAX_KEY_BYTES, MAX_KV_VALUE_BYTES } from './kv-command.js';
export { TokenStore, generateToken, type Role } from '../security/tokens.js';
export type { TlsFileOptions } from '../security/tls-files.js';
