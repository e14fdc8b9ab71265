// Broken on purpose — breaks property M2 (it claims monotonicity and is not monotone). Every decision it
// returns is valid, so no fault is raised per decision; the monotonicity check finds it by comparing
// observations: with more than 8 requests waiting it "sheds prefill to protect decode", so a longer prefill
// queue — more prefill pressure — lowers the prefill share (e.g. 8 waiting → 70, 9 waiting → 30).
import type { Decision, Observation, Policy } from 'pdspec/policy-api';

const PANIC_QUEUE_LENGTH = 8;

const policy: Policy = {
  name: 'broken-non-monotone',
  claimsMonotone: true, // the claim that property M2 refutes
  decide(obs: Observation): Decision {
    const waiting = obs.prefillQueue.requests;
    const prefill = waiting > PANIC_QUEUE_LENGTH ? 30 : Math.min(90, 30 + 5 * waiting);
    return { split: { prefill, decode: 100 - prefill } };
  },
};

export default policy;
