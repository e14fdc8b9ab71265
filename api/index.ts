// `pdspec` as a library: what the command line is built from, for another project's tests and tools.
//
//   import { createChecker, conform, explore, runCampaign, checkPolicy, loadPolicy } from 'pdspec';
//
// - the trace checker as a streaming API (createChecker(header) → check(event) → end()) and conform(stream);
// - the reference machines (XState v5 definitions, for Stately's inspector and visualiser) and their composition;
// - the explicit-state explorer; the lockstep driver and the fast-check arbitraries of workloads, engine setups
//   and environment commands, so that a user's own test suite can drive its engine with them;
// - the SLO-policy monotonicity checks (M1, M2, M3); policy loading (built-ins, modules, `exec:` commands);
// - the executable engine and its latency profiles.
import { TraceChecker, checkFile, checkText, formatVerdict, type CheckOptions, type Finding, type Verdict } from '../spec/checker.ts';
import { readHeader, type TraceEvent, type TraceHeader } from '../spec/trace-format.ts';

// --- the trace checker ---------------------------------------------------------------------------------

export { TraceChecker, checkFile, checkText, formatVerdict };
export type { CheckOptions, Finding, Verdict };
export {
  EVENTS,
  EVENT_NAMES,
  FormatError,
  MODE_DEFAULTS,
  TRACE_FORMAT,
  TRACE_VERSIONS,
  defaultWorkers,
  eventsOfVersion,
  makeHeader,
  readEvent,
  readHeader,
  traceSchema,
} from '../spec/trace-format.ts';
export type { BatchItem, EventName, EventOf, TraceEvent, TraceHeader, TraceVersion, WorkerDecl } from '../spec/trace-format.ts';

/** What one event did to a streaming check: still conforming, or the verdict that ends it. */
export type StepVerdict = { verdict: 'conforms'; line: number } | Extract<Verdict, { verdict: 'violation' | 'bad-input' }>;

export interface Checker {
  /** Feeds one event (an object or its JSON text); the verdict so far. After a violation every call returns it. */
  check(event: TraceEvent | Record<string, unknown> | string): StepVerdict;
  /** Ends the trace: the at-rest rules (with `quiescent`) are judged, and the final verdict is returned. */
  end(): Verdict;
  /** Lines fed so far, the header included. */
  readonly lines: number;
}

function badInput(err: unknown): Extract<Verdict, { verdict: 'bad-input' }> | null {
  // The checker's bad-input error carries the line it is about; anything else is not the trace's fault.
  if (err instanceof Error && typeof (err as { line?: unknown }).line === 'number') return { verdict: 'bad-input', line: (err as Error & { line: number }).line, message: err.message };
  return null;
}

/**
 * A streaming trace checker: memory stays flat whatever the trace's length. `header` is the trace's first
 * line (an object, or its JSON text); a header that is not one throws a FormatError.
 */
export function createChecker(header: TraceHeader | Record<string, unknown> | string, options: CheckOptions = {}): Checker {
  const checker = new TraceChecker(options);
  const text = typeof header === 'string' ? header : JSON.stringify(header);
  readHeader(JSON.parse(text)); // a bad header is the caller's error, thrown here with its reason
  checker.feed(text);
  let stopped: Extract<Verdict, { verdict: 'violation' | 'bad-input' }> | null = null;
  return {
    get lines() {
      return checker.lines;
    },
    check(event) {
      if (stopped) return stopped;
      try {
        checker.feed(typeof event === 'string' ? event : JSON.stringify(event));
      } catch (err) {
        const bad = badInput(err);
        if (!bad) throw err;
        return (stopped = bad);
      }
      if (checker.done) {
        const v = checker.end();
        if (v.verdict !== 'conforms') return (stopped = v);
      }
      return { verdict: 'conforms', line: checker.lines };
    },
    end() {
      if (stopped) return stopped;
      try {
        return checker.end();
      } catch (err) {
        const bad = badInput(err);
        if (!bad) throw err;
        return bad;
      }
    },
  };
}

/**
 * Checks a whole trace from a stream of text (a file's read stream, a child process's stdout, an async
 * generator of lines or chunks), a path, or the trace's text: the verdict at the first violation, without
 * reading further.
 */
export async function conform(source: string | AsyncIterable<string | Uint8Array> | Iterable<string>, options: CheckOptions & { path?: boolean } = {}): Promise<Verdict> {
  if (typeof source === 'string') return options.path ? checkFile(source, options) : checkText(source, options);
  const checker = new TraceChecker(options);
  const decoder = new TextDecoder();
  let carry = '';
  try {
    for await (const chunk of source as AsyncIterable<string | Uint8Array>) {
      const text = carry + (typeof chunk === 'string' ? chunk : decoder.decode(chunk, { stream: true }));
      const lines = text.split('\n');
      carry = lines.pop()!;
      for (const line of lines) {
        checker.feed(line);
        if (checker.done) return checker.end();
      }
    }
    carry += decoder.decode();
    if (carry !== '') checker.feed(carry);
    return checker.end();
  } catch (err) {
    const bad = badInput(err);
    if (!bad) throw err;
    return bad;
  }
}

// --- the reference machines ----------------------------------------------------------------------------

export { requestMachine } from '../spec/request.ts';
export { allocatorMachine, blockMachine, poolMachine } from '../spec/kv.ts';
export { partitionMachine, workerMachine } from '../spec/partition.ts';
export { slotMachine } from '../spec/slot.ts';
export { bufferMachine, taskMachine } from '../spec/cad.ts';
export { MACHINES, System } from '../spec/system.ts';
export type { MachineName, SystemOptions } from '../spec/system.ts';
export { RULES, RULE_NAMES } from '../spec/invariants.ts';
export type { InvariantName } from '../spec/invariants.ts';

// --- the explorer ----------------------------------------------------------------------------------------

export { explore } from '../properties/explore/explorer.ts';
export type { ExploreResult, ExploreHooks, Finding as ExploreFinding } from '../properties/explore/explorer.ts';
export { DEFAULT_CONFIG, SHARING_CONFIG, V3_CONFIG } from '../properties/explore/config.ts';
export type { ExploreConfig } from '../properties/explore/config.ts';
export { VARIANTS, defaultConfigFor } from '../properties/explore/variants.ts';

// --- the lockstep driver and the workload arbitraries -----------------------------------------------------

export { asFastCheckCommand, disagreement, engineOptions, finish, LockstepFailure, start, sync } from '../properties/lockstep.ts';
export type { Judge, Run } from '../properties/lockstep.ts';
export { lockstepProperty, runCampaign } from '../properties/campaign.ts';
export type { CampaignOptions, CampaignResult } from '../properties/campaign.ts';
export {
  abortCommand,
  arrivalGap,
  commands,
  lengths,
  outputLength,
  promptLength,
  resizeCommand,
  runCommand,
  scenario,
  setupFor,
  setupShape,
  workload,
} from '../properties/scenario.ts';
export type { Command as EnvironmentCommand, Scenario, SetupShape } from '../properties/scenario.ts';

// --- the monotonicity checks ------------------------------------------------------------------------------

export {
  checkLatencyModel,
  checkPolicy,
  checkPolicyPressure,
  checkProfile,
  checkSystem,
  closeSubject,
  formatResult,
  M1_CLAUSES,
  M2_CLAUSES,
  M3_CLAUSES,
  policySubject,
  subjectOf,
  subjectOfHandle,
} from '../properties/monotonicity/index.ts';
export type { CheckResult as MonotonicityResult, PolicySubject } from '../properties/monotonicity/index.ts';

// --- policies, the engine, profiles -------------------------------------------------------------------

export {
  BUILTIN_POLICY_NAMES,
  EXEC_PREFIX,
  EXEC_PROTOCOL,
  EXEC_PROTOCOL_VERSION,
  handleForPolicy,
  loadIsolatedPolicy,
  loadPolicy,
  loadPolicyInstances,
  PolicyFault,
  PolicyLoadError,
  validateDecision,
} from '../engine/policies/index.ts';
export type { LoadPolicyOptions, PolicyHandle, PolicyInstances } from '../engine/policies/index.ts';
export type { Decision, LatencyModel, Observation, Policy, PolicyModule, Split } from '../engine/policy-api.ts';
export { Engine, MODES, simulate } from '../engine/engine.ts';
export type { EngineOptions, Mode, RunResult } from '../engine/engine.ts';
export { MemorySink } from '../engine/trace-sink.ts';
export { DEFAULT_PROFILE, latencyModel, loadProfile, profileNames } from '../engine/profile.ts';
export type { Profile } from '../engine/profile.ts';
