// Steps: a worker's batch becomes a StepSpec for the executor (the cost model, a CPU reference or WebGPU
// kernels); the result's duration schedules the step's end. An asynchronous executor's results are awaited
// in begin order, so that step ends are queued exactly as with a synchronous one.
import type { BatchItem } from '../spec/trace-format.ts';
import { ExecutorError, type StepItem, type StepResult, type StepSpec } from './executors/step-executor.ts';
import type { Rooms } from './rooms.ts';
import { AttentionServers } from './sched/attention.ts';
import { SimKind } from './sim/clock.ts';
import { NO_DRAFTS, Step, type Req, type Worker } from './state.ts';

function isThenable<T>(x: T | Promise<T>): x is Promise<T> {
  return typeof (x as { then?: unknown }).then === 'function';
}

export class StepRunner {
  private readonly pending: { step: Step; result: Promise<StepResult> }[] = [];
  /** Core-attention disaggregation: the attention servers and their tasks, or null when off. */
  readonly attention: AttentionServers | null;

  constructor(private readonly rooms: Rooms) {
    this.attention = rooms.config.attentionServers ? new AttentionServers(rooms, rooms.config.attentionServers) : null;
  }

  /** Core-attention disaggregation: writes the task events of `step` planned before its end (at the end's time). */
  endTasks(step: Step): void {
    if (this.attention === null) return;
    const events = this.attention.end(step);
    const tracer = this.rooms.tracer;
    if (!tracer.on) return;
    const now = this.rooms.clock.now;
    for (const e of events) {
      e.t = now;
      tracer.emit(e);
    }
  }

  /**
   * `w` starts a step over `reqs`: `toks[i]` positions each, `decode[i]` 1 for a decode item, 0 for prefill.
   * With speculative decoding a decode item verifies the drafts its request was given (r.drafts): its
   * positions are its last token's and the drafts' (`toks[i]` = 1 + drafts), and the trace (v3) names each
   * item's first position, its drafts and, for a decode item, the token ids it writes.
   */
  begin(w: Worker, reqs: Req[], toks: number[], decode: number[]): void {
    const rooms = this.rooms;
    const tracer = rooms.tracer;
    const speculation = rooms.speculation;
    const id = String(++w.stepSeq);
    const step = new Step(id, w, reqs, toks, decode);
    const wantsHistory = rooms.config.wantsHistory;
    const items: StepItem[] = new Array(reqs.length);
    const drafts: (readonly number[])[] | null = speculation === null ? null : new Array(reqs.length);
    let verifies = false;
    let prefillTokens = 0;
    let pairs = 0;
    let decodeItems = 0;
    let context = 0;
    for (let i = 0; i < reqs.length; i++) {
      const r = reqs[i];
      const n = toks[i];
      let start = r.computed;
      let draft = 0;
      let ids: number[] | undefined;
      if (decode[i] === 1) {
        if (drafts !== null) {
          const d = r.drafts;
          r.drafts = NO_DRAFTS;
          drafts[i] = d;
          draft = d.length;
          if (draft > 0) verifies = true;
          start = rooms.seams.stepFrom(r);
          ids = [rooms.seams.firstInput(r, r.outputs![r.generated - 1]), ...d];
        }
        decodeItems += 1 + draft;
        context += start + 1 + draft;
      } else {
        if (drafts !== null) drafts[i] = NO_DRAFTS;
        prefillTokens += n;
        pairs += n * start + (n * (n + 1)) / 2;
      }
      const item: StepItem = {
        req: r.id,
        seed: r.seed,
        prompt: r.prompt,
        phase: decode[i] === 1 ? 'decode' : 'prefill',
        startPos: start,
        tokens: n,
        producesToken: start + n - draft === r.length,
        draft,
        blockTable: r.blocks[w.gpu],
        generated: wantsHistory ? r.outputs : null,
        prefixSeed: r.prefixSeed,
        prefixLength: r.prefixLength,
      };
      if (ids !== undefined) (item as { ids?: readonly number[] }).ids = ids;
      items[i] = item;
      r.inFlight++;
    }
    if (drafts !== null) {
      if (verifies) step.drafts = drafts;
      speculation!.began(drafts, decode);
    }
    const { coRunning, busyShares } = rooms.workers.busyOnGpu(w);
    w.step = step;
    w.state = 'busy';
    const cad = this.attention === null ? null : this.attention.begin(step, w.id, w.gpu, items.map((it, i) => ({ req: reqs[i], from: it.startPos, tokens: it.tokens, decode: decode[i] === 1 })));
    if (tracer.on) {
      const batch: BatchItem[] = new Array(reqs.length);
      if (rooms.config.traceVersion < 3) for (let i = 0; i < reqs.length; i++) batch[i] = { req: reqs[i].id, tokens: toks[i] };
      else
        for (let i = 0; i < reqs.length; i++) {
          // Trace v3: the first position, the drafts at the item's tail, the ids a decode item writes.
          const it = items[i];
          const b: BatchItem = { req: it.req, tokens: it.tokens, from: it.startPos };
          if (it.draft > 0) b.draft = it.draft;
          if (it.ids !== undefined) b.ids = it.ids.slice();
          batch[i] = b;
        }
      tracer.emit({ t: rooms.clock.now, ev: 'step_begin', worker: w.id, step: id, batch });
      // Core-attention disaggregation: the step's tasks, and the first dispatch into each free buffer.
      if (cad !== null)
        for (const e of cad.pre) {
          e.t = rooms.clock.now;
          tracer.emit(e);
        }
    }
    const spec: StepSpec = {
      worker: w.id,
      role: w.role,
      gpu: w.gpu,
      share: w.share,
      // Oversubscribed shares (semi-PD's MPS, 80 + 100) are scaled down while both run.
      effectiveShare: busyShares > 100 ? (w.share * 100) / busyShares : w.share,
      coRunning,
      items,
      prefillTokens,
      attentionPairs: pairs,
      decodeItems,
      contextTokens: context,
    };
    if (cad !== null) (spec as { attention?: StepSpec['attention'] }).attention = cad.work;
    const copies = rooms.kv.pendingCopies[w.gpu];
    if (copies.length > 0) {
      (spec as { copies?: StepSpec['copies'] }).copies = copies.slice();
      copies.length = 0;
    }
    const result = rooms.config.executor.execute(spec);
    if (isThenable(result)) this.pending.push({ step, result });
    else this.scheduleEnd(step, result);
  }

  private scheduleEnd(step: Step, result: StepResult): void {
    const name = this.rooms.config.executor.name;
    if (!(result.duration > 0) || !Number.isFinite(result.duration)) {
      throw new ExecutorError(`executor '${name}' gave step ${step.id} of ${step.worker.id} a duration of ${result.duration}; it must be finite and > 0`);
    }
    if (result.tokens.length !== step.reqs.length) {
      throw new ExecutorError(`executor '${name}' returned ${result.tokens.length} token(s) for a step of ${step.reqs.length} item(s)`);
    }
    if (step.drafts !== null) {
      const all = result.nextAll;
      for (let i = 0; i < step.drafts.length; i++) {
        const k = step.drafts[i].length;
        if (k === 0) continue;
        const next = all?.[i];
        if (!next || next.length !== k + 1)
          throw new ExecutorError(`executor '${name}' returned ${next ? next.length : 'no'} argmax(es) for the verify of ${step.reqs[i].id} in step ${step.id}, which has ${k + 1} positions`);
      }
    }
    step.result = result;
    this.rooms.clock.push(this.rooms.clock.now + result.duration, SimKind.StepEnd, step);
  }

  /** A synchronous run met an asynchronous executor. */
  requireNone(): void {
    if (this.pending.length > 0) throw new ExecutorError(`executor '${this.rooms.config.executor.name}' is asynchronous: use runToCompletionAsync or stepOnceAsync`);
  }

  /** Awaits the asynchronous executor's results, in begin order. */
  async drain(): Promise<void> {
    while (this.pending.length > 0) {
      const { step, result } = this.pending.shift()!;
      this.scheduleEnd(step, await result);
    }
  }
}
