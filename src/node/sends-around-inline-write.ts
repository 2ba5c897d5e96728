/**
 * What a node sends around a durable write its store makes on the event loop's thread: what is
 * queued goes out first (it does not depend on the write and should not wait for it), and what the
 * write's callers send once it is durable (an acceptor's replies) goes as soon as they have sent
 * it, at the end of that turn's microtasks, not a loop iteration later at the transport's own flush.
 */
import { atEndOfMicrotasks } from '../util/end-of-microtasks.js';

export function sendsAroundInlineWrite(flush: () => void): () => void {
  return () => {
    flush();
    atEndOfMicrotasks(flush);
  };
}
