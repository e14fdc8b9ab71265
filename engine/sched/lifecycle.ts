// The request lifecycle (spec/machines/request.ts is its judge): arrival, admission to a prefill worker,
// tokens, finish, abort, preemption by retraction, and the deferred free when a step or transfer that used
// a request's blocks ends. Every transition emits the trace event that names it.
import { hash2, hashString } from '../random.ts';
import type { Rooms } from '../rooms.ts';
import { SimKind } from '../sim/clock.ts';
import { Req, type Worker } from '../state.ts';

export class Lifecycle {
  /** Every request that arrived (forks included), by index. */
  readonly reqs: Req[] = [];
  /** Workload entries that arrived. */
  nextArrival = 0;
  liveCount = 0;
  endedCount = 0;
  preemptions = 0;

  constructor(private readonly rooms: Rooms) {}

  /** Whether requests are still to arrive or live. */
  get hasWork(): boolean {
    return this.nextArrival < this.rooms.config.workload.length || this.liveCount > 0;
  }

  /** A new request record (arrivals and forks). */
  create(id: string, seed: number, prompt: number, maxTokens: number, arrival: number, abortAt: number): Req {
    const { config } = this.rooms;
    const r = new Req(this.reqs.length, id, seed, prompt, maxTokens, arrival, abortAt, config.mode.gpus, config.keepOutputs);
    if (config.slidingWindow > 0) {
      r.windowed = [];
      for (let g = 0; g < config.mode.gpus; g++) r.windowed.push([]);
      r.windowDropped = new Array<number>(config.mode.gpus).fill(0);
    }
    this.reqs.push(r);
    this.liveCount++;
    return r;
  }

  /** The next workload entry arrives: it waits, or is refused if it cannot fit the pool even alone. */
  arrive(): void {
    const { config, clock, tracer, kv } = this.rooms;
    const w = config.workload[this.nextArrival];
    const r = this.create(w.id, w.seed ?? hash2(config.seed, hashString(w.id)), w.prompt, w.output, w.arrival, w.abortAt ?? Number.POSITIVE_INFINITY);
    if (w.prefix) {
      r.prefixSeed = hashString(w.prefix.id);
      r.prefixLength = w.prefix.length;
      this.rooms.prefix.setPrefix(r, w.prefix.id, w.prefix.length);
    }
    r.forksLeft = (w.n ?? 1) - 1;
    this.rooms.history.arrived(clock.now);
    this.nextArrival++;
    if (this.nextArrival < config.workload.length) clock.push(config.workload[this.nextArrival].arrival, SimKind.Arrival, null);
    if (tracer.on)
      tracer.emit(r.prefixBlocks > 0 && kv.sharing ? { t: clock.now, ev: 'arrive', req: r.id, prompt: r.prompt, maxTokens: r.maxTokens, keys: this.rooms.prefix.keysOf(r) } : { t: clock.now, ev: 'arrive', req: r.id, prompt: r.prompt, maxTokens: r.maxTokens });
    const need = Math.ceil((r.prompt + r.maxTokens - 1) / config.blockSize) * kv.perBlock;
    const poolSize = kv.pools[0].size;
    if (need > poolSize) {
      this.end(r, 'aborted');
      r.outcome = 'rejected';
      if (tracer.on) tracer.emit({ t: clock.now, ev: 'abort', req: r.id, note: `rejected: needs ${need} blocks, a pool has ${poolSize}` });
      return;
    }
    if (r.abortAt < Number.POSITIVE_INFINITY) clock.push(r.abortAt, SimKind.Abort, r);
    this.rooms.waiting.enqueue(r);
  }

  /** `r`, its blocks allocated, starts prefilling on `w`. */
  schedule(r: Req, w: Worker): void {
    const { tracer, clock } = this.rooms;
    if (tracer.on) tracer.emit({ t: clock.now, ev: 'schedule', req: r.id, worker: w.id });
    r.state = 'prefilling';
    r.server = w;
    w.load++;
    w.prefilling.push(r);
  }

  appendToken(r: Req, token: number): void {
    const { tracer, clock } = this.rooms;
    const index = r.generated;
    if (tracer.on) tracer.emit({ t: clock.now, ev: 'token', req: r.id, index, token });
    r.generated = index + 1;
    r.tokenOwed = false;
    r.lastTokenAt = clock.now;
    if (index === 0) {
      r.firstTokenAt = clock.now;
      this.rooms.history.firstToken(clock.now, clock.now - r.arrival);
    }
    if (r.outputs) r.outputs.push(token);
  }

  /** `r` ends (no event, no free): it leaves its worker and the live count. */
  end(r: Req, state: 'finished' | 'aborted'): void {
    r.state = state;
    r.outcome = state;
    r.endAt = this.rooms.clock.now;
    if (r.server) {
      r.server.load--;
      r.server = null;
    }
    r.tokenOwed = false;
    this.liveCount--;
    this.endedCount++;
    this.rooms.speculation?.forget(r);
  }

  finish(r: Req): void {
    const { tracer, clock } = this.rooms;
    if (tracer.on) tracer.emit({ t: clock.now, ev: 'finish', req: r.id });
    this.end(r, 'finished');
    this.rooms.history.finished(clock.now, r.generated > 1 ? (r.lastTokenAt - r.firstTokenAt) / (r.generated - 1) : 0);
    this.rooms.seams.freeOnFinish(r);
  }

  /** The abort path: from any live state; blocks in use by a step or transfer are freed when it ends. */
  abort(r: Req): void {
    if (r.ended) return;
    const { tracer, clock, seams } = this.rooms;
    if (tracer.on) tracer.emit({ t: clock.now, ev: 'abort', req: r.id });
    const wasHandedOff = r.state === 'handedOff';
    r.inWaiting = false;
    this.end(r, 'aborted');
    if (r.inFlight > 0 && r.awaitingKv && seams.abortDuringTransfer(r)) return;
    if (r.transferEnded && seams.abortAfterTransfer(r, wasHandedOff)) return;
    if (r.inFlight > 0) r.settleFree = true;
    else this.rooms.kv.freeRequest(r);
  }

  /** A client abort ends the request and the forks of its parallel samples. */
  clientAbort(r: Req): void {
    this.abort(r);
    if (r.children) for (const c of r.children) this.abort(c);
  }

  /** A step or transfer that used `r`'s blocks has ended: the deferred free happens now, exactly once. */
  settle(r: Req): void {
    if (r.inFlight > 0 || !r.settleFree) return;
    r.settleFree = false;
    if (r.state === 'retracting') {
      this.completeRetraction(r);
      return;
    }
    this.rooms.seams.beforeDeferredFree(r);
    this.rooms.kv.freeRequest(r);
  }

  /** `w` preempts `victim` by retraction: every token is kept, the K/V is recomputed after it waits again. */
  preempt(victim: Req, w: Worker): void {
    const { tracer, clock } = this.rooms;
    if (tracer.on) tracer.emit({ t: clock.now, ev: 'preempt', req: victim.id, worker: w.id });
    victim.state = 'retracting';
    victim.server = null;
    w.load--;
    victim.computed = 0;
    victim.tokenOwed = false;
    victim.preemptions++;
    this.preemptions++;
    if (victim.inFlight > 0) {
      // Asynchronous scheduling: the step in flight still uses its blocks; they are freed when it ends.
      victim.settleFree = true;
      victim.victimOf = w;
      w.pendingVictim = victim;
    } else {
      this.completeRetraction(victim);
    }
  }

  /** Frees a retracted request's blocks and puts it back at the head of the waiting queue. */
  private completeRetraction(r: Req): void {
    this.rooms.seams.beforeRetractionFree(r);
    this.rooms.kv.freeRequest(r);
    r.waitClass = 0;
    this.rooms.waiting.enqueue(r);
  }
}
