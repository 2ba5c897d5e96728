/**
 * Collects what the roles want done while the core processes inputs; `GroupCore.ready()` empties it
 * into a Ready. Records for the same instance collapse to the newest: they are all written before
 * any reply that depends on them leaves, so only the last one matters.
 */
import type { PaxosMessage } from './messages.js';
import { waitsForPersist } from './persist-order.js';
import type { AcceptorRecord, ChosenValue, HaltReason, OutboundMessage, ProposalResult, Ready } from './ready.js';

const NO_EXECUTIONS: readonly ChosenValue[] = Object.freeze([]);
const NO_RECORDS: readonly AcceptorRecord[] = Object.freeze([]);
const NO_MESSAGES: readonly OutboundMessage[] = Object.freeze([]);
const NO_READS: readonly number[] = Object.freeze([]);
const NO_RESULTS: readonly ProposalResult[] = Object.freeze([]);

export class Outbox {
  private records: AcceptorRecord[] = [];
  private messages: OutboundMessage[] = [];
  private reads: number[] = [];
  private readBytesLimit = Infinity;
  private results: ProposalResult[] = [];
  private execute: ChosenValue | null = null;
  private executeAfter: ChosenValue[] = [];
  private halted: HaltReason | null = null;

  persist(record: AcceptorRecord): void {
    const last = this.records[this.records.length - 1];
    if (last !== undefined && last.instanceId === record.instanceId) this.records[this.records.length - 1] = record;
    else this.records.push(record);
  }

  /** Whether the message waits for this Ready's records is decided in one place (persist-order.ts). */
  send(to: number, message: PaxosMessage): void {
    this.messages.push({ to, message, afterPersist: waitsForPersist(message) });
  }

  read(instanceId: number): void {
    this.reads.push(instanceId);
  }

  /** The reads of this Ready may bring at most `bytes` of values (the last limit set holds). */
  limitReadBytes(bytes: number): void {
    this.readBytesLimit = Math.max(0, bytes);
  }

  result(result: ProposalResult): void {
    this.results.push(result);
  }

  executeNext(chosen: ChosenValue): void {
    this.execute = chosen;
  }

  /** A value to execute after `execute` (or after the one executing), in instance order. */
  executeLater(chosen: ChosenValue): void {
    this.executeAfter.push(chosen);
  }

  /** Drop the values queued with `executeLater` (one before them failed and will be retried first). */
  cancelExecuteLater(): void {
    this.executeAfter = [];
  }

  halt(reason: HaltReason): void {
    this.halted = reason;
  }

  /** Drop everything but proposal results (used when the group halts). */
  discardActions(): void {
    this.records = [];
    this.messages = [];
    this.reads = [];
    this.readBytesLimit = Infinity;
    this.execute = null;
    this.executeAfter = [];
  }

  get hasPendingRecords(): boolean {
    return this.records.length > 0;
  }

  isEmpty(): boolean {
    return this.records.length === 0 && this.messages.length === 0 && this.reads.length === 0 &&
      this.results.length === 0 && this.execute === null && this.executeAfter.length === 0 && this.halted === null;
  }

  take(): Ready {
    // An empty list is handed over as one shared frozen empty list, and the outbox keeps its own:
    // most Readies use one or two of the lists, and a Ready is taken several times an instance.
    // A list with entries is handed over and replaced, never shared with the next Ready.
    const ready: Ready = {
      records: this.records.length === 0 ? NO_RECORDS : this.records,
      mustSync: this.records.length > 0,
      messages: this.messages.length === 0 ? NO_MESSAGES : this.messages,
      reads: this.reads.length === 0 ? NO_READS : this.reads,
      readBytesLimit: this.reads.length === 0 ? Infinity : this.readBytesLimit,
      execute: this.execute,
      executeAfter: this.executeAfter.length === 0 ? NO_EXECUTIONS : this.executeAfter,
      results: this.results.length === 0 ? NO_RESULTS : this.results,
      halted: this.halted,
    };
    if (this.records.length > 0) this.records = [];
    if (this.messages.length > 0) this.messages = [];
    if (this.reads.length > 0) this.reads = [];
    this.readBytesLimit = Infinity;
    if (this.results.length > 0) this.results = [];
    this.execute = null;
    if (this.executeAfter.length > 0) this.executeAfter = [];
    this.halted = null;
    return ready;
  }
}
