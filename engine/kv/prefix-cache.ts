// The prefix cache (EngineOptions.prefixCaching; trace v2), vLLM v1's BlockPool hash map and SGLang's radix
// tree reduced to what the spec can see. A request's prompt may start with a named shared sequence (its
// workload `prefix`); each full block of it has a key (`${id}#${i}`, standing for vLLM's chained block hash).
// When a request has computed such a block it enters the cache under that key (cache_insert). A later
// request whose first keys are cached takes references on those blocks (cache_hit) and skips computing them.
// A cached block whose last holder frees it is parked: off the free list, still mapped, counted as free
// room; an allocation that finds the free list short evicts parked blocks, least recently parked first
// (evict), before it takes them. The engine also keeps SGLang's two counters, evictable and protected
// tokens, and reports them (cache_size) whenever they change.
import type { Req } from '../state.ts';

/** The pool whose blocks the cache maps: the prefill (or unified) worker's, GPU 0 in every mode. */
export const PREFIX_POOL = 0;

export type PrefixCacheKind = 'hash' | 'radix';

export class PrefixCache {
  /** key → block of PREFIX_POOL (a key maps to one block: a second copy computed meanwhile is not entered). */
  private readonly map = new Map<string, number>();
  /** Per block of PREFIX_POOL: its key while it is cached. */
  private readonly keys: (string | null)[];
  /** Parked blocks, least recently parked first (Map keeps insertion order). */
  private readonly lru = new Map<number, true>();
  /** The engine's own counters, in blocks: cached blocks no request holds, and cached blocks some request holds. */
  evictable = 0;
  protected = 0;
  /** What the cache did: blocks served by hits (and their tokens), evictions, insertions, forks and copies. */
  hits = 0;
  hitTokens = 0;
  evictions = 0;
  inserts = 0;
  forks = 0;
  copies = 0;

  constructor(
    readonly enabled: boolean,
    readonly kind: PrefixCacheKind,
    private readonly blockSize: number,
    blocks: number,
  ) {
    this.keys = enabled ? new Array<string | null>(blocks).fill(null) : [];
  }

  /** `r`'s prompt starts with shared sequence `id` of `length` tokens: its full blocks have keys. */
  setPrefix(r: Req, id: string, length: number): void {
    r.prefixBlocks = this.enabled ? Math.floor(length / this.blockSize) : 0;
    r.prefixId = r.prefixBlocks > 0 ? id : null;
  }

  /** The key of `r`'s block `i` (i < r.prefixBlocks). */
  keyOf(r: Req, i: number): string {
    return `${r.prefixId}#${i}`;
  }

  /** `r`'s keys, one per full block of its shared prefix (the `keys` of its arrive event). */
  keysOf(r: Req): string[] {
    const out: string[] = [];
    for (let i = 0; i < r.prefixBlocks; i++) out.push(this.keyOf(r, i));
    return out;
  }

  /**
   * The cached blocks `r` would hit on `gpu` now, without taking them: its first keys, up to the first miss,
   * whole blocks, never its whole sequence (its last position is always computed, as vLLM caps a hit at
   * the length − 1).
   */
  match(r: Req, gpu: number): number[] {
    if (r.prefixId === null || gpu !== PREFIX_POOL) return [];
    const n = Math.min(r.prefixBlocks, Math.floor((r.length - 1) / this.blockSize));
    const hits: number[] = [];
    for (let i = 0; i < n; i++) {
      const b = this.map.get(this.keyOf(r, i));
      if (b === undefined) break;
      hits.push(b);
    }
    return hits;
  }

  /** Block `b`'s key, or null when it is not cached. */
  keyOfBlock(b: number): string | null {
    return b < this.keys.length ? this.keys[b] : null;
  }

  isCached(b: number): boolean {
    return this.keyOfBlock(b) !== null;
  }

  /** Whether `key` is mapped (to any block). */
  has(key: string): boolean {
    return this.map.has(key);
  }

  /** Block `b`, held by its inserter, enters the cache under `key`. */
  insert(b: number, key: string): void {
    this.map.set(key, b);
    this.keys[b] = key;
    this.protected++;
    this.inserts++;
  }

  /** A hit takes parked block `b` (it leaves the eviction order). */
  revive(b: number): void {
    this.lru.delete(b);
  }

  /** Cached block `b` lost its last holder: it waits, parked, for a hit or an eviction. */
  park(b: number): void {
    this.lru.set(b, true);
    this.evictable++;
    this.protected--;
  }

  /** The parked block evicted next, or -1 when none is parked. */
  oldestParked(): number {
    for (const b of this.lru.keys()) return b;
    return -1;
  }

  /** Parked block `b` is evicted: it leaves the eviction order and loses its key (`unmap`: the key leaves the map). */
  evict(b: number, unmap: boolean): string | null {
    const key = this.keys[b];
    this.lru.delete(b);
    this.keys[b] = null;
    if (unmap && key !== null && this.map.get(key) === b) this.map.delete(key);
    this.evictable--;
    this.evictions++;
    return key;
  }

  /** Parked blocks (tests and bookkeeping). */
  get parkedCount(): number {
    return this.lru.size;
  }
}
