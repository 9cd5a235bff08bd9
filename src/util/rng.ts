/**
 * Counter-based random numbers: the value for (seed, stream, index) is a pure function, so a
 * unit's draws do not depend on batch size, on the order units are processed, or on where an
 * interrupted run resumed. Mixing is the murmur3 finaliser applied to a combined key.
 */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

export function hash3(seed: number, stream: number, index: number): number {
  let h = fmix32((seed ^ 0x9e3779b9) >>> 0);
  h = fmix32((h ^ Math.imul(stream + 1, 0x27d4eb2f)) >>> 0);
  h = fmix32((h ^ Math.imul(index + 1, 0x165667b1)) >>> 0);
  return h;
}

/** Uniform in [0, 1) with 53 random bits. */
export function uniform(seed: number, stream: number, index: number): number {
  const hi = hash3(seed, stream, 2 * index) >>> 5; // 27 bits
  const lo = hash3(seed, stream, 2 * index + 1) >>> 6; // 26 bits
  return (hi * 67108864 + lo) / 9007199254740992;
}

/** Uniform integer in [0, n). */
export function randomInt(seed: number, stream: number, index: number, n: number): number {
  return Math.floor(uniform(seed, stream, index) * n);
}

/** A sequential generator for places where a stream is natural (bank crops, synthetic data). */
export class Rng {
  private counter = 0;
  constructor(
    readonly seed: number,
    readonly stream = 0,
  ) {}
  next(): number {
    return uniform(this.seed, this.stream, this.counter++);
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  /** k distinct integers from [0, n) (partial Fisher-Yates). */
  sampleWithoutReplacement(n: number, k: number): number[] {
    const idx = Array.from({ length: n }, (_, i) => i);
    const m = Math.min(k, n);
    for (let i = 0; i < m; i++) {
      const j = i + this.int(n - i);
      [idx[i], idx[j]] = [idx[j], idx[i]];
    }
    return idx.slice(0, m);
  }
}
