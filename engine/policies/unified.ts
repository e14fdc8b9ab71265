// `unified`: the co-located baseline of vLLM and SGLang (chunked prefill, SplitFuse). There is no split to
// choose: the engine runs prefill chunks and decode steps in one batch on the whole GPU. The policy only
// keeps the split it is given; the chunk size is the engine's (UNIFIED_CHUNK_TOKENS), exported here so that
// engine and reports agree on it.
import type { Decision, Policy } from '../policy-api.ts';
import { checkKnownOptions, numberOpt, type Options } from './options.ts';

/** Prompt tokens per prefill chunk in the unified baseline (vLLM's SplitFuse setting the design names). */
export const UNIFIED_CHUNK_TOKENS = 1024;

/** Options: `interval` (seconds, default 1). */
export function createUnified(options: Options = {}): Policy {
  checkKnownOptions(options, ['interval'], 'unified');
  return {
    name: 'unified',
    claimsMonotone: true, // constant
    interval: numberOpt(options, 'interval', 1, 1e-6),
    decide(): Decision {
      return { prefillOrder: 'fcfs' };
    },
  };
}
