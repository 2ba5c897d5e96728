/** Counts one round's replies by distinct node (PhxPaxos MsgCounter). */
export class VoteCounter {
  private readonly received = new Set<number>();
  private readonly granted = new Set<number>();
  private readonly rejected = new Set<number>();

  reset(): void {
    this.received.clear();
    this.granted.clear();
    this.rejected.clear();
  }

  grant(nodeId: number): void {
    this.received.add(nodeId);
    this.granted.add(nodeId);
  }

  reject(nodeId: number): void {
    this.received.add(nodeId);
    this.rejected.add(nodeId);
  }

  get grantedCount(): number {
    return this.granted.size;
  }

  get rejectedCount(): number {
    return this.rejected.size;
  }

  get receivedCount(): number {
    return this.received.size;
  }
}
