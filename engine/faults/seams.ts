// The engine's seams: the named places where a bug-zoo fault may change what the engine does. Each seam is
// one small decision of the allocator, the lifecycle or the handoff, with the correct behaviour as its
// default; a fault file (zNN-*.ts) replaces the seams it needs, the way XState's machine.provide() replaces
// implementations. The engine calls seams only; it never asks which fault is on.
import type { UtilisationReading } from '../kv/block-pool.ts';
import { WINDOW_GROUP, type KvManager } from '../kv/kv-manager.ts';
import type { Req, Worker } from '../state.ts';
import type { Tracer } from '../sim/tracer.ts';
import type { Clock } from '../sim/clock.ts';
import type { EngineConfig } from '../config.ts';
import type { WorkerSet } from '../sched/workers.ts';
import type { AttentionTask } from '../sched/attention.ts';

export interface Seams {
  /** A fork's allocation for its copy of the parent's prompt blocks (`parentTable`). */
  forkCopy(allocator: Worker, child: Req, gpu: number, count: number, parentTable: readonly number[]): void;
  /** Parked block `b` is evicted to make room: it loses its key, and the key leaves the map. Returns the key. */
  evictParked(b: number): string | null;
  /** Admitted `r` takes a reference on each of `hits`, the cached blocks of its first keys on `gpu`. */
  holdHits(r: Req, gpu: number, hits: readonly number[]): void;
  /** `r` has just been admitted, its blocks allocated (its step has not begun). */
  insertOnAdmit(r: Req): void;
  /** The admission of waiting `r` to `gpu` was refused for want of room (its cache match was only looked at). */
  admissionRefused(r: Req, gpu: number): void;
  /** `r` finished: its blocks are freed, now or (a step still uses them) when that step ends. */
  freeOnFinish(r: Req): void;
  /** `w` is short of blocks while its last victim's free is deferred: true to wait for it rather than preempt again. */
  waitsForDeferredVictim(w: Worker): boolean;
  /** `r` is aborted while its KV transfer is in flight; true when the seam dealt with its blocks. */
  abortDuringTransfer(r: Req): boolean;
  /** `r` is aborted after its KV transfer ended (`wasHandedOff`: queued at the decode side); true when the seam dealt with its blocks. */
  abortAfterTransfer(r: Req, wasHandedOff: boolean): boolean;
  /** The decode side rejected prefilled `r`: the prefill side is told, and frees its blocks. */
  tellPrefillOfRejection(r: Req): void;
  /** A deferred free is about to run (the step or transfer that used `r`'s blocks ended). */
  beforeDeferredFree(r: Req): void;
  /** A retracted request's blocks are about to be freed. */
  beforeRetractionFree(r: Req): void;
  /** `blocks` of pool `gpu` were released for `r`. */
  afterRelease(r: Req, gpu: number, blocks: number[]): void;
  /** A scheduling pass begins / ends. */
  beginPass(): void;
  endPass(): void;
  /** A utilisation reading `w` holds open across allocations (none: each allocation queries and commits its own). */
  openReading(w: Worker): UtilisationReading | undefined;
  /** Resize: the old decode worker hands its FIFO, in order, to its successor (`move` re-points one request). */
  migrateFifo(old: Worker, successor: Worker, move: (r: Req) => void): void;
  /** Speculative decoding: `r`'s verify of `drafts` ended with `accepted` of them accepted (its tokens are appended next). */
  afterVerify(r: Req, drafts: readonly number[], accepted: number): void;
  /** Speculative decoding: the first position a decode or verify step of `r` computes (where its computed positions end). */
  stepFrom(r: Req): number;
  /** Speculative decoding: the token id a decode or verify step of `r` writes at its first position (`last`, its last token). */
  firstInput(r: Req, last: number): number;
  /** Layer groups: live `r`'s step on `gpu` ended; its blocks that no later step reads are freed. */
  dropOutOfWindow(r: Req, gpu: number): void;
  /** Attention servers: whether a buffer takes its next task as soon as the task in it ended (correct: only once its result is read back). */
  freesBufferOnEnd(): boolean;
  /** Attention servers: of the tasks a lost server was ever given (`held`), those dispatched again to the live servers. */
  redispatchOnLoss(held: readonly AttentionTask[]): AttentionTask[];
}

export type SeamName = keyof Seams;

/** What a fault's patch may use: the engine's parts. */
export interface SeamContext {
  readonly config: EngineConfig;
  readonly clock: Clock;
  readonly tracer: Tracer;
  readonly workers: WorkerSet;
  readonly kv: KvManager;
}

/**
 * The correct behaviour at every seam. A class, so that every engine shares the same functions: the
 * scheduling pass and the frees call seams on every event, and a call whose target never changes is inlined.
 */
export class CorrectSeams implements Seams {
  constructor(private readonly ctx: SeamContext) {}

  forkCopy(allocator: Worker, child: Req, gpu: number, count: number): void {
    this.ctx.kv.allocate(allocator, child, gpu, count);
  }

  evictParked(b: number): string | null {
    return this.ctx.kv.prefix.evict(b, true);
  }

  holdHits(r: Req, gpu: number, hits: readonly number[]): void {
    for (const b of hits) this.ctx.kv.holdHit(r, gpu, b);
  }

  insertOnAdmit(): void {}

  admissionRefused(): void {}

  freeOnFinish(r: Req): void {
    if (r.inFlight > 0) r.settleFree = true;
    else this.ctx.kv.freeRequest(r);
  }

  waitsForDeferredVictim(): boolean {
    return true;
  }

  abortDuringTransfer(): boolean {
    return false;
  }

  abortAfterTransfer(): boolean {
    return false;
  }

  tellPrefillOfRejection(r: Req): void {
    this.ctx.kv.freeRequest(r);
  }

  beforeDeferredFree(): void {}

  beforeRetractionFree(): void {}

  afterRelease(): void {}

  beginPass(): void {}

  endPass(): void {}

  openReading(): UtilisationReading | undefined {
    return undefined;
  }

  migrateFifo(old: Worker, successor: Worker, move: (r: Req) => void): void {
    // FIFO entries keep their order behind whatever the successor already queued.
    for (const r of old.fifo) {
      if (r.state !== 'handedOff' || r.server !== old) continue;
      move(r);
      successor.fifo.push(r);
    }
    old.fifo = [];
  }

  afterVerify(): void {}

  stepFrom(r: Req): number {
    return r.computed;
  }

  firstInput(_r: Req, last: number): number {
    return last;
  }

  dropOutOfWindow(r: Req, gpu: number): void {
    const kv = this.ctx.kv;
    kv.dropFirst(r, gpu, WINDOW_GROUP, kv.outOfWindow(r, gpu));
  }

  freesBufferOnEnd(): boolean {
    return false;
  }

  redispatchOnLoss(held: readonly AttentionTask[]): AttentionTask[] {
    // Every task whose result was not read back yet: dispatched, computing, or its result in a lost buffer.
    return held.filter((t) => t.state !== 'consumed');
  }
}

/** A patch: for each seam it changes, the new implementation given the one it wraps. */
export type SeamPatch = { [K in SeamName]?: (next: Seams[K]) => Seams[K] };

/** The correct seams of `ctx` with `patches` applied, the first patch outermost (it sees a call first). */
export function buildSeams(ctx: SeamContext, patches: readonly SeamPatch[]): Seams {
  const seams = new CorrectSeams(ctx);
  const own = seams as unknown as Record<SeamName, unknown>;
  for (let i = patches.length - 1; i >= 0; i--) {
    const p = patches[i];
    for (const name of Object.keys(p) as SeamName[]) {
      const next = (seams[name] as (...args: unknown[]) => unknown).bind(seams);
      own[name] = (p[name] as (next: unknown) => unknown)(next);
    }
  }
  return seams;
}

