// Steps: a worker's batch becomes a StepSpec for the executor (the cost model, a CPU reference or WebGPU
// kernels); the result's duration schedules the step's end. An asynchronous executor's results are awaited
// in begin order, so that step ends are queued exactly as with a synchronous one.
import type { BatchItem } from '../spec/trace-format.ts';
import { ExecutorError, type StepItem, type StepResult, type StepSpec } from './executors/step-executor.ts';
import type { Rooms } from './rooms.ts';
import { SimKind } from './sim/clock.ts';
import { Step, type Req, type Worker } from './state.ts';

function isThenable<T>(x: T | Promise<T>): x is Promise<T> {
  return typeof (x as { then?: unknown }).then === 'function';
}

export class StepRunner {
  private readonly pending: { step: Step; result: Promise<StepResult> }[] = [];

  constructor(private readonly rooms: Rooms) {}

  /** `w` starts a step over `reqs`: `toks[i]` positions each, `decode[i]` 1 for a decode item, 0 for prefill. */
  begin(w: Worker, reqs: Req[], toks: number[], decode: number[]): void {
    const rooms = this.rooms;
    const tracer = rooms.tracer;
    const id = String(++w.stepSeq);
    const step = new Step(id, w, reqs, toks, decode);
    const wantsHistory = rooms.config.wantsHistory;
    const items: StepItem[] = new Array(reqs.length);
    let prefillTokens = 0;
    let pairs = 0;
    let decodeItems = 0;
    let context = 0;
    for (let i = 0; i < reqs.length; i++) {
      const r = reqs[i];
      const n = toks[i];
      const start = r.computed;
      if (decode[i] === 1) {
        decodeItems++;
        context += start + 1;
      } else {
        prefillTokens += n;
        pairs += n * start + (n * (n + 1)) / 2;
      }
      items[i] = {
        req: r.id,
        seed: r.seed,
        prompt: r.prompt,
        phase: decode[i] === 1 ? 'decode' : 'prefill',
        startPos: start,
        tokens: n,
        producesToken: start + n === r.length,
        blockTable: r.blocks[w.gpu],
        generated: wantsHistory ? r.outputs : null,
        prefixSeed: r.prefixSeed,
        prefixLength: r.prefixLength,
      };
      r.inFlight++;
    }
    const { coRunning, busyShares } = rooms.workers.busyOnGpu(w);
    w.step = step;
    w.state = 'busy';
    if (tracer.on) {
      const batch: BatchItem[] = new Array(reqs.length);
      for (let i = 0; i < reqs.length; i++) batch[i] = { req: reqs[i].id, tokens: toks[i] };
      tracer.emit({ t: rooms.clock.now, ev: 'step_begin', worker: w.id, step: id, batch });
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
