/**
 * Counts one round's replies by distinct node (PhxPaxos MsgCounter). A round hears from a handful
 * of members, so small arrays searched in place serve better than Sets: `reset` runs at every
 * instance and round, and clearing three Sets there cost more than the counting itself.
 */
export class VoteCounter {
  private readonly received: number[] = [];
  private readonly granted: number[] = [];
  private readonly rejected: number[] = [];

  reset(): void {
    this.received.length = 0;
    this.granted.length = 0;
    this.rejected.length = 0;
  }

  grant(nodeId: number): void {
    addOnce(this.received, nodeId);
    addOnce(this.granted, nodeId);
  }

  reject(nodeId: number): void {
    addOnce(this.received, nodeId);
    addOnce(this.rejected, nodeId);
  }

  get grantedCount(): number {
    return this.granted.length;
  }

  get rejectedCount(): number {
    return this.rejected.length;
  }

  get receivedCount(): number {
    return this.received.length;
  }
}

function addOnce(nodes: number[], nodeId: number): void {
  if (!nodes.includes(nodeId)) nodes.push(nodeId);
}
