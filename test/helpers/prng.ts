// Seeded PRNG (xoshiro128**) for property tests. Tests print the seed on failure:
// VHDSYNC_SEED=<n> reproduces a run.

export class Prng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  constructor(readonly seed: number) {
    // splitmix32 to spread the seed over the state.
    let x = seed >>> 0;
    const next = () => {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.s0 = next();
    this.s1 = next();
    this.s2 = next();
    this.s3 = next();
  }

  /** Uniform 32-bit unsigned integer. */
  u32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5) >>> 0, 7), 9) >>> 0;
    const t = (this.s1 << 9) >>> 0;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor((this.u32() / 4294967296) * n);
  }

  /** Random 64-bit value as bigint. */
  u64(): bigint {
    return (BigInt(this.u32()) << 32n) | BigInt(this.u32());
  }

  /** Fills and returns `length` random bytes. */
  bytes(length: number): Uint8Array {
    const out = new Uint8Array(length);
    this.fill(out);
    return out;
  }

  /** Fills `target` with random bytes. */
  fill(target: Uint8Array): void {
    let i = 0;
    for (; i + 4 <= target.length; i += 4) {
      const v = this.u32();
      target[i] = v;
      target[i + 1] = v >>> 8;
      target[i + 2] = v >>> 16;
      target[i + 3] = v >>> 24;
    }
    for (; i < target.length; i++) target[i] = this.u32();
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/** The seed for this run: VHDSYNC_SEED if set, else random. Print it in failure messages. */
export function testSeed(): number {
  const fromEnv = Number(process.env.VHDSYNC_SEED);
  return Number.isFinite(fromEnv) && process.env.VHDSYNC_SEED ? fromEnv : Math.floor(Math.random() * 2 ** 31);
}
