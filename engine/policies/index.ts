// Loading policies and calling them safely: a built-in name or a user's module in, a PolicyHandle out whose
// decide() returns only decisions that follow the rules (validate.ts) and otherwise throws a PolicyFault
// naming the observation and what went wrong.
//
// Two ways to run a policy:
//   in-process — decide() is a direct call, ≈1 µs of overhead; a budget overrun is reported after the
//                call returns, and a hang hangs the caller. The default for trusted built-ins.
//   isolated   — decide() is a synchronous call into a worker thread (isolated.ts), ≈20 µs of overhead;
//                a hang is stopped at the budget. The default for user modules and untrusted built-ins
//                (semi-pd-z14). `check` demands it with { isolate: true }.
import { existsSync, statSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Decision, Observation, Policy } from '../policy-api.ts';
import { BUILTIN_POLICIES, BUILTIN_POLICY_NAMES, isBuiltinPolicyName } from './builtins.ts';
import { firstLine, PolicyFault, PolicyLoadError } from './errors.ts';
import { startIsolatedPolicy } from './isolated.ts';
import { importPolicyModule, policyFromModule, policyShapeProblem } from './module-shape.ts';
import { validateDecision, type Validated } from './validate.ts';
import type { PolicySpec } from './worker-protocol.ts';

export { PolicyFault, PolicyLoadError, describeObservation, summarizeObservation } from './errors.ts';
export type { FaultKind, ObservationSummary } from './errors.ts';
export { BUILTIN_POLICIES, BUILTIN_POLICY_NAMES, isBuiltinPolicyName } from './builtins.ts';
export type { BuiltinPolicyName } from './builtins.ts';
export { validateDecision, splitObeys } from './validate.ts';
export { PolicyOptionError } from './options.ts';
export { LLAMA3_8B_FIT } from './fitted-model.ts';
export type { FittedCoefficients } from './fitted-model.ts';

/** Wall-clock budget per decision when none is given. */
export const DEFAULT_TIME_BUDGET_MS = 1000;
/** How long a worker may take to start and load its policy (tsx compiles TypeScript on the way). */
export const DEFAULT_LOAD_TIMEOUT_MS = 15_000;

export interface LoadPolicyOptions {
  /** The policy's own options: a built-in's (docs/policy-api.md) or a user factory's argument. */
  policyOptions?: Record<string, unknown>;
  /**
   * true: run in a worker (hangs are caught); false: in-process (no hang detection); 'auto' (default):
   * in-process for trusted built-ins, a worker for user modules and semi-pd-z14.
   */
  isolate?: boolean | 'auto';
  /** Wall-clock milliseconds per decision (default 1000). */
  timeBudgetMs?: number;
  /** Milliseconds a worker may take to load the policy (default 15000). */
  loadTimeoutMs?: number;
  /**
   * The latency profile as plain data (engine/profile.ts's loadProfile). An isolated policy's
   * Observation.model is rebuilt from it in the worker with latencyModel(profile); without it, an isolated
   * policy that calls the model gets a fault saying so. In-process policies use Observation.model as given.
   */
  profile?: unknown;
  /** Directory that relative module paths are resolved against (default: the working directory). */
  cwd?: string;
}

export interface PolicyStats {
  decisions: number;
  /** Wall-clock milliseconds spent in decide(), overhead of isolation included. */
  totalMs: number;
  maxMs: number;
}

export interface PolicyHandle {
  /** The policy's own name (Policy.name). */
  readonly name: string;
  /** 'built-in' or the module's absolute path. */
  readonly source: string;
  readonly claimsMonotone: boolean;
  /** Seconds of virtual time between decisions. */
  readonly interval: number;
  readonly isolated: boolean;
  readonly timeBudgetMs: number;
  /** A decision that follows the rules, or a thrown PolicyFault. */
  decide(observation: Observation): Decision;
  stats(): PolicyStats;
  /** Stops the worker of an isolated policy; later decisions fault as 'unavailable'. */
  close(): Promise<void>;
}

const MODULE_EXTENSIONS = /\.(ts|mts|cts|js|mjs|cjs)$/;

function looksLikePath(nameOrPath: string): boolean {
  return nameOrPath.includes('/') || nameOrPath.includes('\\') || MODULE_EXTENSIONS.test(nameOrPath);
}

function positive(value: number | undefined, fallback: number, what: string, policy: string): number {
  if (value === undefined) return fallback;
  if (!(typeof value === 'number' && Number.isFinite(value) && value > 0)) {
    throw new PolicyLoadError(policy, `${what} must be a positive number of milliseconds, got ${String(value)}`);
  }
  return value;
}

/**
 * A policy by built-in name (static, semi-pd, semi-pd-z14, nexus, unified, disaggregated) or by path to a
 * TypeScript/JavaScript module whose default export is a Policy or a factory (options) => Policy.
 * Throws PolicyLoadError with a one-line message when it cannot.
 */
export async function loadPolicy(nameOrPath: string, options: LoadPolicyOptions = {}): Promise<PolicyHandle> {
  const policyOptions = options.policyOptions ?? {};
  const timeBudgetMs = positive(options.timeBudgetMs, DEFAULT_TIME_BUDGET_MS, 'timeBudgetMs', nameOrPath);
  const loadTimeoutMs = positive(options.loadTimeoutMs, DEFAULT_LOAD_TIMEOUT_MS, 'loadTimeoutMs', nameOrPath);

  let spec: PolicySpec;
  let source: string;
  let trusted: boolean;
  if (isBuiltinPolicyName(nameOrPath)) {
    spec = { kind: 'builtin', name: nameOrPath };
    source = 'built-in';
    trusted = BUILTIN_POLICIES[nameOrPath].trusted;
  } else if (looksLikePath(nameOrPath)) {
    const path = isAbsolute(nameOrPath) ? nameOrPath : resolve(options.cwd ?? process.cwd(), nameOrPath);
    if (!existsSync(path)) throw new PolicyLoadError(nameOrPath, `file not found (${path})`);
    if (!statSync(path).isFile()) throw new PolicyLoadError(nameOrPath, `not a file (${path})`);
    spec = { kind: 'module', url: pathToFileURL(path).href };
    source = path;
    trusted = false;
  } else {
    throw new PolicyLoadError(
      nameOrPath,
      `not a built-in policy (${BUILTIN_POLICY_NAMES.join(', ')}) and not a path to a module (e.g. ./my-policy.ts)`,
    );
  }

  const isolate = options.isolate === undefined || options.isolate === 'auto' ? !trusted : options.isolate;
  if (!isolate && spec.kind === 'builtin' && !trusted) {
    throw new PolicyLoadError(nameOrPath, 'this built-in is known to hang (it reproduces a bug) and runs only isolated');
  }
  if (isolate) {
    let isolated;
    try {
      isolated = await startIsolatedPolicy(spec, policyOptions, options.profile, loadTimeoutMs);
    } catch (err) {
      throw new PolicyLoadError(nameOrPath, firstLine(err));
    }
    return makeHandle({
      name: isolated.name,
      source,
      claimsMonotone: isolated.claimsMonotone,
      interval: isolated.interval,
      isolated: true,
      timeBudgetMs,
      run(observation) {
        const result = isolated.call(observation, timeBudgetMs);
        if (result.status === 'timeout') {
          return {
            ok: false,
            kind: 'timeout',
            detail: `no decision within its time budget of ${timeBudgetMs} ms (a hang?); its worker was terminated`,
          };
        }
        if (result.status === 'gone') return { ok: false, kind: 'unavailable', detail: `the policy is not running: ${result.reason}` };
        return result.reply;
      },
      close: () => isolated.terminate(),
    });
  }

  let policy: Policy;
  try {
    if (spec.kind === 'builtin') {
      policy = BUILTIN_POLICIES[spec.name as keyof typeof BUILTIN_POLICIES].create(policyOptions);
    } else {
      policy = policyFromModule(await importPolicyModule(spec.url), policyOptions);
    }
  } catch (err) {
    throw new PolicyLoadError(nameOrPath, firstLine(err));
  }
  return inProcessHandle(policy, source, timeBudgetMs);
}

/**
 * An in-process handle for a Policy object built in code (by `check`, or a test): the same validation and
 * faults as loadPolicy, no isolation. Throws PolicyLoadError when the object is not a Policy.
 */
export function handleForPolicy(policy: Policy, options: { timeBudgetMs?: number } = {}): PolicyHandle {
  const label = typeof (policy as { name?: unknown })?.name === 'string' ? policy.name : '(policy object)';
  const problem = policyShapeProblem(policy);
  if (problem) throw new PolicyLoadError(label, problem);
  return inProcessHandle(policy, 'in-memory', positive(options.timeBudgetMs, DEFAULT_TIME_BUDGET_MS, 'timeBudgetMs', label));
}

/**
 * Told of every in-process decide() as it begins and ends. An in-process call cannot be stopped from its own
 * thread; a run that must survive a hang (properties/monotonicity/guard.ts) runs on a worker thread and lets
 * its parent watch these calls, stopping the worker when one outlasts the budget.
 */
export interface DecideWatch {
  begin(observation: Observation): void;
  end(): void;
}
let decideWatch: DecideWatch | null = null;

export function watchInProcessDecisions(watch: DecideWatch | null): void {
  decideWatch = watch;
}

function inProcessHandle(policy: Policy, source: string, timeBudgetMs: number): PolicyHandle {
  let closed = false;
  return makeHandle({
    name: policy.name,
    source,
    claimsMonotone: policy.claimsMonotone ?? false,
    interval: policy.interval ?? 1,
    isolated: false,
    timeBudgetMs,
    run(observation) {
      if (closed) return { ok: false, kind: 'unavailable', detail: 'the policy is not running: it was closed' };
      const started = performance.now();
      let raw: unknown;
      decideWatch?.begin(observation);
      try {
        raw = policy.decide(observation);
      } catch (err) {
        return { ok: false, kind: 'threw', detail: `decide threw: ${firstLine(err)}` };
      } finally {
        decideWatch?.end();
      }
      const took = performance.now() - started;
      if (raw !== null && typeof raw === 'object' && typeof (raw as { then?: unknown }).then === 'function') {
        Promise.resolve(raw).catch(() => undefined); // reported as malformed below; no unhandled rejection
      }
      if (took > timeBudgetMs) {
        return {
          ok: false,
          kind: 'timeout',
          detail: `took ${took.toFixed(1)} ms, over its time budget of ${timeBudgetMs} ms (run it isolated to stop a hang)`,
        };
      }
      return validateDecision(raw, observation.shareRule);
    },
    close: async () => {
      closed = true;
    },
  });
}

interface HandleParts {
  name: string;
  source: string;
  claimsMonotone: boolean;
  interval: number;
  isolated: boolean;
  timeBudgetMs: number;
  /** Runs one decision and checks it. */
  run(observation: Observation): Validated;
  close(): Promise<void>;
}

function makeHandle(parts: HandleParts): PolicyHandle {
  const stats: PolicyStats = { decisions: 0, totalMs: 0, maxMs: 0 };
  return {
    name: parts.name,
    source: parts.source,
    claimsMonotone: parts.claimsMonotone,
    interval: parts.interval,
    isolated: parts.isolated,
    timeBudgetMs: parts.timeBudgetMs,
    decide(observation: Observation): Decision {
      const started = performance.now();
      const result = parts.run(observation);
      const took = performance.now() - started;
      stats.decisions += 1;
      stats.totalMs += took;
      stats.maxMs = Math.max(stats.maxMs, took);
      if (!result.ok) throw new PolicyFault(parts.name, result.kind, result.detail, observation);
      // Re-checked here too for isolated replies: the main thread trusts no worker.
      const checked = parts.isolated ? validateDecision(result.decision, observation.shareRule) : result;
      if (!checked.ok) throw new PolicyFault(parts.name, checked.kind, checked.detail, observation);
      return checked.decision;
    },
    stats: () => ({ ...stats }),
    close: () => parts.close(),
  };
}
