// The cost-model executor: step times in virtual seconds from a profile's latency model (engine/profile.ts),
// and deterministic pseudo-tokens that depend only on the request's seed and the token's position, so that
// the output of every request is the same whatever the schedule, batch, split, preemption or resize.
import { hash2 } from '../random.ts';
import { calibrate, decodeSlowdown, decodeWork, mixedWork, prefillSlowdown, prefillWork, type Calibration, type Profile } from '../profile.ts';
import type { ResizeMechanism, StepExecutor, StepResult, StepSpec } from './step-executor.ts';

/** The pseudo-token at sequence position `pos` (the position the token will occupy) of a request. */
export function pseudoToken(seed: number, pos: number, vocabSize: number): number {
  return hash2(seed, pos) % vocabSize;
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
  stepTime(step: StepSpec, share = step.effectiveShare): number {
    const c = this.c;
    const p = this.profile;
    const s = share / 100;
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
