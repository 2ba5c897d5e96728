/**
 * When a group driver may cut its next batch. Callers answered by an instance usually propose
 * again at once (a closed loop, a request that waits for the one before): cutting the next batch
 * as soon as the instance ends would take only the values that waited meanwhile, and the callers
 * just answered would wait a whole instance more behind them (64 such callers settle into two
 * alternating half-batches, at half the throughput). So once a batch of ours has executed, the cut
 * waits for the Ready that answers its callers, and then for their continuations to run. A value
 * proposed to an idle group waits only for the end of the turn's microtasks, so the values proposed
 * together in one turn (the requests of one network read) share an instance.
 */
export class BatchCut {
  /** Callers were just answered: the cut is scheduled for when their continuations have run. */
  private scheduled = false;
  /**
   * The core reports an outcome in the Ready after the one that executed the batch (once told the
   * execution's result): the Readies still to handle until then, 2 at the execution.
   */
  private readiesUntilAnswered = 0;
  private readonly runBound = (): void => {
    this.scheduled = false;
    this.cut();
  };

  /**
   * `cut` hands the core the next batch; `defer` runs it once the answered callers' continuations
   * have run (atEndOfMicrotasks), exactly once.
   */
  constructor(
    private readonly cut: () => void,
    private readonly defer: (run: () => void) => void,
  ) {}

  /** A batch may be cut now: no answer is due and none was just given. */
  get open(): boolean {
    return !this.scheduled && this.readiesUntilAnswered === 0;
  }

  /** A value was queued: cut at the end of the turn's microtasks unless a cut waits for more. */
  proposed(): void {
    if (this.readiesUntilAnswered === 0) this.schedule();
  }

  /** A batch of ours executed in the Ready being handled. */
  ownBatchExecuted(): void {
    this.readiesUntilAnswered = 2;
  }

  /** A Ready is about to answer callers: cut once they have proposed again. */
  answering(): void {
    this.readiesUntilAnswered = 0;
    this.schedule();
  }

  /** A Ready was handled. */
  readyHandled(): void {
    if (this.readiesUntilAnswered > 0) this.readiesUntilAnswered--;
  }

  /**
   * The driver has no more Ready to handle. A safety net: the core answers in the Ready after an
   * execution (or halts), so this should never find an answer still due; if it did, nothing may
   * stay queued waiting for it.
   */
  idle(): void {
    if (this.readiesUntilAnswered === 0) return;
    this.readiesUntilAnswered = 0;
    this.schedule();
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    this.defer(this.runBound);
  }
}
