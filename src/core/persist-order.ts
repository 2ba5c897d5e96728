/**
 * Which outbound messages may leave only after their Ready's records are durable: decided here, by
 * message, rather than by each sender (as etcd's raft decides in one place which messages wait for
 * the local append). A message waits when it reveals state a crash must not undo:
 *   - a promise or an accept (a reply with `rejectedBy` 0): the vote it carries is in this Ready's
 *     records, and a vote counted before it is durable could be lost and given again differently;
 *   - a learn ack: it tells the teacher the learned values are held durably;
 *   - a prepare: a core sends only its own proposer's, whose ballot the local acceptor has just
 *     promised; once that promise is durable a restart resumes above it, so no ballot is reused.
 * Everything else leaves at once: a rejection reveals nothing that must survive; an accept's ballot
 * was promised durably in an earlier Ready; `chosen`, streamed and pushed values come from durable
 * records; catch-up's handshake carries no vote.
 */
import type { PaxosMessage } from './messages.js';

export function waitsForPersist(message: PaxosMessage): boolean {
  switch (message.kind) {
    case 'prepareReply':
    case 'acceptReply':
      return message.rejectedBy === 0;
    case 'prepare':
    case 'learnValueAck':
      return true;
    case 'accept':
    case 'chosen':
    case 'askForLearn':
    case 'sendNowInstanceId':
    case 'confirmAskForLearn':
    case 'learnValue':
      return false;
    // Checkpoint transfer does not pass through the core; its pieces come from durable snapshots.
    case 'askForCheckpoint':
    case 'checkpointChunk':
    case 'checkpointAck':
      return false;
  }
}
