// The prefix cache (EngineOptions.prefixCaching), vLLM's block pool hash map reduced to what the spec can
// see: (prefix id, block index) → a free block that still holds that K/V. A request frees its blocks; those
// of its prefix's full blocks whose K/V is computed stay mapped while they sit on the free list; a later
// request with the same prefix is allocated exactly those blocks (a hit). A mapped block taken from the free
// list for anything else is evicted from the map, so the map only ever holds free blocks.
import type { Req } from '../state.ts';

/** No cache hits (shared: an allocation without hits allocates nothing for them). */
export const NO_HITS: readonly number[] = [];

/** The pool whose blocks the cache maps: the prefill (or unified) worker's, GPU 0 in every mode. */
export const PREFIX_POOL = 0;

export class PrefixCache {
  private readonly map = new Map<string, number>();
  /** Per global block of PREFIX_POOL: its key while mapped. */
  private readonly keys: (string | null)[];
  /** Blocks served from the cache. */
  hits = 0;

  constructor(
    readonly enabled: boolean,
    private readonly blockSize: number,
    blocks: number,
  ) {
    this.keys = enabled ? new Array<string | null>(blocks).fill(null) : [];
  }

  /** `r`'s prompt starts with prefix `id` of `length` tokens: its full blocks are cacheable. */
  setPrefix(r: Req, id: string, length: number): void {
    r.prefixBlocks = this.enabled ? Math.floor(length / this.blockSize) : 0;
    r.prefixId = r.prefixBlocks > 0 ? id : null;
  }

  private key(id: string, i: number): string {
    return `${id}\u0000${i}`;
  }

  /** The hits for `r`'s admission to `gpu`: the mapped blocks of its prefix, from the first, up to the first miss. */
  lookup(r: Req, gpu: number, count: number): readonly number[] {
    if (r.prefixId === null || gpu !== PREFIX_POOL) return NO_HITS;
    let hits: number[] | null = null;
    const n = Math.min(r.prefixBlocks, count);
    for (let i = 0; i < n; i++) {
      const b = this.map.get(this.key(r.prefixId, i));
      if (b === undefined) break;
      (hits ??= []).push(b);
    }
    if (hits === null) return NO_HITS;
    this.hits += hits.length;
    return hits;
  }

  /** Freed blocks of `r` that hold computed K/V of its prefix stay mapped while they are free. */
  remember(r: Req, blocks: readonly number[]): void {
    const n = Math.min(r.prefixReady, blocks.length);
    for (let i = 0; i < n; i++) {
      const b = blocks[i];
      const key = this.key(r.prefixId!, i);
      const old = this.map.get(key);
      if (old !== undefined) this.keys[old] = null;
      this.evict(b);
      this.map.set(key, b);
      this.keys[b] = key;
    }
  }

  /** Block `b` leaves the map (taken for another use). */
  evict(b: number): void {
    const key = b < this.keys.length ? this.keys[b] : null;
    if (key === null || key === undefined) return;
    if (this.map.get(key) === b) this.map.delete(key);
    this.keys[b] = null;
  }

  /** Blocks `table[from..]`, just taken from the free list, leave the map. */
  evictReissued(table: readonly number[], from: number): void {
    for (let i = from; i < table.length; i++) this.evict(table[i]);
  }
}
