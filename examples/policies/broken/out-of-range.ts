// Broken on purpose — fault 'out-of-range'. Adds ten points of prefill per queued request and forgets to
// clamp: with a few requests waiting the share passes 100.
import type { Decision, Observation, Policy } from 'pdspec/policy-api';

const policy: Policy = {
  name: 'broken-out-of-range',
  decide(obs: Observation): Decision {
    const prefill = obs.split.prefill + 10 * obs.prefillQueue.requests; // no Math.min(100, ...)
    return { split: { prefill, decode: obs.split.decode } };
  },
};

export default policy;
