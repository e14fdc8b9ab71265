// `disaggregated`: DistServe-style full disaggregation, one prefill GPU and one decode GPU (1P1D). Each
// phase owns its whole GPU, so the split is fixed at prefill 100 (GPU 0) and decode 100 (GPU 1); the shares
// refer to different GPUs, which the `oversubscribe` rule (each share in 1..100) allows and `exact` does not.
import type { Decision, Observation, Policy } from '../policy-api.ts';
import { checkKnownOptions, numberOpt, type Options } from './options.ts';

/** Where each phase runs under this policy (GPU indices). */
export const DISAGGREGATED_PLACEMENT = Object.freeze({ prefillGpu: 0, decodeGpu: 1 });
export const DISAGGREGATED_SPLIT = Object.freeze({ prefill: 100, decode: 100 });

/** Options: `interval` (seconds, default 1). */
export function createDisaggregated(options: Options = {}): Policy {
  checkKnownOptions(options, ['interval'], 'disaggregated');
  return {
    name: 'disaggregated',
    claimsMonotone: true, // constant
    interval: numberOpt(options, 'interval', 1, 1e-6),
    decide(obs: Observation): Decision {
      const { prefill, decode } = DISAGGREGATED_SPLIT;
      if (obs.split.prefill === prefill && obs.split.decode === decode) return { prefillOrder: 'fcfs' };
      return { split: { prefill, decode }, prefillOrder: 'fcfs' };
    },
  };
}
