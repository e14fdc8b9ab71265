// SLO-policy monotonicity (DESIGN.md, "SLO-policy monotonicity"), as a library for `pdspec check`, reports
// and vitest. docs/monotonicity.md states each property, how its cases are generated and shrunk, and what
// was found for the built-in policies and the shipped profiles.
//
//   M1  checkLatencyModel(model) / checkProfile(name) / checkShippedProfiles()
//   M2  checkPolicyPressure(subjectOrHandle) / checkPolicy(nameOrPath)
//   M3  checkSystem(nameOrPathOrSubject)
//
// Every check is deterministic from its seed and returns a CheckResult: holds, runs, seed, the clauses, the
// first failure's shrunk counterexample with its fast-check path, and `replay`, one command that reproduces
// it exactly (replayOptions are the same options as data: pass them back to the same function).
export { formatResult, type CheckResult, type ClauseResult, type Counterexample, type PropertyId, type ReplayOptions } from './result.ts';
export { checkLatencyModel, checkProfile, checkShippedProfiles, DEFAULT_SEED, M1_CLAUSES, type LatencyCheckOptions, type M1Clause } from './latency.ts';
export { checkPolicy, checkPolicyPressure, M2_CLAUSES, type PressureCheckOptions } from './pressure.ts';
export { DECODE_COMPONENTS, DEFAULT_DECODE_COMPONENTS, PREFILL_COMPONENTS, type Phase, type PressureComponent, type ShareRange, type ShareRule } from './observation.ts';
export { closeSubject, policySubject, subjectOf, subjectOfHandle, type PolicySubject, type SubjectOptions } from './subject.ts';
export { checkSystem, M3_CLAUSES, withMoreSms, withSms, type M3Clause, type RunConfig, type SystemCheckOptions } from './system.ts';
