/**
 * Seeds that once failed, with what they found. Every one is re-run on every test run.
 * Add the seed (and the canary, if any) whenever the simulator finds something.
 */
export interface RegressionSeed {
  readonly seed: number;
  readonly found: string;
}

export const REGRESSION_SEEDS: readonly RegressionSeed[] = [
  { seed: 64, found: 'the simulated disk left half of the bytes of a failed write, tearing pages: a failed write ' +
    'and the failed zeroing of it after kept later frames of that write behind a damaged first one, which the ' +
    'store rightly refused as damage at the next start (a failed write now lands whole pages only; found once ' +
    'a learner acked a quiet stream, which moved the schedule)' },
  { seed: 1439, found: 'a node installed two checkpoints in a row; the first had given one state machine a newer ' +
    'snapshot than the second carried, and installing that older one took it back while the rebuilt group ' +
    'skipped, for it, the instances up to its own checkpoint: it missed them for good (found once catch-up ' +
    'ran faster; a state machine at or past a snapshot now keeps its state)' },
  { seed: 1367, found: 'same as seed 1439, on a follower' },
  { seed: 2, found: 'a crash-mid-write trap armed during the fault phase fired after healing and left a node down' },
  { seed: 19, found: 'same as seed 2, with three nodes' },
  { seed: 73, found: 'same as seed 2, with a single proposing client' },
  { seed: 5298, found: 'a proposal whose value was chosen but still executing past its timeout kept its ' +
    'timeout as the next timer, so the node woke up forever at the same instant' },
  { seed: 5806, found: 'same as seed 5298' },
  { seed: 154, found: 'a restarted node still catching up proposed a master bid with the same bytes as one it ' +
    'made in an earlier life, took that old chosen bid for its new one, and believed it held a superseded ' +
    'lease while another node was master (bids now carry a random nonce)' },
  { seed: 61, found: 'same as seed 154' },
  { seed: 522, found: 'two learners outside the membership asked every peer in turn; each ask took every ' +
    'teacher\'s lock though the learner confirmed only one, so one of them was starved for good' },
  { seed: 101651, found: 'a learner that finished a catch-up session still behind (the master\'s renewals kept ' +
    'the group moving) waited for the next periodic ask, 2.5-3 s, each time, and did not converge within 60 s' },
  { seed: 11, found: 'checkpoint transfer: a window of pieces reordered by the network made the receiver ' +
    'abandon every transfer, so nodes behind every log never caught up; and an install deleted the log ' +
    'record that held the acceptor\'s promise, so the node then accepted a lower ballot; with the node\'s ' +
    'own cleaner, an install abandoned by a crash left the checkpoint\'s membership in place, so start-up ' +
    'skipped instance 0, which the node never learned' },
  { seed: 41, found: 'same as seed 11 (the forgotten promise)' },
  { seed: 71, found: 'with the node\'s own log cleaner: checkpoint pieces that overtook their begin were ' +
    'refused, which ended the sender\'s session while the begin started the receiver\'s; a node behind ' +
    'every log never caught up' },
  { seed: 135, found: 'same as seed 71; then, with hold 0, the senders cleaned past each checkpoint they ' +
    'sent while the master\'s renewals moved the group on, so the receiver asked again and again ' +
    '(the sender now keeps its log after the checkpoint for the receiver)' },
  { seed: 62, found: 'same as seed 135 (the chase behind cleaned logs)' },
  { seed: 207, found: 'the simulator\'s state machine saved a snapshot while a retried batch was half executed: ' +
    'its state held entries of the next instance, and a restart executed them again' },
  { seed: 190, found: 'a checkpoint install that did not complete rebuilt the group from the store and replayed ' +
    'from the state machines\' durable checkpoints, though they held in memory every instance executed since: ' +
    'instance 128 ran twice (the rebuild now resumes above what was executed)' },
  { seed: 1326, found: 'a teacher read its whole 200-instance window in one Ready; on a slow disk its own group ' +
    'then waited seconds for the reads, and a follower never converged (reads in flight are now capped at 32)' },
  { seed: 6, found: 'a node restarted while its disk was full could not make its spare segment and failed to ' +
    'start (a start without room now fails with STORAGE_UNAVAILABLE, and is retried as a supervisor would)' },
  { seed: 130, found: 'a follower\'s disk filled during a checkpoint install: the install\'s metadata write failed, ' +
    'no group halted, so the storage never resumed and every later install failed (any refused write now ' +
    'halts every group and starts the resume); later, with the teacher\'s offers to a member seen behind, ' +
    'a teacher\'s log read met the segment that log cleaning had just unlinked, and the ENOENT halted the group ' +
    'for good (a read of a segment cleaning unlinked now answers "not in the log")' },
  { seed: 379, found: 'a node restarted on a full disk failed start-up replay (a membership change writes the ' +
    'metadata) with STARTUP_FAILED, taken for a broken log (it is now STORAGE_UNAVAILABLE, retried)' },
  { seed: 882, found: 'same as seed 379, with two groups' },
  { seed: 1768, found: 'a state machine failed three times in a row while a group was rebuilt after its storage ' +
    'resumed, and the node halted the group for good (a replay failure is now retried like the storage)' },
];
