// The cost-model executor: step times in virtual seconds from a profile's latency model (engine/profile.ts),
// and deterministic pseudo-tokens that depend only on the request's seed and the token's position, so that
// the output of every request is the same whatever the schedule, batch, split, preemption or resize.
import { hash2 } from '../random.ts';
import type { StepWork } from '../kernel-model.ts';
import { calibrate, decodeSlowdown, decodeWork, kernelStepSeconds, mixedWork, prefillSlowdown, prefillWork, type Calibration, type Profile } from '../profile.ts';
import type { ResizeMechanism, StepExecutor, StepResult, StepSpec } from './step-executor.ts';

/** The pseudo-token at sequence position `pos` (the position the token will occupy) of a request. */
export function pseudoToken(seed: number, pos: number, vocabSize: number): number {
  return hash2(seed, pos) % vocabSize;
}

/** What a step computes, in the kernel form's quantities: prefix pairs and logit tokens come from the items. */
export function stepWork(step: StepSpec): StepWork {
  let prefixPairs = 0;
  let prefillLogits = 0;
  for (const it of step.items) {
    if (it.phase !== 'prefill') continue;
    prefixPairs += it.tokens * it.startPos;
    if (it.producesToken) prefillLogits++;
  }
  // A step described by its totals alone (no items): one prompt, finishing in this step.
  if (step.items.length === 0 && step.prefillTokens > 0) prefillLogits = 1;
  return {
    prefillTokens: step.prefillTokens,
    ownPairs: Math.max(0, step.attentionPairs - prefixPairs),
    prefixPairs,
    decodeTokens: step.decodeItems,
    contextTokens: step.contextTokens,
    logitTokens: prefillLogits + step.decodeItems,
  };
}

export class CostModelExecutor implements StepExecutor {
  readonly name = 'cost-model';
  private readonly c: Calibration;
  private readonly vocab: number;

  constructor(readonly profile: Profile) {
    this.c = calibrate(profile);
    this.vocab = profile.model.vocabSize;
  }

  /**
   * Seconds of a step as the simulator prices it (the same formulas latencyModel uses, plus contention), at
   * the step's effective share unless another is given (a what-if pricing, bench/paper/whatif.ts).
   */
  stepTime(step: StepSpec, shareOverride?: number): number {
    const c = this.c;
    const p = this.profile;
    const share = shareOverride ?? step.effectiveShare;
    const s = share / 100;
    if (p.kernels) {
      // A given share replaces both the worker's own share and its effective one (a what-if pricing).
      const own = (shareOverride ?? step.share) / 100;
      return kernelStepSeconds(p, c, stepWork(step), { role: step.role, share: own, effectiveShare: s, coRunning: step.coRunning });
    }
    let time: number;
    if (step.role === 'unified') {
      time = p.stepOverhead.unified + mixedWork(c, step.prefillTokens, step.attentionPairs, step.decodeItems, step.contextTokens);
    } else if (step.role === 'prefill') {
      time = p.stepOverhead.prefill + prefillSlowdown(c, s) * prefillWork(c, step.prefillTokens, step.attentionPairs);
      if (step.coRunning) time *= 1 + p.contention.prefill;
    } else {
      time = p.stepOverhead.decode + decodeSlowdown(c, s) * decodeWork(c, step.decodeItems, step.contextTokens);
      if (step.coRunning) time *= 1 + p.contention.decode;
    }
    return time;
  }

  execute(step: StepSpec): StepResult {
    const items = step.items;
    const tokens = new Int32Array(items.length);
    let nextAll: (Int32Array | null)[] | null = null;
    for (let i = 0; i < items.length; i++) {
      const it = items[i];
      tokens[i] = it.producesToken ? pseudoToken(it.seed, it.startPos + it.tokens - it.draft, this.vocab) : -1;
      if (it.draft > 0) {
        // A verify: the token after each of its positions is the pseudo-token of the next position, whatever
        // the drafts (the cost model's "model" looks at positions only).
        nextAll ??= new Array<Int32Array | null>(items.length).fill(null);
        const all = new Int32Array(it.tokens);
        for (let j = 0; j < it.tokens; j++) all[j] = pseudoToken(it.seed, it.startPos + j + 1, this.vocab);
        nextAll[i] = all;
      }
    }
    return nextAll ? { duration: this.stepTime(step), tokens, nextAll } : { duration: this.stepTime(step), tokens };
  }

  transferTime(tokens: number): number {
    return this.profile.transfer.latency + (tokens * this.c.kvBytesPerToken) / this.profile.transfer.bytesPerSecond;
  }

  workerInitTime(mechanism: ResizeMechanism): number {
    return mechanism === 'context-switch' ? this.profile.resize.contextSwitchTime : this.profile.resize.workerInitTime;
  }
}
