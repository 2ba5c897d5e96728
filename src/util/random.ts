/**
 * The only source of randomness the protocol core may use. Production seeds it from the OS;
 * the simulator seeds it from the run's seed, so every run can be replayed.
 */
export interface Random {
  /** A uniformly distributed integer in [min, max). */
  int(min: number, max: number): number;
  /** A uniformly distributed float in [0, 1). */
  float(): number;
}

/** sfc32: small, fast, and good enough statistically for jitter and fault injection. */
export class SeededRandom implements Random {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  /** The seed this stream started from. */
  readonly seed: number;

  constructor(seed: number) {
    this.seed = seed;
    this.a = 0x9e3779b9;
    this.b = 0x243f6a88;
    this.c = 0xb7e15162;
    this.d = (seed >>> 0) ^ Math.floor(seed / 0x100000000);
    for (let i = 0; i < 16; i++) this.next32();
  }

  next32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  float(): number {
    return this.next32() / 0x100000000;
  }

  int(min: number, max: number): number {
    if (max <= min) return min;
    return min + Math.floor(this.float() * (max - min));
  }

  chance(probability: number): boolean {
    return this.float() < probability;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError('pick from an empty list');
    return items[this.int(0, items.length)] as T;
  }

  /** A shuffled copy (Fisher–Yates). */
  shuffle<T>(items: readonly T[]): T[] {
    const copy = [...items];
    for (let i = copy.length - 1; i > 0; i--) {
      const j = this.int(0, i + 1);
      const held = copy[i] as T;
      copy[i] = copy[j] as T;
      copy[j] = held;
    }
    return copy;
  }

  /** An independent stream derived from this one, so adding draws here does not shift it. */
  fork(): SeededRandom {
    return new SeededRandom(this.next32() * 0x100000 + (this.next32() & 0xfffff));
  }
}
