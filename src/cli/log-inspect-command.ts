/**
 * `multipaxos log inspect`: open a FileLogStore directory read-only (nothing is written, created,
 * repaired or deleted, so it is safe on a live node's directory), dump its records, and verify it:
 * every frame's CRC (opening checks them), the checksum chain between consecutive instances, and
 * the metadata. Exit status 0 when all is well, 1 on an unreadable or corrupt store or a chain break.
 */
import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { crc32 } from 'node:zlib';
import { chainStep } from '../core/group-context.js';
import { formatBallot, type Ballot } from '../core/ballot.js';
import { formatProposalIdentity, proposalBody, proposalIdentityOf } from '../core/proposal-identity.js';
import type { AcceptorRecord } from '../core/ready.js';
import { NOT_CHOSEN, PaxosError } from '../errors.js';
import { FileLogStore, type RecoveryReport } from '../io/file-log-store.js';
import { parseFlags, UsageError, type FlagSpec } from './flags.js';
import { reportKvSnapshots, type KvSnapshotReport } from './kv-snapshot-report.js';

const FLAGS: FlagSpec = { data: 'string', group: 'number', from: 'number', to: 'number', json: 'boolean', help: 'boolean' };
const PREVIEW_TEXT_CHARS = 32;
const PREVIEW_HEX_BYTES = 16;

export const LOG_USAGE = `usage: multipaxos log inspect --data DIR [--group G] [--from I] [--to J] [--json]

Opens a log store read-only (it writes nothing, so it is safe on a live node's directory), prints
its records and verifies it:
  - every frame's CRC (a torn tail left by an interrupted write is reported, not repaired; damage
    with valid data after it is corruption);
  - the checksum chain: for consecutive instances i-1, i whose checksums are both non-zero,
    checksum[i] must be crc32(value[i], checksum[i-1]), and instance 0's non-zero checksum must be
    crc32(value[0], 0) (a CRC that comes out 0 is stored as 1, since 0 means unknown); a checksum of 0
    means unknown and restarts the chain;
  - and reports per group the min and max instance held, the min chosen instance (every instance
    below it is cleaned from the log), a pending checkpoint install, the first chain break with its
    instance numbers, and the KV snapshots in DIR/kv-snapshots/g<N>/ (file, covered instance, size,
    whether it decodes).
  --data DIR   the store's directory (the one holding meta and log/)
  --group G    only group G (default: every group); a group the store holds nothing of is an error
  --from I     only instances >= I; --to J: only instances <= J (the chain link into I is checked)
  --json       one JSON object per line instead of text:
                 {"type":"record","group":0,"instance":7,"promised":{"proposalId":3,"nodeId":1},
                  "accepted":{"proposalId":3,"nodeId":1},"checksum":123,"valueBytes":1024,
                  "proposal":"n1/4f2a09c17b3e5d80/3/7",
                  "preview":"000102ff6869","previewEncoding":"hex","previewTruncated":false,
                  "chain":"ok"}
               valueBytes: the agreed value's size, identity envelope included;
               proposal: node/incarnation/start promise/sequence of the proposal the value
               is, or null (a no-op); preview: the value's first 32 bytes as its proposer gave them (without
               the identity envelope), as text when they are printable ASCII, else its first 16
               bytes in hex; chain: "ok" | "break" | "unknown" (the link into
               this instance)
               then one summary object:
                 {"type":"summary","directory":"/abs/dir","ok":true,"segments":2,"frames":130,
                  "truncatedTail":null | {"file","offset","reason"},"chainBreaks":0 (all groups),
                  "groups":[{"group":0,"minChosen":0,"minInstance":0,"maxInstance":99,"records":100,
                    "chain":{"linksChecked":99,"unknown":1,"breaks":0,"firstBreak":null | {"instance":42,
                    "previousInstance":41,"previousChecksum":5,"expected":6,"found":7}},
                    "pendingCheckpoint":null | 120,"kvSnapshots":[{"file":"snapshot-…0080.kvs",
                    "instanceId":80,"bytes":4096,"decodes":true,"error":null}]}]}
               (frames: every valid frame scanned, superseded ones included; minInstance and
               maxInstance: the group's live records, null if none; records: those listed)
               On an error: {"type":"error","code":"STORAGE_CORRUPT","message":"..."}.
On a live node a write racing the scan can show as a torn tail (or, rarely, as damage at the end of
a segment the node has just left): inspect again before concluding anything.
Exit status: 0 ok (a torn tail alone is ok), 1 on a missing, unreadable or corrupt store, a --group
it does not hold or a chain break, 2 on bad usage.`;

export async function logCommand(argv: readonly string[]): Promise<number> {
  const [sub, ...rest] = argv;
  switch (sub) {
    case 'inspect':
      return logInspectCommand(rest);
    case undefined:
      throw new UsageError('log needs an action: inspect');
    case 'help':
    case '--help':
      console.log(LOG_USAGE);
      return 0;
    default:
      throw new UsageError(`unknown log command "${sub}"`);
  }
}

export interface ChainBreak {
  readonly instance: number;
  readonly previousInstance: number;
  readonly previousChecksum: number;
  readonly expected: number;
  readonly found: number;
}

export type ChainLink = 'ok' | 'break' | 'unknown';

/** Check the link from `previous` (the record of instance - 1, if held) into `record`. */
export function checkChainLink(previous: AcceptorRecord | undefined, record: AcceptorRecord): ChainLink {
  if (record.checksum === 0) return 'unknown';
  if (record.instanceId === 0) return link(0, record.value) === record.checksum ? 'ok' : 'break';
  if (previous === undefined || previous.instanceId !== record.instanceId - 1 || previous.checksum === 0) {
    return 'unknown';
  }
  return link(previous.checksum, record.value) === record.checksum ? 'ok' : 'break';
}

/** One link of the chain exactly as the core computes it (a CRC of 0 is stored as 1). */
function link(previous: number, value: Uint8Array): number {
  return chainStep(crc32, previous, value);
}

interface GroupSummary {
  readonly group: number;
  readonly minChosen: number;
  readonly minInstance: number | null;
  readonly maxInstance: number | null;
  records: number;
  readonly chain: { linksChecked: number; unknown: number; breaks: number; firstBreak: ChainBreak | null };
  /** A checkpoint install under way when the node stopped (null: none). */
  readonly pendingCheckpoint: number | null;
  readonly kvSnapshots: readonly KvSnapshotReport[];
}

interface Preview {
  readonly text: string;
  readonly encoding: 'text' | 'hex';
  readonly truncated: boolean;
}

export function previewValue(value: Uint8Array): Preview {
  const head = value.subarray(0, PREVIEW_TEXT_CHARS);
  if (head.every((byte) => byte >= 0x20 && byte <= 0x7e)) {
    return { text: Buffer.from(head).toString('latin1'), encoding: 'text', truncated: value.length > head.length };
  }
  const bytes = value.subarray(0, PREVIEW_HEX_BYTES);
  return { text: Buffer.from(bytes).toString('hex'), encoding: 'hex', truncated: value.length > bytes.length };
}

/** Buffered stdout that stops quietly when the reader goes away (`| head`). */
class Output {
  private chunks: string[] = [];
  private size = 0;
  closed = false;

  constructor() {
    process.stdout.on('error', () => {
      this.closed = true;
    });
  }

  line(text: string): void {
    this.chunks.push(text);
    this.size += text.length + 1;
    if (this.size >= 64 * 1024) this.flush();
  }

  flush(): void {
    if (this.chunks.length === 0 || this.closed) return;
    process.stdout.write(`${this.chunks.join('\n')}\n`);
    this.chunks = [];
    this.size = 0;
  }
}

async function logInspectCommand(argv: readonly string[]): Promise<number> {
  const flags = parseFlags(argv, FLAGS);
  if (flags.help === true) {
    console.log(LOG_USAGE);
    return 0;
  }
  if (typeof flags.data !== 'string' || flags.data === '') throw new UsageError('log inspect needs --data DIR');
  const from = typeof flags.from === 'number' ? flags.from : 0;
  const to = typeof flags.to === 'number' ? flags.to : Infinity;
  if (from < 0 || to < from) throw new UsageError(`need 0 <= --from <= --to; got ${from}..${to}`);
  const group = typeof flags.group === 'number' ? flags.group : undefined;
  if (group !== undefined && group < 0) throw new UsageError(`--group must be >= 0; got ${group}`);
  const json = flags.json === true;
  const directory = resolve(flags.data);
  const out = new Output();
  let store: FileLogStore | undefined;
  try {
    await checkDirectory(directory);
    store = await FileLogStore.open({ directory, readOnly: true });
    const held = store.groupIndexes;
    if (group !== undefined && !held.includes(group)) {
      // The store does not record how many groups its node runs: say what it holds.
      throw new PaxosError('BAD_OPTIONS', `${directory} holds no group ${group} (it holds ` +
        `${held.length === 0 ? 'no group' : `group${held.length === 1 ? '' : 's'} ${held.join(', ')}`})`, NOT_CHOSEN);
    }
    const groups = group === undefined ? held : [group];
    if (!json) printHeader(out, directory, store.recovery);
    const summaries: GroupSummary[] = [];
    for (const groupIndex of groups) {
      if (out.closed) break;
      summaries.push(await inspectGroup(store, directory, groupIndex, from, to, json, out));
    }
    const chainBreaks = summaries.reduce((sum, summary) => sum + summary.chain.breaks, 0);
    if (json) {
      out.line(JSON.stringify({ type: 'summary', directory, ok: chainBreaks === 0, segments: store.recovery.segments,
        frames: store.recovery.records, truncatedTail: store.recovery.truncatedTail, chainBreaks, groups: summaries }));
    } else {
      printFooter(out, summaries, chainBreaks);
    }
    out.flush();
    return chainBreaks === 0 ? 0 : 1;
  } catch (error) {
    out.flush();
    const code = error instanceof PaxosError ? error.code : errorCode(error);
    const message = error instanceof Error ? error.message : String(error);
    console.error(`multipaxos log inspect: ${message}`);
    if (json && !out.closed) process.stdout.write(`${JSON.stringify({ type: 'error', code, message })}\n`);
    return 1;
  } finally {
    await store?.close().catch(() => undefined);
  }
}

async function checkDirectory(directory: string): Promise<void> {
  let isDirectory: boolean;
  try {
    isDirectory = (await stat(directory)).isDirectory();
  } catch (error) {
    throw new PaxosError('BAD_OPTIONS', `cannot read ${directory}: ${errorCode(error) === 'ENOENT' ? 'no such directory'
      : error instanceof Error ? error.message : String(error)}`, NOT_CHOSEN);
  }
  if (!isDirectory) throw new PaxosError('BAD_OPTIONS', `${directory} is not a directory`, NOT_CHOSEN);
}

function errorCode(error: unknown): string {
  if (typeof error === 'object' && error !== null && 'code' in error && typeof error.code === 'string') return error.code;
  return 'ERROR';
}

async function inspectGroup(store: FileLogStore, directory: string, groupIndex: number, from: number, to: number,
  json: boolean, out: Output): Promise<GroupSummary> {
  const summary: GroupSummary = {
    group: groupIndex,
    minChosen: await store.minChosenInstanceId(groupIndex),
    minInstance: await firstInstance(store, groupIndex),
    maxInstance: (await store.maxInstanceId(groupIndex)) ?? null,
    records: 0,
    chain: { linksChecked: 0, unknown: 0, breaks: 0, firstBreak: null },
    pendingCheckpoint: (await store.pendingCheckpoint(groupIndex))?.instanceId ?? null,
    kvSnapshots: await reportKvSnapshots(directory, groupIndex),
  };
  if (!json) out.line(`group ${groupIndex}`);
  let previous: AcceptorRecord | undefined;
  for await (const record of store.records(groupIndex, from, to)) {
    if (out.closed) break;
    if (summary.records === 0 && record.instanceId > 0) previous = await store.get(groupIndex, record.instanceId - 1);
    const link = checkChainLink(previous, record);
    if (link === 'unknown') summary.chain.unknown++;
    else summary.chain.linksChecked++;
    if (link === 'break') summary.chain.breaks++;
    if (link === 'break' && summary.chain.firstBreak === null) {
      const previousChecksum = record.instanceId === 0 ? 0 : (previous?.checksum ?? 0);
      summary.chain.firstBreak = { instance: record.instanceId, previousInstance: record.instanceId - 1,
        previousChecksum, expected: crc32(record.value, previousChecksum), found: record.checksum };
    }
    if (summary.records === 0 && !json) {
      out.line(`  ${'instance'.padStart(10)}  ${'promised'.padEnd(12)}  ${'accepted'.padEnd(12)}  checksum    ` +
        `${'bytes'.padStart(8)}  chain    value`);
    }
    summary.records++;
    out.line(json ? recordJson(groupIndex, record, link) : recordText(record, link));
    previous = record;
  }
  return summary;
}

/** The group's lowest live instance, reading only that one record. */
async function firstInstance(store: FileLogStore, groupIndex: number): Promise<number | null> {
  const records = store.records(groupIndex);
  const first = await records.next();
  await records.return(undefined);
  return first.done === true ? null : first.value.instanceId;
}

function recordJson(groupIndex: number, record: AcceptorRecord, link: ChainLink): string {
  const preview = previewValue(proposalBody(record.value));
  return JSON.stringify({ type: 'record', group: groupIndex, instance: record.instanceId,
    promised: ballot(record.promised), accepted: ballot(record.accepted), checksum: record.checksum,
    valueBytes: record.value.length, proposal: proposalOf(record), preview: preview.text,
    previewEncoding: preview.encoding, previewTruncated: preview.truncated, chain: link });
}

/** Who proposed the value (node/incarnation/sequence), or null for a value without an identity. */
function proposalOf(record: AcceptorRecord): string | null {
  const identity = proposalIdentityOf(record.value);
  return identity === undefined ? null : formatProposalIdentity(identity);
}

function ballot(value: Ballot): Ballot {
  return { proposalId: value.proposalId, nodeId: value.nodeId };
}

function recordText(record: AcceptorRecord, link: ChainLink): string {
  const preview = previewValue(proposalBody(record.value));
  const shown = preview.encoding === 'text' ? JSON.stringify(preview.text) : `hex ${preview.text}`;
  const proposal = proposalOf(record);
  return `  ${String(record.instanceId).padStart(10)}  ${formatBallot(record.promised).padEnd(12)}  ` +
    `${formatBallot(record.accepted).padEnd(12)}  ${hex32(record.checksum)}  ${String(record.value.length).padStart(8)}  ` +
    `${(link === 'break' ? 'BREAK' : link).padEnd(7)}  ${shown}${preview.truncated ? '…' : ''}` +
    `${proposal === null ? '' : `  from ${proposal}`}`;
}

function hex32(value: number): string {
  return `0x${(value >>> 0).toString(16).padStart(8, '0')}`;
}

function printHeader(out: Output, directory: string, recovery: RecoveryReport): void {
  out.line(`store ${directory}: ${recovery.segments} segment${recovery.segments === 1 ? '' : 's'} scanned, ` +
    `${recovery.records} frames, every CRC ok`);
  const tail = recovery.truncatedTail;
  if (tail !== null) {
    out.line(`torn tail: ${tail.file} at offset ${tail.offset} (${tail.reason}); reported only, not repaired ` +
      '(a writable open truncates it)');
  } else {
    out.line('no torn tail');
  }
}

function printFooter(out: Output, summaries: readonly GroupSummary[], chainBreaks: number): void {
  if (summaries.length === 0) out.line('no groups');
  for (const summary of summaries) {
    const held = summary.minInstance === null ? 'no records' :
      `instances ${summary.minInstance}..${summary.maxInstance}`;
    const { linksChecked, unknown, firstBreak } = summary.chain;
    const chain = firstBreak === null ? `chain ok (${linksChecked} links checked, ${unknown} unknown)`
      : `${summary.chain.breaks} CHAIN BREAK(S), the first at instance ${firstBreak.instance} (after ${firstBreak.previousInstance}): checksum ` +
        `${hex32(firstBreak.found)}, expected crc32(value[${firstBreak.instance}], ${hex32(firstBreak.previousChecksum)}) = ` +
        `${hex32(firstBreak.expected)}`;
    out.line(`group ${summary.group}: ${held}, min chosen ${summary.minChosen}, ${summary.records} records listed; ` +
      chain);
    out.line(`  log cleaned: ${summary.minChosen === 0 ? 'never' : `instances below ${summary.minChosen}`}` +
      (summary.pendingCheckpoint === null ? '' : `; checkpoint install pending at ${summary.pendingCheckpoint}`));
    for (const snapshot of summary.kvSnapshots) {
      out.line(`  KV snapshot ${snapshot.file}: instance ${snapshot.instanceId}, ${snapshot.bytes} bytes, ` +
        (snapshot.decodes ? 'decodes' : `DOES NOT DECODE (${snapshot.error})`));
    }
  }
  out.line(chainBreaks === 0 ? 'ok' : `FAILED: ${chainBreaks} chain break(s)`);
}
