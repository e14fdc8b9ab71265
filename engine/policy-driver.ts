// The policy driver: every `interval` of virtual time it shows the policy the system (engine/policy-api.ts's
// Observation) and applies its decision — a changed split starts a resize where the mode has one, a prefill
// order reorders the waiting queue.
import { checkSplit, InvalidDecisionError, type PolicyHandle } from './config.ts';
import type { Decision, Observation } from './policy-api.ts';
import type { Rooms } from './rooms.ts';
import { SimKind } from './sim/clock.ts';

export class PolicyDriver {
  /** Split decisions not applied: during another resize, or in a mode without a split to change. */
  ignoredSplitDecisions = 0;

  constructor(
    private readonly rooms: Rooms,
    readonly policy: PolicyHandle | null,
  ) {}

  /** Seconds between ticks. */
  interval(): number {
    const interval = this.policy?.interval ?? 1;
    if (!(interval > 0) || !Number.isFinite(interval)) throw new InvalidDecisionError(`policy '${this.policy?.name}' has interval ${interval}; it must be a finite number of seconds > 0`);
    return interval;
  }

  /** The first tick, when there is a policy. */
  start(): void {
    if (this.policy) this.rooms.clock.push(this.interval(), SimKind.PolicyTick, null);
  }

  onTick(): void {
    const { lifecycle, clock } = this.rooms;
    if (!lifecycle.hasWork) return; // the run is over: no more ticks
    if (clock.stalledAtTick()) return;
    this.apply(this.policy!.decide(this.observation()));
    clock.push(clock.now + this.interval(), SimKind.PolicyTick, null);
  }

  /** Applies a decision: a changed split starts a resize; prefillOrder reorders the waiting queue. */
  apply(decision: Decision): void {
    if (decision === null || typeof decision !== 'object') throw new InvalidDecisionError(`policy returned ${JSON.stringify(decision)}, not a decision object`);
    if (decision.prefillOrder !== undefined) {
      if (decision.prefillOrder !== 'fcfs' && decision.prefillOrder !== 'shortest-prompt-first') {
        throw new InvalidDecisionError(`prefillOrder must be 'fcfs' or 'shortest-prompt-first', got ${JSON.stringify(decision.prefillOrder)}`);
      }
      this.rooms.waiting.setOrder(decision.prefillOrder);
    }
    const split = decision.split;
    if (split === undefined) return;
    const { resize, config } = this.rooms;
    if (!config.mode.resizable) {
      if (split.prefill !== resize.split.prefill || split.decode !== resize.split.decode) this.ignoredSplitDecisions++;
      return;
    }
    checkSplit(split, config.mode, (m) => new InvalidDecisionError(`policy '${this.policy?.name ?? '?'}': ${m}`));
    const target = resize.target;
    if (split.prefill === target.prefill && split.decode === target.decode) return;
    if (resize.current) {
      this.ignoredSplitDecisions++; // one resize at a time; the next decision will ask again
      return;
    }
    resize.begin(split);
  }

  /** The policy's view of the system now. */
  observation(): Observation {
    const { workers, waiting, clock, kv, history, resize, config } = this.rooms;
    // The prefill queue in the order it will be served: requests part-way through a chunked prefill first,
    // then the waiting queue. promptLengths are full lengths (prompt + generated for a recompute).
    let queued = 0;
    let queuedTokens = 0;
    const promptLengths: number[] = [];
    let decoding = 0;
    let context = 0;
    for (const w of workers.live) {
      for (const r of w.prefilling) {
        if (r.state !== 'prefilling' || r.server !== w) continue;
        queued++;
        queuedTokens += r.length - r.computed;
        promptLengths.push(r.length);
      }
      for (const r of w.running) {
        if (r.state !== 'decoding' || r.server !== w) continue;
        decoding++;
        context += r.computed;
      }
      for (const r of w.fifo) {
        if (r.state !== 'handedOff' || r.server !== w) continue;
        decoding++;
        context += r.computed;
      }
    }
    for (const r of waiting.inOrder()) {
      queued++;
      queuedTokens += r.length;
      promptLengths.push(r.length);
    }
    return {
      time: clock.now,
      split: { ...resize.split },
      shareRule: config.mode.shareRule,
      prefillQueue: { requests: queued, tokens: queuedTokens, promptLengths },
      decodeBatch: { requests: decoding, contextTokens: context },
      kvUsage: kv.occupancy(),
      ...history.windowAt(clock.now),
      slo: { ...config.slo },
      model: config.model,
    };
  }
}
