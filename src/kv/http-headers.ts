/** The HTTP headers the KV server and its clients agree on. */

/** A request forwarded by a node that is not the master, so it is forwarded only once. */
export const FORWARDED_HEADER = 'x-multipaxos-forwarded-by';
/** How long the caller will wait (ms): the server answers before then, so its answer tells the outcome. */
export const TIMEOUT_HEADER = 'x-multipaxos-timeout-ms';
/**
 * Sent by KvClient, which follows masters itself: a node that is not the master answers NOT_MASTER
 * instead of forwarding (as it does for a request already forwarded once).
 */
export const NO_FORWARD_HEADER = 'x-multipaxos-no-forward';
/**
 * The role of a caller authenticated by its client certificate, sent on by the node that forwards
 * its request. Believed only on an HTTPS connection whose client certificate names a node of the
 * cluster (the forwarding node's); from anyone else it is ignored.
 */
export const FORWARDED_ROLE_HEADER = 'x-multipaxos-forwarded-role';
/**
 * Exactly-once writes: the session a PUT or DELETE belongs to, as `POST /v1/sessions` answered it
 * ("<group>.<id>"), and the write's number in it (1, 2, ...; one outstanding at a time per session).
 * A retry with the same number gets the first answer; the write is applied at most once.
 */
export const SESSION_HEADER = 'x-multipaxos-session';
export const SEQUENCE_HEADER = 'x-multipaxos-sequence';
