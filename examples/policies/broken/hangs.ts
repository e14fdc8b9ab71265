// Broken on purpose — fault 'timeout' (an infinite loop; caught only when the policy runs isolated, which
// is the default for user modules). A binary search for the smallest prefill share whose predicted prefill
// time meets the TTFT SLO, with the classic bug: `lo = mid` instead of `lo = mid + 1`. Once hi = lo + 1 and
// lo does not meet the SLO, mid = lo forever.
import type { Decision, Observation, Policy } from 'pdspec/policy-api';

const policy: Policy = {
  name: 'broken-hangs',
  decide(obs: Observation): Decision {
    const meets = (share: number) => obs.model.prefillTime(share, obs.prefillQueue.tokens) <= obs.slo.ttft;
    let lo = 1;
    let hi = 99;
    while (lo < hi) {
      const mid = Math.floor((lo + hi) / 2);
      if (meets(mid)) hi = mid;
      else lo = mid; // bug: must be mid + 1
    }
    return { split: { prefill: lo, decode: 100 - lo } };
  },
};

export default policy;
