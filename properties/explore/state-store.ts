// The explorer's visited set: canonical keys (sequences of 32-bit words) stored back to back in one growing
// array, found through an open-addressing hash table of state indices. Exact: a hash match is confirmed by
// comparing the words. No per-state objects, so a large search costs the collector little.

/** A growing sequence of 32-bit words: the key being written. */
export class KeyBuffer {
  data = new Int32Array(256);
  length = 0;
  push(v: number): void {
    if (this.length === this.data.length) this.grow(this.length + 1);
    this.data[this.length++] = v;
  }
  /** Appends words [from, to) of `src`. */
  append(src: Int32Array, from: number, to: number): void {
    const n = to - from;
    if (this.length + n > this.data.length) this.grow(this.length + n);
    this.data.set(src.subarray(from, to), this.length);
    this.length += n;
  }
  grow(min: number): void {
    let cap = this.data.length * 2;
    while (cap < min) cap *= 2;
    const d = new Int32Array(cap);
    d.set(this.data.subarray(0, this.length));
    this.data = d;
  }
}

export function hashWords(w: Int32Array, from: number, to: number): number {
  let h = 0x811c9dc5 ^ (to - from);
  for (let i = from; i < to; i++) {
    h = Math.imul(h ^ w[i], 0x9e3779b1);
    h ^= h >>> 15;
  }
  h = Math.imul(h ^ (h >>> 13), 0x85ebca6b);
  return (h ^ (h >>> 16)) >>> 0;
}

export class StateStore {
  private words = new Int32Array(1 << 16);
  private used = 0;
  private start = new Int32Array(1 << 12);
  private hashes = new Uint32Array(1 << 12);
  /** Slots hold state index + 1 (0: empty). */
  private slots = new Int32Array(1 << 13);
  size = 0;

  /** `hash` is for tests: a poor one makes every key collide, so that only the word comparison tells them apart. */
  constructor(private readonly hash: (w: Int32Array, from: number, to: number) => number = hashWords) {}

  /** The index of the key in `key.data[0, key.length)`; adds it if it is new (then `size` grows by one). */
  intern(key: KeyBuffer): number {
    const k = key.data;
    const n = key.length;
    const h = this.hash(k, 0, n) >>> 0;
    const mask = this.slots.length - 1;
    for (let s = h & mask; ; s = (s + 1) & mask) {
      const held = this.slots[s];
      if (held === 0) return this.add(k, n, h, s);
      const i = held - 1;
      if (this.hashes[i] !== h) continue;
      const from = this.start[i];
      if (this.start[i + 1] - from !== n) continue;
      let same = true;
      for (let j = 0; j < n; j++)
        if (this.words[from + j] !== k[j]) {
          same = false;
          break;
        }
      if (same) return i;
    }
  }

  /** The stored key of state `i` as the same text `keyText` gives for a buffer. */
  keyText(i: number): string {
    return this.words.subarray(this.start[i], this.start[i + 1]).join(',');
  }

  /** Bytes held, for the memory estimate. */
  get bytes(): number {
    return this.words.byteLength + this.start.byteLength + this.hashes.byteLength + this.slots.byteLength;
  }

  private add(k: Int32Array, n: number, h: number, slot: number): number {
    const i = this.size;
    if (this.used + n > this.words.length) {
      let cap = this.words.length * 2;
      while (cap < this.used + n) cap *= 2;
      const w = new Int32Array(cap);
      w.set(this.words.subarray(0, this.used));
      this.words = w;
    }
    const words = this.words;
    for (let j = 0, at = this.used; j < n; j++) words[at + j] = k[j];
    if (i + 2 > this.start.length) {
      const s = new Int32Array(this.start.length * 2);
      s.set(this.start);
      this.start = s;
      const hs = new Uint32Array(this.hashes.length * 2);
      hs.set(this.hashes);
      this.hashes = hs;
    }
    this.start[i] = this.used;
    this.used += n;
    this.start[i + 1] = this.used;
    this.hashes[i] = h;
    this.slots[slot] = i + 1;
    this.size++;
    if (this.size * 2 > this.slots.length) this.rehash();
    return i;
  }

  private rehash(): void {
    const slots = new Int32Array(this.slots.length * 2);
    const mask = slots.length - 1;
    for (let i = 0; i < this.size; i++) {
      let s = this.hashes[i] & mask;
      while (slots[s] !== 0) s = (s + 1) & mask;
      slots[s] = i + 1;
    }
    this.slots = slots;
  }
}

/** A key as text (the words, comma-separated): what tests and the cycle replay compare. */
export function keyText(key: KeyBuffer): string {
  return key.data.subarray(0, key.length).join(',');
}
