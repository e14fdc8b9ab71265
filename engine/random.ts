// Seeded pseudo-randomness for the simulator. Everything random in the engine and its workloads comes from
// here, never from Math.random, so that the same seed gives the same run bit for bit.
//
// The generator is sfc32 (Chris Doty-Humphrey's Small Fast Counting generator, 32-bit variant, from
// PractRand): four 32-bit words of state, passes PractRand and BigCrush, and needs only 32-bit integer
// operations, which JavaScript does exactly. The seed is expanded with splitmix32 so that nearby seeds give
// unrelated streams.

/** splitmix32's finaliser: a bijective 32-bit mix. Also the engine's hash for pseudo-tokens. */
export function mix32(x: number): number {
  x = (x + 0x9e3779b9) | 0;
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}

/** A 32-bit hash of two 32-bit integers (order matters). */
export function hash2(a: number, b: number): number {
  return mix32(mix32(a) ^ Math.imul(b | 0, 0x27d4eb2f));
}

/** A 32-bit hash of a string (FNV-1a, then mixed), for seeding from names. */
export function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return mix32(h);
}

export class Random {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    if (!Number.isFinite(seed)) throw new RangeError(`seed must be a finite number, got ${seed}`);
    // Fold the seed (which may exceed 32 bits) into two words, then expand.
    const lo = seed >>> 0;
    const hi = Math.floor(seed / 4294967296) >>> 0;
    this.a = mix32(lo);
    this.b = mix32(this.a ^ hi);
    this.c = mix32(this.b + 0x6a09e667);
    this.d = 1;
    for (let i = 0; i < 12; i++) this.nextUint32(); // leave the correlated start behind
  }

  /** The next 32 random bits as an unsigned integer. */
  nextUint32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** Uniform in [0, 1) with 53 random bits. */
  float(): number {
    const hi = this.nextUint32() >>> 5; // 27 bits
    const lo = this.nextUint32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** Uniform in (0, 1]: safe under a logarithm. */
  floatOpenZero(): number {
    return 1 - this.float();
  }

  /** Uniform integer in [lo, hi] (inclusive). */
  int(lo: number, hi: number): number {
    if (!(hi >= lo)) throw new RangeError(`empty range ${lo}..${hi}`);
    return lo + Math.floor(this.float() * (hi - lo + 1));
  }

  /** Exponential with the given rate (mean 1/rate). */
  exponential(rate: number): number {
    return -Math.log(this.floatOpenZero()) / rate;
  }

  /** Standard normal (Box–Muller; the second value is discarded to keep the stream position simple). */
  normal(): number {
    const u = this.floatOpenZero();
    const v = this.float();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  /** Gamma(shape, scale) by Marsaglia–Tsang; shape < 1 through the boost Gamma(k) = Gamma(k+1)·U^(1/k). */
  gamma(shape: number, scale: number): number {
    if (!(shape > 0) || !(scale > 0)) throw new RangeError(`gamma needs shape > 0 and scale > 0, got ${shape}, ${scale}`);
    if (shape < 1) return this.gamma(shape + 1, scale) * Math.pow(this.floatOpenZero(), 1 / shape);
    const d = shape - 1 / 3;
    const c = 1 / Math.sqrt(9 * d);
    for (;;) {
      let x: number;
      let v: number;
      do {
        x = this.normal();
        v = 1 + c * x;
      } while (v <= 0);
      v = v * v * v;
      const u = this.floatOpenZero();
      if (u < 1 - 0.0331 * x * x * x * x || Math.log(u) < 0.5 * x * x + d * (1 - v + Math.log(v))) return d * v * scale;
    }
  }

  /** An independent generator derived from this one's seed and a label (streams that do not interfere). */
  fork(label: string): Random {
    return new Random(hash2(this.nextUint32(), hashString(label)));
  }
}
