// What the policy tests expect a policy to throw: the PolicyFault of a decision, the PolicyLoadError of a load.
import type { Observation } from '../engine/policy-api.ts';
import { loadPolicy, PolicyFault, PolicyLoadError, type PolicyHandle } from '../engine/policies/index.ts';

/** The PolicyFault a decision throws (fails the test if it does not throw one). */
export function faultOf(handle: PolicyHandle, obs: Observation): PolicyFault {
  try {
    handle.decide(obs);
  } catch (err) {
    if (err instanceof PolicyFault) return err;
    throw err;
  }
  throw new Error(`expected a PolicyFault from '${handle.name}', got a decision`);
}

/** The PolicyLoadError loading `nameOrPath` throws (fails the test if it loads). */
export async function loadError(nameOrPath: string, options: Parameters<typeof loadPolicy>[1] = {}): Promise<PolicyLoadError> {
  try {
    const handle = await loadPolicy(nameOrPath, options);
    await handle.close();
  } catch (err) {
    if (err instanceof PolicyLoadError) return err;
    throw err;
  }
  throw new Error(`expected a PolicyLoadError for '${nameOrPath}'`);
}
