/**
 * Where a watch is in each group's stream of changes (the resume cursor of `GET /v1/watch`).
 *
 * A change is at a *position*: the instance that executed it and its index among the changes of that
 * instance (a batch executes several entries under one instance id). Every node executes a group's
 * log in the same order, and chosen changes are never rolled back, so a position names the same
 * change on every node. A cursor position `{instance, index}` means "every change before this
 * position is delivered": the changes still to come are those at positions >= it. After delivering
 * the change at (i, k), the cursor becomes (i, k + 1).
 *
 * A watch over several groups carries one position per group, written as the token
 * `0:12.0,1:40.2,2:7.0` (group:instance.index, every group once, in order). It travels in each SSE
 * event's `id:`, so a browser's EventSource resumes with it through Last-Event-ID.
 */
import { KvError, NOT_APPLIED } from './kv-error.js';

export interface WatchPosition {
  readonly instance: number;
  readonly index: number;
}

/** Negative: a comes first. */
export function comparePositions(a: WatchPosition, b: WatchPosition): number {
  return a.instance !== b.instance ? a.instance - b.instance : a.index - b.index;
}

export function laterPosition(a: WatchPosition, b: WatchPosition): WatchPosition {
  return comparePositions(a, b) >= 0 ? a : b;
}

export function formatCursor(positions: readonly WatchPosition[]): string {
  return positions.map(({ instance, index }, group) => `${group}:${instance}.${index}`).join(',');
}

const PART = /^(\d{1,9}):(-1|\d{1,15})\.(\d{1,9})$/;

/** A token of `formatCursor`, for a cluster of `groups` groups; anything else is BAD_REQUEST. */
export function parseCursor(token: string, groups: number): WatchPosition[] {
  const parts = token.split(',');
  const bad = (why: string): KvError => new KvError('BAD_REQUEST', `bad watch cursor "${token.slice(0, 200)}": ${why}`,
    NOT_APPLIED);
  // The shape first: a token that is not a cursor at all is told so, not counted as one group.
  const matches = parts.map((part) => {
    const match = PART.exec(part);
    if (match === null) throw bad(`"${part.slice(0, 40)}" is not group:instance.index`);
    return match;
  });
  if (parts.length !== groups) {
    throw bad(`it names ${parts.length} group${parts.length === 1 ? '' : 's'}; this cluster has ${groups}`);
  }
  return matches.map((match, expected) => {
    if (Number(match[1]) !== expected) throw bad(`group ${expected} is expected in place ${expected}`);
    const instance = Number(match[2]);
    if (!Number.isSafeInteger(instance)) throw bad('the instance is too large');
    return { instance, index: Number(match[3]) };
  });
}
