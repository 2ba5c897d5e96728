/**
 * Watches one life of a simulated node for an execution that runs ahead of its own log: a node
 * must never execute an instance before its own record of it is durable (the Ready contract in
 * docs/architecture.md), or a power cut could leave its state machines, and the snapshots saved
 * from them, ahead of its log. Checked at every execution, this catches the mistake where it
 * happens rather than only when a crash and a snapshot happen to fall in between.
 *
 * Durable, as far as the simulator can tell: every instance up to the highest the store said it
 * held when the node asked (restoring a group asks first), and the records of every synced put
 * once the put resolved. It makes no call of its own and adds no await or event, so the run is the
 * same with or without it (a call to a simulated disk would take a device event and change it).
 */
import type { AcceptorRecord } from '../../core/ready.js';
import type { LogStore } from '../../runtime/interfaces.js';

export class DurableInstances {
  /** Per group, the highest instance the store said it held (-1: none); empty until asked. */
  private readonly held = new Map<number, number>();
  /** Per group, the instances whose synced put resolved in this life. */
  private readonly written = new Map<number, Set<number>>();

  /** Returns the store to hand the node (every call passes through; synced puts are noted). */
  static watch(store: LogStore): { store: LogStore; durable: DurableInstances } {
    const durable = new DurableInstances();
    const maxInstanceId = (groupIndex: number): Promise<number | undefined> => {
      const asked = store.maxInstanceId(groupIndex);
      void asked.then((max) => {
        durable.held.set(groupIndex, Math.max(durable.held.get(groupIndex) ?? -1, max ?? -1));
      }, () => {});
      return asked;
    };
    const put = (groupIndex: number, records: readonly AcceptorRecord[], options: { readonly sync: boolean }):
      Promise<void> => {
      const written = store.put(groupIndex, records, options);
      // Registered before the node's own continuation: noted before anything can execute.
      if (options.sync) void written.then(() => durable.note(groupIndex, records), () => {});
      return written;
    };
    const watched = new Proxy(store, {
      get(target, property) {
        if (property === 'put') return put;
        if (property === 'maxInstanceId') return maxInstanceId;
        const value: unknown = Reflect.get(target, property, target);
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
      },
    });
    return { store: watched, durable };
  }

  /** Why executing `instanceId` now breaks the rule, or undefined when its record is durable. */
  checkExecution(groupIndex: number, instanceId: number): string | undefined {
    const held = this.held.get(groupIndex);
    if (held === undefined || instanceId <= held) return undefined;
    if (this.written.get(groupIndex)?.has(instanceId) === true) return undefined;
    return `executed instance ${instanceId} before its record was durable in the node's own log`;
  }

  private note(groupIndex: number, records: readonly AcceptorRecord[]): void {
    let instances = this.written.get(groupIndex);
    if (instances === undefined) this.written.set(groupIndex, instances = new Set());
    for (const record of records) instances.add(record.instanceId);
  }
}
