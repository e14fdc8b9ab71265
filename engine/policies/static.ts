// `static`: a fixed split. The baseline every dynamic policy is compared against.
import type { Decision, Observation, Policy } from '../policy-api.ts';
import { checkKnownOptions, numberOpt, splitOpt, type Options } from './options.ts';

/**
 * Options: `split` ("60:40" or { prefill, decode }; default: keep the split the engine starts with),
 * `interval` (seconds between decisions, default 1).
 */
export function createStatic(options: Options = {}): Policy {
  checkKnownOptions(options, ['split', 'interval'], 'static');
  const split = splitOpt(options, 'split');
  return {
    name: 'static',
    claimsMonotone: true, // the split never changes, so no pressure can lower a share
    interval: numberOpt(options, 'interval', 1, 1e-6),
    decide(obs: Observation): Decision {
      if (!split || (split.prefill === obs.split.prefill && split.decode === obs.split.decode)) return {};
      return { split: { ...split } };
    },
  };
}
