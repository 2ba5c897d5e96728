/**
 * Travels with a simulated client's proposal as its context. The library hands a proposal's
 * context only to the state machines of the node that proposed it, in that process life: so that
 * node must execute the proposal at most once. A retry that re-proposes a value already chosen
 * executes it twice there, whatever its bytes; equal payloads from other callers cannot hide it.
 */
export class ProposalMarker {
  readonly caller: string;
  executed = false;

  constructor(caller: string) {
    this.caller = caller;
  }
}
