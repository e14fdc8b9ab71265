// What the cost model would need for the papers' orderings: the shipped cost model with one pricing term
// replaced, as an executor passed to the engine (EngineOptions.executor), or the profile with one curve
// changed. These are diagnostics that locate a difference, not calibrations: the headline tables use the
// shipped executor and profile unchanged.
//
//   caps   — MPS shares are caps, not slices: two co-running semi-PD workers keep their own shares even
//            when they sum past 100 (blocks of both processes co-reside on the SMs; only the profile's
//            memory-bandwidth contention slows them). The engine instead scales both down by the sum.
//   serial — a unified (mixed) step's attention runs after its dense layers instead of hiding under one
//            roofline max: max(dense compute of all tokens, weight read) + prefill attention + decode KV read.
//   sat    — prefill, like decode, gains nothing past half the GPU (shareCurve.prefill.saturation 0.5): the
//            bound most favourable to spatial sharing; semi-PD's own prefill fit (close to 1/x) says otherwise.
//   floor  — a policy what-if: Nexus with a floor under its decode share (nexusWithDecodeFloor).
import { CostModelExecutor } from '../../engine/executors/cost-model.ts';
import type { ResizeMechanism, StepExecutor, StepResult, StepSpec } from '../../engine/executors/step-executor.ts';
import { BUILTIN_POLICIES, handleForPolicy } from '../../engine/policies/index.ts';
import type { Observation } from '../../engine/policy-api.ts';
import { calibrate, type Calibration, type Profile } from '../../engine/profile.ts';
import { NEXUS, type System } from './systems.ts';

export interface WhatIf {
  caps: boolean;
  serial: boolean;
}

export class WhatIfExecutor implements StepExecutor {
  readonly name: string;
  private readonly base: CostModelExecutor;
  private readonly c: Calibration;

  constructor(
    readonly profile: Profile,
    readonly whatIf: WhatIf,
  ) {
    this.base = new CostModelExecutor(profile);
    this.c = calibrate(profile);
    this.name = `cost-model (what-if: ${[whatIf.caps ? 'caps' : '', whatIf.serial ? 'serial' : ''].filter(Boolean).join(', ') || 'none'})`;
  }

  stepTime(step: StepSpec): number {
    const c = this.c;
    const p = this.profile;
    if (step.role === 'unified') {
      if (!this.whatIf.serial) return this.base.stepTime(step);
      const dense = Math.max((step.prefillTokens + step.decodeItems) * c.secondsPerToken, c.weightSeconds);
      const decodeAttention = step.contextTokens * Math.max(c.kvSecondsPerToken, c.secondsPerAttentionPair);
      return p.stepOverhead.unified + dense + step.attentionPairs * c.secondsPerAttentionPair + decodeAttention;
    }
    // caps: the worker's own share, not the share scaled down by an oversubscribed sum.
    return this.base.stepTime(step, this.whatIf.caps ? step.share : step.effectiveShare);
  }

  execute(step: StepSpec): StepResult {
    const result = this.base.execute(step);
    return { duration: this.stepTime(step), tokens: result.tokens };
  }

  transferTime(tokens: number): number {
    return this.base.transferTime(tokens);
  }

  workerInitTime(mechanism: ResizeMechanism): number {
    return this.base.workerInitTime(mechanism);
  }
}

/** The profile with prefill's share curve flat above `saturation` (the `sat` what-if). */
export function saturatedPrefill(profile: Profile, saturation: number): Profile {
  const curve = profile.shareCurve;
  return { ...profile, name: `${profile.name}+prefill-saturation-${saturation}`, shareCurve: { ...curve, prefill: { ...curve.prefill, saturation } } };
}

/**
 * Nexus with its decode share floored (the `floor` what-if, a policy change, not a cost-model one): with an
 * empty decode batch the built-in policy's constraint holds at every split, so it walks to prefill 99 /
 * decode 1, and the next decode batch starts at 1 % of the SMs. A floor shows what that costs.
 */
export function nexusWithDecodeFloor(floor: number): System {
  return {
    ...NEXUS,
    id: `Nexus, decode ≥ ${floor} %`,
    policy: () => {
      const inner = BUILTIN_POLICIES.nexus.create({});
      return handleForPolicy({
        ...inner,
        decide(observation: Observation) {
          const d = inner.decide(observation);
          if (d.split && d.split.decode < floor) d.split = { prefill: 100 - floor, decode: floor };
          return d;
        },
      });
    },
  };
}
