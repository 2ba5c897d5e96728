/**
 * When the transport may leave out a chosen notification. A proposer that decides instance i sends
 * `chosen(i)` to every other member, and its accept for i + 1 names, in `previousBallot`, the ballot
 * under which the value of i was chosen. A receiver learns i from either one under the same
 * condition: it is a member's message, and the receiver's own acceptor accepted exactly that ballot
 * at i (GroupCore.learnIfAccepted and learnFromNextAccept; one ballot names one value). Kept for a
 * later instance, either one is replayed when the receiver gets there.
 *
 * So when the accept for i + 1 is queued to a peer while `chosen(i)` with that same ballot still
 * waits in the peer's queue, the notification tells the peer nothing the accept will not: it is
 * taken out, and the accept, queued behind it, reaches the peer in the same write or a later one
 * (the queue drops its oldest messages first, so the accept is never dropped where the
 * notification would have been kept; an accept too large for the queue takes nothing out).
 * Leaving it out is, at worst, one of the message losses Paxos tolerates and the simulator
 * injects; a peer that could not learn from the accept could not have learned from the
 * notification either. What it saves is a message per instance and peer to encode, frame, check
 * and dispatch: with several groups, each instance carries fewer values and this cost counts.
 */
import { ballotsEqual, isNullBallot } from '../core/ballot.js';
import type { AcceptMessage, PaxosMessage } from '../core/messages.js';

/** Whether `queued` is the notification of the instance before `accept`'s, chosen under its previousBallot. */
export function chosenAnsweredByAccept(queued: PaxosMessage, accept: AcceptMessage): boolean {
  return queued.kind === 'chosen' && queued.instanceId === accept.instanceId - 1 && queued.from === accept.from &&
    !isNullBallot(accept.previousBallot) && ballotsEqual(queued.ballot, accept.previousBallot);
}
