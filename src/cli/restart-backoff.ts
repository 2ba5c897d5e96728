/**
 * When `cluster up` restarts a node that died, and when it stops trying: a pure policy, so the
 * numbers are tested without processes.
 *
 * Each death in a streak waits twice as long as the one before (0.5 s, 1 s, 2 s ... at most 10 s),
 * so a node that keeps crashing does not take the machine's attention; a run of 30 s ends the
 * streak, so a crash after a long healthy run is retried at once. A node that dies before it has
 * even started serving (a port in use, a data directory it cannot open, a bad setting) is failing
 * for a reason a restart will not fix: after five such start-up failures in a row it is given up on,
 * and the operator is told, rather than spinning. A node that started and later crashes again and
 * again keeps being restarted, at the cap.
 */

export interface RestartPolicy {
  readonly firstDelayMs: number;
  readonly maxDelayMs: number;
  /** A run at least this long ends a streak of deaths: the next death is retried after firstDelayMs. */
  readonly stableRunMs: number;
  /** Start-up failures in a row after which the node is not restarted any more. */
  readonly maxStartFailures: number;
}

export const DEFAULT_RESTART_POLICY: RestartPolicy = {
  firstDelayMs: 500, maxDelayMs: 10_000, stableRunMs: 30_000, maxStartFailures: 5,
};

/** How one run of a node ended. */
export interface RunOutcome {
  /** How long the process lived. */
  readonly ranMs: number;
  /** Whether it got as far as serving (kv serve printed its started line). */
  readonly started: boolean;
}

export type RestartDecision =
  | { readonly restart: true; readonly delayMs: number; readonly attempt: number }
  | { readonly restart: false; readonly startFailures: number };

/** One node's history of deaths; decides after each whether and when to start it again. */
export class RestartBackoff {
  private streak = 0;
  private startFailures = 0;

  constructor(private readonly policy: RestartPolicy = DEFAULT_RESTART_POLICY) {}

  afterDeath(outcome: RunOutcome): RestartDecision {
    this.streak = outcome.ranMs >= this.policy.stableRunMs ? 1 : this.streak + 1;
    this.startFailures = outcome.started ? 0 : this.startFailures + 1;
    if (this.startFailures >= this.policy.maxStartFailures) {
      return { restart: false, startFailures: this.startFailures };
    }
    const delayMs = Math.min(this.policy.maxDelayMs, this.policy.firstDelayMs * 2 ** (this.streak - 1));
    return { restart: true, delayMs, attempt: this.streak };
  }
}
