// The KV cache manager: one block pool per GPU, allocation as semi-PD's unified memory manager does it
// (query utilisation under the pool lock → take blocks → update utilisation), and the frees — vLLM's
// kv_cache_manager.allocate_slots and free over block_pool. Every allocation and free emits its trace event.
import type { TraceEvent } from '../../spec/trace-format.ts';
import type { EngineConfig } from '../config.ts';
import type { Seams } from '../faults/seams.ts';
import type { Clock } from '../sim/clock.ts';
import type { Tracer } from '../sim/tracer.ts';
import type { Req, Worker } from '../state.ts';
import { BlockPool, type UtilisationReading } from './block-pool.ts';
import { PREFIX_POOL, type PrefixCache } from './prefix-cache.ts';

/** The layer groups a sliding window makes (trace v3): global attention layers, and windowed ones. */
export const FULL_GROUP = 'full';
export const WINDOW_GROUP = 'swa';

export class KvManager {
  readonly pools: BlockPool[] = [];
  private readonly blockSize: number;
  private readonly watermarkBlocks: number;
  private readonly stepAllocEvents: boolean;
  /** Blocks may have several holders (trace v2): prefix caching is on. */
  readonly sharing: boolean;
  private readonly cacheSizeEvents: boolean;
  /** Copy-on-write copies not yet carried out by a step, per GPU: [from, to] block pairs. */
  readonly pendingCopies: [number, number][][] = [];
  /** Layer groups (trace v3): the windowed group's window in positions; 0: one group, no window. */
  readonly window: number;
  /** Blocks a request's logical block takes: one per layer group. */
  readonly perBlock: number;
  /** State slots per GPU (0: none), and each GPU's free ones (global ids; the lowest is taken first). */
  readonly slotsPerGpu: number;
  private readonly freeSlots: number[][] = [];

  constructor(
    config: EngineConfig,
    private readonly clock: Clock,
    private readonly tracer: Tracer,
    readonly prefix: PrefixCache,
    /** Where the seams are (built after the manager: a fault's patch may use it). */
    private readonly wiring: { readonly seams: Seams },
  ) {
    this.blockSize = config.blockSize;
    this.watermarkBlocks = config.watermarkBlocks;
    this.stepAllocEvents = config.stepAllocEvents;
    this.sharing = config.prefixCaching;
    this.cacheSizeEvents = config.cacheSizeEvents;
    this.window = config.slidingWindow;
    this.perBlock = this.window > 0 ? 2 : 1;
    this.slotsPerGpu = config.stateSlots;
    for (let g = 0; g < config.mode.gpus; g++) {
      this.pools.push(new BlockPool(g, config.blocks, config.poolLocking, config.blockOwnerChecks, this.sharing));
      this.pendingCopies.push([]);
      const slots: number[] = [];
      for (let i = this.slotsPerGpu - 1; i >= 0; i--) slots.push(g * this.slotsPerGpu + i);
      this.freeSlots.push(slots);
    }
  }

  /**
   * Allocates `count` blocks of `gpu`'s pool to `r`, by `worker`, from the top of the free list (evicting
   * parked prefix-cache blocks first when the list is short). `shared` (a fault's only) is another request's
   * block appended to the table by reference, not taken from the pool.
   */
  allocate(worker: Worker, r: Req, gpu: number, count: number, shared = -1): void {
    const pool = this.pools[gpu];
    const table = r.blocks[gpu];
    const start = table.length;
    const fresh = count - (shared >= 0 ? 1 : 0);
    const tracer = this.tracer;
    if (this.sharing) this.makeRoom(gpu, fresh);
    const open = this.wiring.seams.openReading(worker);
    if (open) {
      // A reading left open by someone else (a fault: taken at the start of the pass, committed at its end).
      this.takeBlocks(pool, open, r, fresh, shared, table);
      if (tracer.on) tracer.emit({ t: this.clock.now, ev: 'alloc_take', worker: worker.id, req: r.id, blocks: table.slice(start) });
      return;
    }
    const reading = pool.query(worker.id);
    if (tracer.on && this.stepAllocEvents) tracer.emit({ t: this.clock.now, ev: 'alloc_query', worker: worker.id });
    this.takeBlocks(pool, reading, r, fresh, shared, table);
    if (tracer.on) {
      if (this.window > 0) tracer.emit({ t: this.clock.now, ev: 'alloc', worker: worker.id, req: r.id, blocks: table.slice(start), group: FULL_GROUP });
      else tracer.emit({ t: this.clock.now, ev: this.stepAllocEvents ? 'alloc_take' : 'alloc', worker: worker.id, req: r.id, blocks: table.slice(start) });
    }
    pool.commit(reading);
    if (tracer.on && this.stepAllocEvents) tracer.emit({ t: this.clock.now, ev: 'alloc_commit', worker: worker.id });
    if (this.window > 0) this.allocateWindowed(worker, r, gpu, count);
  }

  // ---------------------------------------------------------------------------------------------
  // Layer groups (trace v3): the windowed group's blocks, allocated beside the full group's and dropped
  // once out of the window

  /** The windowed group's `count` blocks for `r` on `gpu`: its table keeps pace with the full group's. */
  private allocateWindowed(worker: Worker, r: Req, gpu: number, count: number): void {
    const pool = this.pools[gpu];
    const table = r.windowed![gpu];
    const start = table.length;
    const reading = pool.query(worker.id);
    pool.take(reading, r.idx, count, table);
    if (this.tracer.on) this.tracer.emit({ t: this.clock.now, ev: 'alloc', worker: worker.id, req: r.id, blocks: table.slice(start), group: WINDOW_GROUP });
    pool.commit(reading);
  }

  /**
   * How many of `r`'s first windowed blocks of `gpu` no later step reads: those whose positions are all below
   * its computed length − window + 1 (a step at position p reads p − window + 1 .. p), less those already dropped.
   */
  outOfWindow(r: Req, gpu: number): number {
    return Math.min(this.blocksBehindWindow(r) - r.windowDropped![gpu], r.windowed![gpu].length);
  }

  /** How many of `r`'s first blocks hold only positions no later step reads through the window. */
  blocksBehindWindow(r: Req): number {
    const firstRead = r.computed - this.window + 1;
    return firstRead < this.blockSize ? 0 : Math.floor(firstRead / this.blockSize);
  }

  /**
   * A live request frees its first `n` blocks of a group on `gpu` (vLLM's remove_skipped_blocks): the
   * windowed group's, or (a fault's only) the full group's.
   */
  dropFirst(r: Req, gpu: number, group: typeof FULL_GROUP | typeof WINDOW_GROUP, n: number): void {
    if (n <= 0) return;
    const table = group === WINDOW_GROUP ? r.windowed![gpu] : r.blocks[gpu];
    const blocks = table.splice(0, n);
    if (group === WINDOW_GROUP) r.windowDropped![gpu] += n;
    if (this.tracer.on) this.tracer.emit({ t: this.clock.now, ev: 'free', req: r.id, blocks, group });
    this.pools[gpu].release(r.idx, blocks);
  }

  /**
   * Speculative decoding that gives rejected slots back (SGLang): `r`'s last blocks of `gpu` past its computed
   * and accepted positions, every layer group's, are freed (none hold a position any step reads).
   */
  freeTail(r: Req, gpu: number): void {
    const keep = Math.ceil(r.computed / this.blockSize);
    if (r.windowed !== null) this.freeLast(r, gpu, r.windowed[gpu], keep - r.windowDropped![gpu], WINDOW_GROUP);
    this.freeLast(r, gpu, r.blocks[gpu], keep, r.windowed === null ? undefined : FULL_GROUP);
  }

  /** Frees the blocks of `table` from logical index `keep` on (with sharing: drops `r`'s references). */
  private freeLast(r: Req, gpu: number, table: number[], keep: number, group: string | undefined): void {
    if (table.length <= Math.max(0, keep)) return;
    const blocks = table.splice(Math.max(0, keep));
    if (this.tracer.on) this.tracer.emit(group === undefined ? { t: this.clock.now, ev: 'free', req: r.id, blocks } : { t: this.clock.now, ev: 'free', req: r.id, blocks, group });
    const pool = this.pools[gpu];
    if (!this.sharing) pool.release(r.idx, blocks);
    // Positions past the computed ones are never cached: a block whose last holder goes is free again.
    else for (const b of blocks) if (pool.drop(r.idx, b)) pool.releaseDropped(b);
  }

  // ---------------------------------------------------------------------------------------------
  // State slots (trace v3): one per request of a hybrid model, beside its blocks

  /** Whether `gpu` has a free state slot (always, without slots). */
  hasSlot(gpu: number): boolean {
    return this.slotsPerGpu === 0 || this.freeSlots[gpu].length > 0;
  }

  /** `r` takes a state slot of `gpu`, by `worker` (none without slots, or when it holds one). The caller checked hasSlot. */
  takeSlot(worker: Worker, r: Req, gpu: number): void {
    if (this.slotsPerGpu === 0 || r.slot >= 0) return;
    r.slot = this.freeSlots[gpu].pop()!;
    if (this.tracer.on) this.tracer.emit({ t: this.clock.now, ev: 'slot_alloc', worker: worker.id, req: r.id, slot: r.slot });
  }

  /** `r` gives its state slot back (after its blocks). */
  releaseSlot(r: Req): void {
    if (r.slot < 0) return;
    const slot = r.slot;
    r.slot = -1;
    if (this.tracer.on) this.tracer.emit({ t: this.clock.now, ev: 'slot_free', req: r.id, slot });
    this.freeSlots[Math.floor(slot / this.slotsPerGpu)].push(slot);
  }

  /** Free slots of `gpu` (the bookkeeping's view). */
  freeSlotsOf(gpu: number): readonly number[] {
    return this.freeSlots[gpu];
  }

  private takeBlocks(pool: BlockPool, reading: UtilisationReading, r: Req, fresh: number, shared: number, table: number[]): void {
    const from = table.length;
    pool.take(reading, r.idx, fresh, table);
    if (this.sharing) pool.heldFresh(r.idx, table, from);
    if (shared >= 0) table.push(shared);
  }

  // ---------------------------------------------------------------------------------------------
  // Shared KV (trace v2): hits, insertions, evictions, forks and copy-on-write

  /** Evicts parked blocks of `gpu`'s pool, least recently parked first, until the free list has `need`. */
  private makeRoom(gpu: number, need: number): void {
    if (gpu !== PREFIX_POOL) return;
    const pool = this.pools[gpu];
    if (pool.unmapped >= need) return;
    while (pool.unmapped < need) {
      const b = this.prefix.oldestParked();
      if (b < 0) break;
      const key = this.wiring.seams.evictParked(b);
      pool.unpark(b);
      if (this.tracer.on) this.tracer.emit(key === null ? { t: this.clock.now, ev: 'evict', block: b } : { t: this.clock.now, ev: 'evict', block: b, key });
    }
    this.reportCacheSize();
  }

  /**
   * Admission of scheduled `r` to `w` with a prefix cache: the cached blocks of its first keys are taken
   * (cache_hit) and count as computed, then the rest of `count` blocks are allocated.
   */
  admitShared(worker: Worker, r: Req, gpu: number, count: number): void {
    const hits = this.prefix.match(r, gpu);
    if (hits.length > 0) {
      this.wiring.seams.holdHits(r, gpu, hits);
      const tokens = hits.length * this.blockSize;
      if (this.tracer.on) this.tracer.emit({ t: this.clock.now, ev: 'cache_hit', req: r.id, blocks: hits, tokens });
      r.computed = tokens;
      r.prefixReady = hits.length;
      this.prefix.hits += hits.length;
      this.prefix.hitTokens += tokens;
      this.reportCacheSize();
    }
    if (count > hits.length) this.allocate(worker, r, gpu, count - hits.length);
    this.wiring.seams.insertOnAdmit(r);
  }

  /** `r` takes a reference on cached block `b` (a hit); `count`: the counters move a revived block from evictable to protected. */
  holdHit(r: Req, gpu: number, b: number, count = true): void {
    const pool = this.pools[gpu];
    if (pool.isParked(b)) {
      this.prefix.revive(b);
      if (count) {
        this.prefix.evictable--;
        this.prefix.protected++;
      }
    }
    pool.hold(r.idx, b);
    r.blocks[gpu].push(b);
  }

  /**
   * A fault's only (Z22): the parked blocks `r` matches on `gpu` are taken out of the eviction order and
   * counted as protected, as a reference taken by a match and never given back would leave them.
   */
  leakMatch(r: Req, gpu: number): void {
    const pool = this.pools[gpu];
    let leaked = false;
    for (const b of this.prefix.match(r, gpu)) {
      if (!pool.isParked(b)) continue;
      this.prefix.revive(b);
      this.prefix.evictable--;
      this.prefix.protected++;
      pool.leak(b);
      leaked = true;
    }
    if (leaked) this.reportCacheSize();
  }

  /** Enters `r`'s full, computed blocks of its shared prefix in the cache (cache_insert), those not cached yet. */
  insertComputed(r: Req, upTo = Math.floor(r.computed / this.blockSize)): void {
    const table = r.blocks[PREFIX_POOL];
    const end = Math.min(r.prefixBlocks, upTo, table.length);
    let changed = false;
    for (let i = r.prefixReady; i < end; i++) {
      const b = table[i];
      const key = this.prefix.keyOf(r, i);
      if (this.prefix.isCached(b) || this.prefix.has(key)) continue;
      this.prefix.insert(b, key);
      changed = true;
      if (this.tracer.on) this.tracer.emit({ t: this.clock.now, ev: 'cache_insert', req: r.id, block: b, key });
    }
    if (end > r.prefixReady) r.prefixReady = end;
    if (changed) this.reportCacheSize();
  }

  /** Reports the cache's counters (cache_size, in tokens) after an operation on the cache, as SGLang's would be read. */
  reportCacheSize(): void {
    const p = this.prefix;
    if (this.tracer.on && this.cacheSizeEvents) this.tracer.emit({ t: this.clock.now, ev: 'cache_size', evictable: p.evictable * this.blockSize, protected: p.protected * this.blockSize });
  }

  /** Child `c` of a fork takes a reference on every block of `parent`, every pool. */
  forkBlocks(parent: Req, c: Req): void {
    for (let g = 0; g < parent.blocks.length; g++) {
      const pool = this.pools[g];
      for (const b of parent.blocks[g]) {
        pool.hold(c.idx, b);
        c.blocks[g].push(b);
      }
    }
  }

  /** Whether `r`'s block at logical index `i` of `gpu` is held by someone else too (a write needs a copy first). */
  sharedAt(r: Req, gpu: number, i: number): boolean {
    const table = r.blocks[gpu];
    if (i >= table.length) return false;
    const pool = this.pools[gpu];
    return pool.holders![table[i] - pool.base].length > 1;
  }

  /**
   * Copy-on-write of `r`'s block at logical index `i` of `gpu`, by `worker`: a fresh block (an allocation),
   * the contents copied by the next step, and `r`'s reference moved to the copy. The pool must have a free block.
   */
  copyOnWrite(worker: Worker, r: Req, gpu: number, i: number): void {
    const pool = this.pools[gpu];
    const table = r.blocks[gpu];
    const shared = table[i];
    this.makeRoom(gpu, 1);
    const got: number[] = [];
    const reading = pool.query(worker.id);
    pool.take(reading, r.idx, 1, got);
    pool.commit(reading);
    const copy = got[0];
    pool.heldFresh(r.idx, got, 0);
    pool.drop(r.idx, shared);
    table[i] = copy;
    this.pendingCopies[gpu].push([shared, copy]);
    this.prefix.copies++;
    if (this.tracer.on) this.tracer.emit({ t: this.clock.now, ev: 'cow', worker: worker.id, req: r.id, shared, copy });
  }

  /** The free of a request's blocks, every pool, once: one `free` per pool that holds some. */
  freeRequest(r: Req): void {
    for (let g = 0; g < r.blocks.length; g++) this.freePool(r, g);
    this.releaseSlot(r);
    if (r.victimOf) {
      // The deferred free of an asynchronous preemption's victim: its worker may preempt again.
      if (r.victimOf.pendingVictim === r) r.victimOf.pendingVictim = null;
      r.victimOf = null;
    }
  }

  /** Frees `r`'s blocks of pool `g` (with sharing: drops its references; a cached block's last holder parks it). */
  freePool(r: Req, g: number): void {
    const blocks = r.blocks[g];
    if (r.windowed !== null) this.freeWindowed(r, g);
    if (blocks.length === 0) return;
    r.blocks[g] = [];
    if (this.tracer.on) this.tracer.emit(r.windowed === null ? { t: this.clock.now, ev: 'free', req: r.id, blocks } : { t: this.clock.now, ev: 'free', req: r.id, blocks, group: FULL_GROUP });
    if (this.sharing) this.dropAll(r, g, blocks);
    else this.pools[g].release(r.idx, blocks);
    this.wiring.seams.afterRelease(r, g, blocks);
  }

  /** Frees the rest of `r`'s windowed group on pool `g` (before its full group: the spec reads a free's group). */
  private freeWindowed(r: Req, g: number): void {
    const blocks = r.windowed![g];
    r.windowDropped![g] = 0;
    if (blocks.length === 0) return;
    r.windowed![g] = [];
    if (this.tracer.on) this.tracer.emit({ t: this.clock.now, ev: 'free', req: r.id, blocks, group: WINDOW_GROUP });
    this.pools[g].release(r.idx, blocks);
  }

  private dropAll(r: Req, g: number, blocks: readonly number[]): void {
    const pool = this.pools[g];
    let parked = false;
    for (const b of blocks) {
      if (!pool.drop(r.idx, b)) continue;
      if (g === PREFIX_POOL && this.prefix.isCached(b)) {
        pool.park(b);
        this.prefix.park(b);
        parked = true;
      } else {
        pool.releaseDropped(b);
      }
    }
    r.prefixReady = 0;
    if (parked) this.reportCacheSize();
  }

  /** Room in `gpu`'s pool for `need` more blocks, keeping the watermark free once anything is in use. */
  hasRoom(gpu: number, need: number): boolean {
    const pool = this.pools[gpu];
    return pool.free >= need * this.perBlock + (pool.inUse > 0 ? this.watermarkBlocks : 0);
  }

  /** Whether `gpu`'s pool has `need` logical blocks free now (every layer group's), watermark aside. */
  hasFree(gpu: number, need: number): boolean {
    return this.pools[gpu].free >= need * this.perBlock;
  }

  /** Room for `r`'s whole prompt (and generated tokens, for a recompute) in `gpu`'s pool, and a state slot. */
  canAdmit(r: Req, gpu: number): boolean {
    if (!this.hasSlot(gpu)) return false;
    const ok = this.hasRoom(gpu, Math.ceil(r.length / this.blockSize));
    if (!ok && this.sharing) this.wiring.seams.admissionRefused(r, gpu);
    return ok;
  }

  totalFree(): number {
    let free = 0;
    for (const p of this.pools) free += p.free;
    return free;
  }

  /** Fraction of all blocks (every pool) held now. */
  occupancy(): number {
    let used = 0;
    let size = 0;
    for (const p of this.pools) {
      used += p.inUse;
      size += p.size;
    }
    return used / size;
  }
}
