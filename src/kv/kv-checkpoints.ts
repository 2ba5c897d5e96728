/**
 * The KV snapshot files of a node, shared by the writers and readers of them: the snapshotter
 * writing them in the background, the state machine sending one to a peer that fell behind
 * (`open`) and installing one received from a peer (`install`).
 *
 * Per group, one of these runs at a time (`exclusive`). That keeps a background snapshot of the
 * state an install replaces from landing after the install (a higher one would win at the next
 * start), and the file being opened for sending from being pruned between listing and opening.
 */
import { join } from 'node:path';
import type { Logger, ReceivedSnapshot, StateMachineSnapshot } from '../runtime/interfaces.js';
import type { DecodedKvSnapshot } from './kv-snapshot-codec.js';
import { listSnapshotFiles, pruneSnapshots, snapshotDirectory } from './kv-snapshot-files.js';
import { installSnapshotFile, type InstallHooks } from './kv-snapshot-install.js';
import { openSnapshotStream } from './kv-snapshot-stream.js';

export class KvCheckpoints {
  private readonly locks: Promise<unknown>[];

  constructor(
    readonly dataDir: string, readonly groups: number, private readonly logger: Logger,
    private readonly hooks: InstallHooks = {},
  ) {
    this.locks = Array.from({ length: groups }, () => Promise.resolve());
  }

  directory(group: number): string {
    return snapshotDirectory(this.dataDir, group);
  }

  /** Run `work` once the group's earlier work on its files has ended, alone. */
  exclusive<T>(group: number, work: () => Promise<T>): Promise<T> {
    const previous = this.locks[group];
    if (previous === undefined) throw new RangeError(`group ${group} is not in [0, ${this.groups - 1}]`);
    const next = previous.catch(() => {}).then(work);
    this.locks[group] = next;
    return next;
  }

  /**
   * The newest intact snapshot file of the group covering at most `checkpoint` (the instance the
   * state machine reports: never anything newer than that), streamed; undefined when there is none.
   */
  open(group: number, checkpoint: number): Promise<StateMachineSnapshot | undefined> {
    return this.exclusive(group, async () => {
      const files = (await listSnapshotFiles(this.directory(group))).filter((file) => file.instanceId <= checkpoint);
      for (const file of files.reverse()) {
        const expected = { group, groups: this.groups, instanceId: file.instanceId };
        const stream = await openSnapshotStream(join(this.directory(group), file.name), expected);
        if (stream !== undefined) return stream;
        this.logger.warn('a damaged KV snapshot is not sent; trying an older one', { group, file: file.name });
      }
      return undefined;
    });
  }

  /**
   * Verify and commit a received snapshot as the group's newest file, then hand its state to
   * `apply` (synchronously, so the memory swap follows the commit with nothing in between).
   * A rejection leaves the files as they were.
   */
  install(group: number, received: ReceivedSnapshot, apply: (snapshot: DecodedKvSnapshot) => void): Promise<void> {
    return this.exclusive(group, async () => {
      const directory = this.directory(group);
      const snapshot = await installSnapshotFile(directory, received, { group, groups: this.groups }, this.hooks);
      apply(snapshot);
      this.logger.info('KV snapshot installed', { group, instanceId: snapshot.instanceId, keys: snapshot.entries.size });
      // Done already: an older file left behind is only space, so a failure here fails nothing.
      await pruneSnapshots(directory).catch((error: unknown) => {
        this.logger.warn('old KV snapshots could not be removed', { group, error: String(error) });
      });
    });
  }
}
