// The built-in policies by name. `trusted` built-ins are known to terminate on every observation and run
// in-process by default (the fast path for long simulations); the others run in a worker, where a hang is
// caught (see index.ts).
import type { Policy } from '../policy-api.ts';
import { createDisaggregated } from './disaggregated.ts';
import { createNexus } from './nexus.ts';
import type { Options } from './options.ts';
import { createSemiPdZ14 } from './semi-pd-z14.ts';
import { createSemiPd } from './semi-pd.ts';
import { createStatic } from './static.ts';
import { createUnified } from './unified.ts';

export interface BuiltinPolicy {
  create(options: Options): Policy;
  trusted: boolean;
  summary: string;
}

export const BUILTIN_POLICIES = {
  static: { create: createStatic, trusted: true, summary: 'a fixed split (option split, e.g. "60:40")' },
  'semi-pd': {
    create: (options: Options) => createSemiPd(options),
    trusted: true,
    summary: "semi-PD's SLO-aware dynamic partitioning (Algorithm 1), model refit online, Z14 fixed",
  },
  'semi-pd-z14': {
    create: createSemiPdZ14,
    trusted: false,
    summary: 'semi-PD Algorithm 1 with bug-zoo Z14 (hangs when the SLO is unreachable); for the zoo self-test',
  },
  nexus: { create: createNexus, trusted: true, summary: "Nexus's greedy cost-model split search with hysteresis, shares sum to 100" },
  unified: { create: createUnified, trusted: true, summary: 'no split: co-located chunked prefill (chunk 1024), the vLLM/SGLang baseline' },
  disaggregated: {
    create: createDisaggregated,
    trusted: true,
    summary: 'full disaggregation 1P1D: prefill 100 on GPU 0, decode 100 on GPU 1',
  },
} as const satisfies Record<string, BuiltinPolicy>;

export type BuiltinPolicyName = keyof typeof BUILTIN_POLICIES;

export const BUILTIN_POLICY_NAMES = Object.keys(BUILTIN_POLICIES) as BuiltinPolicyName[];

export function isBuiltinPolicyName(name: string): name is BuiltinPolicyName {
  return Object.hasOwn(BUILTIN_POLICIES, name);
}
