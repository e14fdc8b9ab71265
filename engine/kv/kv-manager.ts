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
import { NO_HITS, PREFIX_POOL, type PrefixCache } from './prefix-cache.ts';

export class KvManager {
  readonly pools: BlockPool[] = [];
  private readonly blockSize: number;
  private readonly watermarkBlocks: number;
  private readonly stepAllocEvents: boolean;

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
    for (let g = 0; g < config.mode.gpus; g++) this.pools.push(new BlockPool(g, config.blocks, config.poolLocking, config.blockOwnerChecks));
  }

  /**
   * Allocates `count` blocks of `gpu`'s pool to `r`, by `worker`: first the blocks named in `cached` (prefix
   * cache hits, the table's first logical blocks), then blocks from the top of the free list. `shared` (a
   * fault's only) is another request's block appended to the table by reference, not taken from the pool.
   */
  allocate(worker: Worker, r: Req, gpu: number, count: number, cached: readonly number[] = NO_HITS, shared = -1): void {
    const pool = this.pools[gpu];
    const table = r.blocks[gpu];
    const start = table.length;
    const fresh = count - cached.length - (shared >= 0 ? 1 : 0);
    const tracer = this.tracer;
    const open = this.wiring.seams.openReading(worker);
    if (open) {
      // A reading left open by someone else (a fault: taken at the start of the pass, committed at its end).
      this.takeBlocks(pool, open, r, cached, fresh, shared, table);
      if (tracer.on) tracer.emit(this.allocEvent('alloc_take', worker, r, table.slice(start), cached.length));
      return;
    }
    const reading = pool.query(worker.id);
    if (tracer.on && this.stepAllocEvents) tracer.emit({ t: this.clock.now, ev: 'alloc_query', worker: worker.id });
    this.takeBlocks(pool, reading, r, cached, fresh, shared, table);
    if (tracer.on) tracer.emit(this.allocEvent(this.stepAllocEvents ? 'alloc_take' : 'alloc', worker, r, table.slice(start), cached.length));
    pool.commit(reading);
    if (tracer.on && this.stepAllocEvents) tracer.emit({ t: this.clock.now, ev: 'alloc_commit', worker: worker.id });
  }

  private allocEvent(ev: 'alloc' | 'alloc_take', worker: Worker, r: Req, blocks: number[], hits: number): TraceEvent {
    const t = this.clock.now;
    return hits > 0 ? { t, ev, worker: worker.id, req: r.id, blocks, note: `prefix cache hit: the first ${hits} block(s)` } : { t, ev, worker: worker.id, req: r.id, blocks };
  }

  private takeBlocks(pool: BlockPool, reading: UtilisationReading, r: Req, cached: readonly number[], fresh: number, shared: number, table: number[]): void {
    for (const b of cached) {
      pool.takeBlock(reading, r.idx, b, table);
      this.prefix.evict(b);
    }
    const from = table.length;
    pool.take(reading, r.idx, fresh, table);
    // A cached block reissued to another request is evicted from the prefix map.
    if (this.prefix.enabled) this.wiring.seams.evictReissued(table, from);
    if (shared >= 0) table.push(shared);
  }

  /** The free of a request's blocks, every pool, once: one `free` per pool that holds some. */
  freeRequest(r: Req): void {
    for (let g = 0; g < r.blocks.length; g++) this.freePool(r, g);
    if (r.victimOf) {
      // The deferred free of an asynchronous preemption's victim: its worker may preempt again.
      if (r.victimOf.pendingVictim === r) r.victimOf.pendingVictim = null;
      r.victimOf = null;
    }
  }

  /** Frees `r`'s blocks of pool `g`; those holding its computed prefix stay in the prefix cache. */
  freePool(r: Req, g: number): void {
    const blocks = r.blocks[g];
    if (blocks.length === 0) return;
    r.blocks[g] = [];
    if (this.tracer.on) this.tracer.emit({ t: this.clock.now, ev: 'free', req: r.id, blocks });
    this.pools[g].release(r.idx, blocks);
    if (g === PREFIX_POOL && r.prefixReady > 0) {
      this.prefix.remember(r, blocks);
      r.prefixReady = 0;
    }
    this.wiring.seams.afterRelease(r, g, blocks);
  }

  /** Room in `gpu`'s pool for `need` more blocks, keeping the watermark free once anything is in use. */
  hasRoom(gpu: number, need: number): boolean {
    const pool = this.pools[gpu];
    return pool.free >= need + (pool.inUse > 0 ? this.watermarkBlocks : 0);
  }

  /** Room for `r`'s whole prompt (and generated tokens, for a recompute) in `gpu`'s pool. */
  canAdmit(r: Req, gpu: number): boolean {
    return this.hasRoom(gpu, Math.ceil(r.length / this.blockSize));
  }

  totalFree(): number {
    let free = 0;
    for (const p of this.pools) free += p.free;
    return free;
  }

  /** Fraction of all blocks (every pool) owned now. */
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
