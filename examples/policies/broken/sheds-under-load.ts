// Broken on purpose — breaks property M2 only under real load. It raises the prefill share with the tokens
// waiting for prefill, as a monotone policy should, until more than 200,000 tokens are waiting; past that it
// "sheds prefill to protect decode" and drops to 30. Observations of a dozen short prompts never reach the
// threshold; the engine's own queues do (past capacity the shipped workloads queue millions of tokens), and
// so does M2, whose observations reach twice what the engine reaches (properties/monotonicity/load-envelope.json).
import type { Decision, Observation, Policy } from 'pdspec/policy-api';

const SHED_ABOVE_TOKENS = 200_000;

const policy: Policy = {
  name: 'broken-sheds-under-load',
  claimsMonotone: true, // the claim that property M2 refutes
  decide(obs: Observation): Decision {
    const waiting = obs.prefillQueue.tokens;
    const prefill = waiting > SHED_ABOVE_TOKENS ? 30 : Math.min(90, 40 + Math.floor(waiting / 4096));
    return { split: { prefill, decode: 100 - prefill } };
  },
};

export default policy;
