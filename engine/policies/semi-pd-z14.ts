// `semi-pd-z14`: semi-PD's Algorithm 1 with bug-zoo Z14 put back, for the zoo's self-test. The SLO loop
// raises the prefill share until the estimate meets the SLO, but its step counter is never incremented, so
// when no share meets the SLO (x ≤ λ: the prefill queue cannot drain at any share) the loop never ends.
// Only ever run it isolated (loadPolicy does so by default): the hang is real.
import type { Policy } from '../policy-api.ts';
import type { Options } from './options.ts';
import { createSemiPd, type ShareSearch } from './semi-pd.ts';

/** The defective search: the bound is checked against a counter that never moves. */
export const raiseUntilZ14: ShareSearch = (start, limit, step, meets) => {
  const maxSteps = Math.ceil((Math.max(limit, start) - start) / step) + 1;
  let share = start;
  let steps = 0;
  while (steps < maxSteps) {
    share = Math.min(limit, share + step);
    if (meets(share)) return share;
    // Z14: `steps++` is missing here.
  }
  return limit;
};

export function createSemiPdZ14(options: Options = {}): Policy {
  return createSemiPd(options, raiseUntilZ14, 'semi-pd-z14');
}
