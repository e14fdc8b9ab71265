// The unified KV block pool of one GPU: semi-PD's unified memory manager.
//
// Allocation is the paper's three steps, under the pool lock: query utilisation (take the lock and read
// how many blocks are free and where the free list's top is) → take blocks (those that were free in that
// reading) → update utilisation (write it back and release the lock). With the lock the reading is always
// current when the blocks are taken. Without it (bug zoo Z13, EngineFaults.locklessAllocator) two workers
// can read the same utilisation and take the same blocks: `take` deliberately trusts its reading.
//
// The free list is a stack of block ids in an Int32Array: take pops, release pushes. Both are O(1) per block
// and nothing ever scans the pool. Global block ids follow the trace format: pool p holds ids
// p·B .. p·B + B − 1.

/** What alloc_query read: the pool's utilisation at one moment. */
export interface UtilisationReading {
  worker: string;
  /** Free blocks at the time of the reading (the free list's height). */
  free: number;
  /** Utilisation version, bumped by every write-back. */
  version: number;
  /** Blocks taken under this reading, written back by commit. */
  taken: number;
}

/** The engine broke its own bookkeeping (not a user error): a bug in the engine, or an injected fault. */
export class EngineBugError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EngineBugError';
  }
}

export const NO_OWNER = -1;

export class BlockPool {
  /** Free block ids (global), the top at index `top − 1`. */
  private stack: Int32Array;
  private top: number;
  /** Per local block: its index in `stack` while it is free, else −1 (whether a block with no holder is parked). */
  private readonly pos: Int32Array;
  /** Per local block: the owning request's engine index, or NO_OWNER. Kept for observe() and the self-checks. */
  readonly owner: Int32Array;
  /**
   * Shared KV (trace v2) only: per local block, the engine indices of its holders in the order they took it
   * (`owner` is always the first), and how many blocks are parked: free of holders but kept off the free
   * list because the prefix cache still maps them (they count as free: an allocation evicts them).
   */
  readonly holders: number[][] | null;
  parked = 0;
  /** Utilisation as last written back: blocks in use. */
  used = 0;
  version = 0;
  private holder: string | null = null;

  constructor(
    readonly gpu: number,
    readonly size: number,
    /** Whether allocation takes the lock (false only under the Z13 fault). */
    readonly locking = true,
    /** Whether to check owners on take and release (off when a fault is injected on purpose). */
    readonly selfCheck = true,
    /** Whether blocks may have several holders (trace v2: a prefix cache, forks). */
    shared = false,
  ) {
    this.holders = shared ? Array.from({ length: size }, () => []) : null;
    // Room for twice the pool (and more on demand when a fault is injected), so that a duplicate release
    // injected on purpose (Z1, Z8, Z12) is recorded as the bug it is, a block on the free list twice, rather
    // than lost.
    this.stack = new Int32Array(2 * size);
    // Pops hand out the lowest ids first: block p·B, then p·B + 1, ...
    this.pos = new Int32Array(size);
    for (let i = 0; i < size; i++) {
      this.stack[i] = gpu * size + (size - 1 - i);
      this.pos[size - 1 - i] = i;
    }
    this.top = size;
    this.owner = new Int32Array(size).fill(NO_OWNER);
  }

  get base(): number {
    return this.gpu * this.size;
  }

  /** Free blocks now: on the free list, or parked in the prefix cache (an allocation evicts those). */
  get free(): number {
    return this.top + this.parked;
  }

  /** Blocks on the free list itself (what an allocation takes without evicting). */
  get unmapped(): number {
    return this.top;
  }

  /** Blocks held now (what `used` becomes once pending allocations commit). */
  get inUse(): number {
    return this.size - this.top - this.parked;
  }

  get lockHolder(): string | null {
    return this.holder;
  }

  /** Step 1: take the lock and read utilisation. */
  query(worker: string): UtilisationReading {
    if (this.locking) {
      if (this.holder !== null) throw new EngineBugError(`pool ${this.gpu}: ${worker} queried utilisation while ${this.holder} holds the lock`);
      this.holder = worker;
    }
    return { worker, free: this.top, version: this.version, taken: 0 };
  }

  /**
   * Step 2: take `count` blocks that were free in `reading` for request `owner`, appending their ids to
   * `out`. Under the lock the reading is current; without it the reading may be stale, and the blocks taken
   * are those that were on top of the free list then, whoever took them since (Z13).
   */
  take(reading: UtilisationReading, owner: number, count: number, out: number[]): void {
    if (this.locking && this.holder !== reading.worker) throw new EngineBugError(`pool ${this.gpu}: ${reading.worker} took blocks without holding the lock`);
    // Without the lock a reading that shows too few blocks is read again; one that shows enough is trusted.
    const from = this.locking || reading.free < count ? this.top : reading.free;
    if (count > from) throw new EngineBugError(`pool ${this.gpu}: ${reading.worker} took ${count} block(s) but the reading had ${from} free`);
    const base = this.gpu * this.size;
    for (let i = 1; i <= count; i++) {
      const id = this.stack[from - i];
      if (this.selfCheck && this.owner[id - base] !== NO_OWNER) throw new EngineBugError(`pool ${this.gpu}: block ${id} taken while owned by request #${this.owner[id - base]}`);
      this.owner[id - base] = owner;
      this.pos[id - base] = -1;
      out.push(id);
    }
    const newTop = from - count;
    if (newTop < this.top) this.top = newTop;
    // The worker's own view moves on with what it took; another worker's does not (without the lock).
    reading.free = newTop;
    reading.taken += count;
  }

  /** Step 3: write utilisation back and release the lock. */
  commit(reading: UtilisationReading): void {
    if (this.locking) {
      if (this.holder !== reading.worker) throw new EngineBugError(`pool ${this.gpu}: ${reading.worker} committed without holding the lock`);
      this.holder = null;
    }
    this.used += reading.taken;
    reading.taken = 0;
    this.version++;
  }

  /** Returns blocks of request `owner` to the free list: O(1) each. */
  release(owner: number, blocks: readonly number[]): void {
    const base = this.gpu * this.size;
    for (let i = 0; i < blocks.length; i++) {
      const id = blocks[i];
      const local = id - base;
      if (this.selfCheck) {
        if (local < 0 || local >= this.size) throw new EngineBugError(`pool ${this.gpu}: block ${id} is not in this pool`);
        if (this.owner[local] !== owner) throw new EngineBugError(`pool ${this.gpu}: request #${owner} freed block ${id}, owned by ${this.owner[local] === NO_OWNER ? 'nobody (double free)' : `request #${this.owner[local]}`}`);
      }
      if (this.owner[local] === owner) this.owner[local] = NO_OWNER;
      if (this.top === this.stack.length) {
        if (this.selfCheck) throw new EngineBugError(`pool ${this.gpu}: free list overflow (blocks released more often than taken)`);
        // A fault injected on purpose keeps releasing blocks twice: the free list records every duplicate.
        const grown = new Int32Array(2 * this.stack.length);
        grown.set(this.stack);
        this.stack = grown;
      }
      this.pos[local] = this.top;
      this.stack[this.top++] = id;
    }
    this.used -= blocks.length;
  }

  // ---------------------------------------------------------------------------------------------
  // Shared KV (trace v2): several holders per block, and blocks parked in the prefix cache

  /** Whether `id` is parked: no holder, off the free list, still mapped by the prefix cache. */
  isParked(id: number): boolean {
    const local = id - this.gpu * this.size;
    return this.holders !== null && this.holders[local].length === 0 && this.owner[local] === NO_OWNER && this.pos[local] === -1;
  }

  /** Request `holder` takes a reference on held or parked block `id` (a prefix-cache hit, a fork). */
  hold(holder: number, id: number): void {
    const local = id - this.gpu * this.size;
    const hs = this.holders![local];
    if (this.selfCheck && hs.includes(holder)) throw new EngineBugError(`pool ${this.gpu}: request #${holder} took a second reference on block ${id}`);
    if (hs.length === 0) {
      if (this.isParked(id)) {
        this.parked--;
        this.used++;
      } else if (this.selfCheck) {
        throw new EngineBugError(`pool ${this.gpu}: block ${id} revived by a hit while not parked`);
      }
      this.owner[local] = holder;
    }
    hs.push(holder);
  }

  /** Blocks just taken by `take` for `holder`: their only holder. */
  heldFresh(holder: number, ids: readonly number[], from: number): void {
    const base = this.gpu * this.size;
    for (let i = from; i < ids.length; i++) this.holders![ids[i] - base] = [holder];
  }

  /**
   * Request `holder` drops its reference on `id`. Returns whether it was the last holder (the block is then
   * held by nobody: the caller parks it or puts it on the free list). Others keep it, the first of them as owner.
   */
  drop(holder: number, id: number): boolean {
    const local = id - this.gpu * this.size;
    const hs = this.holders![local];
    const at = hs.indexOf(holder);
    if (at < 0) {
      if (this.selfCheck) throw new EngineBugError(`pool ${this.gpu}: request #${holder} freed block ${id}, held by ${hs.length ? hs.map((h) => `#${h}`).join(', ') : 'nobody (double free)'}`);
      return false;
    }
    hs.splice(at, 1);
    if (hs.length > 0) {
      this.owner[local] = hs[0];
      return false;
    }
    return true;
  }

  /** Parks `id`, whose last holder just dropped it: mapped by the prefix cache, off the free list. */
  park(id: number): void {
    this.owner[id - this.gpu * this.size] = NO_OWNER;
    this.parked++;
    this.used--;
  }

  /** A fault's only (Z22): parked block `id` stops counting as free, with no holder (a leaked reference). */
  leak(id: number): void {
    this.parked--;
    this.used++;
    this.owner[id - this.gpu * this.size] = NO_OWNER - 1;
  }

  /** Parked block `id` is evicted from the prefix cache: it goes on the free list. */
  unpark(id: number): void {
    const local = id - this.gpu * this.size;
    this.parked--;
    this.pos[local] = this.top;
    this.stack[this.top++] = id;
  }

  /** Puts `id`, dropped by its last holder and not cached, on the free list (release without the owner check). */
  releaseDropped(id: number): void {
    const local = id - this.gpu * this.size;
    this.owner[local] = NO_OWNER;
    this.pos[local] = this.top;
    this.stack[this.top++] = id;
    this.used--;
  }

  /** The free list, top first (tests and debugging; O(free)). */
  freeList(): number[] {
    const out: number[] = [];
    for (let i = this.top - 1; i >= 0; i--) out.push(this.stack[i]);
    return out;
  }
}
