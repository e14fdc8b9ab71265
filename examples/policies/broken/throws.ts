// Broken on purpose — fault 'threw'. A lookup table calibrated on short prompts only: any mean prompt
// longer than 512 tokens has no row, and decide throws instead of falling back to something sensible.
import type { Decision, Observation, Policy } from 'pdspec/policy-api';

const PREFILL_SHARE_BY_PROMPT_BUCKET = new Map([
  [128, 30],
  [256, 40],
  [512, 50],
]);

const policy: Policy = {
  name: 'broken-throws',
  decide(obs: Observation): Decision {
    const lengths = obs.prefillQueue.promptLengths;
    if (lengths.length === 0) return {};
    const mean = lengths.reduce((a, b) => a + b, 0) / lengths.length;
    const bucket = 2 ** Math.ceil(Math.log2(Math.max(128, mean)));
    const prefill = PREFILL_SHARE_BY_PROMPT_BUCKET.get(bucket);
    if (prefill === undefined) throw new Error(`calibration table has no row for ${bucket}-token prompts`);
    return { split: { prefill, decode: 100 - prefill } };
  },
};

export default policy;
