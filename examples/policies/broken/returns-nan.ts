// Broken on purpose — fault 'non-finite'. Meant to grow the prefill share with the square root of the TTFT
// deficit, but subtracts the wrong way round: whenever TTFT misses its SLO the square root is of a negative
// number, and the share is NaN.
import type { Decision, Observation, Policy } from 'pdspec/policy-api';

const policy: Policy = {
  name: 'broken-returns-nan',
  decide(obs: Observation): Decision {
    if (!(obs.ttft.count > 0)) return {};
    const deficit = Math.sqrt(obs.slo.ttft - obs.ttft.p90); // should be observed − SLO, clamped at 0
    const prefill = Math.round(Math.min(99, obs.split.prefill + 10 * deficit));
    return { split: { prefill, decode: 100 - prefill } };
  },
};

export default policy;
