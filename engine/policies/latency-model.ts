// Rebuilding Observation.model where it cannot be passed: a LatencyModel holds functions, which do not
// cross a thread boundary, so an isolated policy gets the profile (plain JSON, engine/profile.ts's
// loadProfile) and rebuilds the model inside its worker with the engine's own latencyModel(profile).
import type { LatencyModel } from '../policy-api.ts';
import { latencyModel, validateProfile } from '../profile.ts';
import { firstLine } from './errors.ts';

const NO_PROFILE =
  'Observation.model is not available to an isolated policy without a latency profile: pass loadPolicy(..., { profile })';

/** A model that explains itself when used: for isolated policies loaded without a profile. */
export function missingModel(): LatencyModel {
  const fail = (): never => {
    throw new Error(NO_PROFILE);
  };
  return { prefillTime: fail, decodeTime: fail };
}

/** The LatencyModel of a profile, or a one-line Error saying why the profile is unusable. */
export function rebuildLatencyModel(profile: unknown): LatencyModel {
  if (profile === undefined) return missingModel();
  try {
    return latencyModel(validateProfile(profile, 'the latency profile'));
  } catch (err) {
    throw new Error(`cannot rebuild the latency model: ${firstLine(err)}`);
  }
}
