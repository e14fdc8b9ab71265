// Loading policies and calling them safely: a built-in name or a user's module in, a PolicyHandle out whose
// decide() returns only decisions that follow the rules (validate.ts) and otherwise throws a PolicyFault
// naming the observation and what went wrong.
//
// Two ways to run a policy:
//   in-process — decide() is a direct call, ≈1 µs of overhead; a budget overrun is reported after the
//                call returns, and a hang hangs the caller. The default for trusted built-ins.
//   isolated   — decide() is a synchronous call into a worker thread (isolated.ts), ≈20 µs of overhead;
//                a hang is stopped at the budget. The default for user modules and untrusted built-ins
//                (semi-pd-z14). `check` demands it with { isolate: true }. A command (`exec:…`, any
//                language, exec.ts) always runs this way, in its own process behind the worker.
import { existsSync, statSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Decision, Observation, Policy } from '../policy-api.ts';
import { BUILTIN_POLICIES, BUILTIN_POLICY_NAMES, isBuiltinPolicyName } from './builtins.ts';
import { firstLine, PolicyFault, PolicyLoadError, type FaultKind } from './errors.ts';
import { EXEC_PREFIX } from './exec.ts';
import { startIsolatedPolicy, type IsolatedPolicy } from './isolated.ts';
import { importPolicyModule } from './module-import.ts';
import { policyFromModule, policyShapeProblem } from './module-shape.ts';
import { validateDecision, type Validated } from './validate.ts';
import type { PolicySpec } from './worker-protocol.ts';

export { PolicyFault, PolicyLoadError, describeObservation, summarizeObservation } from './errors.ts';
export type { FaultKind, ObservationSummary } from './errors.ts';
export { BUILTIN_POLICIES, BUILTIN_POLICY_NAMES, isBuiltinPolicyName } from './builtins.ts';
export type { BuiltinPolicyName } from './builtins.ts';
export { validateDecision, splitObeys } from './validate.ts';
export { PolicyOptionError } from './options.ts';
export { EXEC_PREFIX, EXEC_PROTOCOL, EXEC_PROTOCOL_VERSION } from './exec.ts';
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
 * A policy by built-in name (static, semi-pd, semi-pd-z14, nexus, unified, disaggregated), by path to a
 * TypeScript/JavaScript module whose default export is a Policy or a factory (options) => Policy, or by
 * command (`exec:python3 my_policy.py`, any language: docs/policy-protocol.md; always isolated).
 * Throws PolicyLoadError with a one-line message when it cannot.
 */
export async function loadPolicy(nameOrPath: string, options: LoadPolicyOptions = {}): Promise<PolicyHandle> {
  const policyOptions = options.policyOptions ?? {};
  const timeBudgetMs = positive(options.timeBudgetMs, DEFAULT_TIME_BUDGET_MS, 'timeBudgetMs', nameOrPath);
  positive(options.loadTimeoutMs, DEFAULT_LOAD_TIMEOUT_MS, 'loadTimeoutMs', nameOrPath);
  const { spec, source, trusted } = resolveSpec(nameOrPath, options);
  const isolate = options.isolate === undefined || options.isolate === 'auto' ? !trusted : options.isolate;
  if (!isolate && spec.kind === 'builtin' && !trusted) {
    throw new PolicyLoadError(nameOrPath, 'this built-in is known to hang (it reproduces a bug) and runs only isolated');
  }
  if (!isolate && spec.kind === 'exec') throw new PolicyLoadError(nameOrPath, 'a command runs only isolated, in its own process');
  if (isolate) return (await startIsolated(nameOrPath, spec, source, options)).handle;
  let policy: Policy;
  try {
    if (spec.kind === 'builtin') {
      policy = BUILTIN_POLICIES[spec.name as keyof typeof BUILTIN_POLICIES].create(policyOptions);
    } else if (spec.kind === 'module') {
      policy = policyFromModule(await importPolicyModule(spec.url), policyOptions);
    } else {
      throw new Error('a command runs only isolated');
    }
  } catch (err) {
    throw new PolicyLoadError(nameOrPath, firstLine(err));
  }
  return inProcessHandle(policy, source, timeBudgetMs);
}

/** A policy loaded into its own worker, with fresh instances there when it has a factory. */
export interface IsolatedInstances {
  /** Instance 0. */
  readonly handle: PolicyHandle;
  /**
   * A new instance with no history, in the same worker; null when the module exports one policy object. At
   * most FRESH_LIVE fresh instances are kept: an older one's decisions fault as 'unavailable'.
   */
  readonly fresh: (() => PolicyHandle) | null;
  close(): Promise<void>;
}

/** A policy's instance 0 and its maker of fresh instances, isolated or in-process (loadPolicyInstances). */
export type PolicyInstances = IsolatedInstances;

/** Fresh instances an isolated policy's worker keeps at once (the checks use one or two at a time). */
export const FRESH_LIVE = 16;

/**
 * A policy by built-in name or module path, always in its own worker: the caller's realm never runs its code.
 * Fresh instances (for checks that compare instances with the same history) are made in that worker.
 */
export async function loadIsolatedPolicy(nameOrPath: string, options: LoadPolicyOptions = {}): Promise<IsolatedInstances> {
  const { spec, source } = resolveSpec(nameOrPath, options);
  return startIsolated(nameOrPath, spec, source, options);
}

/**
 * A policy loaded as loadPolicy loads it (isolate 'auto' by default), with a maker of fresh instances for
 * checks made of many independent runs (a campaign): a trusted built-in makes them in-process, anything
 * isolated in its worker; `fresh` is null where the policy is one object (a module exporting a Policy, not a
 * factory).
 */
export async function loadPolicyInstances(nameOrPath: string, options: LoadPolicyOptions = {}): Promise<PolicyInstances> {
  const { spec, trusted } = resolveSpec(nameOrPath, options);
  const isolate = options.isolate === undefined || options.isolate === 'auto' ? !trusted : options.isolate;
  if (isolate) return loadIsolatedPolicy(nameOrPath, options);
  const handle = await loadPolicy(nameOrPath, { ...options, isolate: false });
  const timeBudgetMs = handle.timeBudgetMs;
  let fresh: (() => PolicyHandle) | null = null;
  if (spec.kind === 'builtin') {
    const builtin = BUILTIN_POLICIES[spec.name as keyof typeof BUILTIN_POLICIES];
    fresh = () => inProcessHandle(builtin.create(options.policyOptions ?? {}), 'built-in', timeBudgetMs);
  } else if (spec.kind === 'module') {
    const namespace = await importPolicyModule(spec.url);
    if (typeof namespace.default === 'function') fresh = () => inProcessHandle(policyFromModule(namespace, options.policyOptions ?? {}), handle.source, timeBudgetMs);
  }
  return { handle, fresh, close: () => handle.close() };
}

/** Whether a `--policy` value names a command (`exec:COMMAND`) rather than a built-in or a module. */
export function isExecPolicy(nameOrPath: string): boolean {
  return nameOrPath.startsWith(EXEC_PREFIX);
}

function resolveSpec(nameOrPath: string, options: LoadPolicyOptions): { spec: PolicySpec; source: string; trusted: boolean } {
  if (isExecPolicy(nameOrPath)) {
    const command = nameOrPath.slice(EXEC_PREFIX.length).trim();
    if (command === '') throw new PolicyLoadError(nameOrPath, "exec: needs a command, e.g. exec:'python3 my_policy.py'");
    if (command.includes('\0')) throw new PolicyLoadError(nameOrPath, 'the command holds a NUL character');
    const cwd = options.cwd ?? process.cwd();
    return { spec: { kind: 'exec', command, cwd }, source: nameOrPath, trusted: false };
  }
  if (isBuiltinPolicyName(nameOrPath)) return { spec: { kind: 'builtin', name: nameOrPath }, source: 'built-in', trusted: BUILTIN_POLICIES[nameOrPath].trusted };
  if (!looksLikePath(nameOrPath)) {
    throw new PolicyLoadError(nameOrPath, `not a built-in policy (${BUILTIN_POLICY_NAMES.join(', ')}), not a path to a module (e.g. ./my-policy.ts) and not a command (exec:'python3 my_policy.py')`);
  }
  const path = isAbsolute(nameOrPath) ? nameOrPath : resolve(options.cwd ?? process.cwd(), nameOrPath);
  if (!existsSync(path)) throw new PolicyLoadError(nameOrPath, `file not found (${path})`);
  if (!statSync(path).isFile()) throw new PolicyLoadError(nameOrPath, `not a file (${path})`);
  return { spec: { kind: 'module', url: pathToFileURL(path).href }, source: path, trusted: false };
}

async function startIsolated(nameOrPath: string, spec: PolicySpec, source: string, options: LoadPolicyOptions): Promise<IsolatedInstances> {
  const timeBudgetMs = positive(options.timeBudgetMs, DEFAULT_TIME_BUDGET_MS, 'timeBudgetMs', nameOrPath);
  const loadTimeoutMs = positive(options.loadTimeoutMs, DEFAULT_LOAD_TIMEOUT_MS, 'loadTimeoutMs', nameOrPath);
  let isolated: IsolatedPolicy;
  try {
    isolated = await startIsolatedPolicy(spec, options.policyOptions ?? {}, options.profile, loadTimeoutMs);
  } catch (err) {
    throw new PolicyLoadError(nameOrPath, firstLine(err));
  }
  const close = () => isolated.terminate();
  const handleOf = (instance: number, closeIt: () => Promise<void>) =>
    makeHandle({
      name: isolated.name,
      source,
      claimsMonotone: isolated.claimsMonotone,
      interval: isolated.interval,
      isolated: true,
      timeBudgetMs,
      run(observation) {
        const result = isolated.call(observation, timeBudgetMs, instance);
        if (result.status === 'timeout') {
          return { ok: false, kind: 'timeout', detail: `no decision within its time budget of ${timeBudgetMs} ms (a hang?); its worker was terminated` };
        }
        if (result.status === 'gone') return { ok: false, kind: 'unavailable', detail: `the policy is not running: ${result.reason}` };
        return result.reply;
      },
      close: closeIt,
    });
  let next = 0;
  const fresh = isolated.fresh
    ? () => {
        next += 1;
        if (next > FRESH_LIVE) isolated.drop(next - FRESH_LIVE);
        const instance = next;
        return handleOf(instance, async () => isolated.drop(instance));
      }
    : null;
  return { handle: handleOf(0, close), fresh, close };
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
      if (took > timeBudgetMs) {
        return {
          ok: false,
          kind: 'timeout',
          detail: `took ${took.toFixed(1)} ms, over its time budget of ${timeBudgetMs} ms (run it isolated to stop a hang)`,
        };
      }
      try {
        if (raw !== null && typeof raw === 'object' && typeof (raw as { then?: unknown }).then === 'function') {
          Promise.resolve(raw).catch(() => undefined); // reported as malformed below; no unhandled rejection
        }
        return validateDecision(raw, observation.shareRule);
      } catch (err) {
        // A decision that cannot even be read (a Proxy or a getter that throws) is malformed, not an engine crash.
        return { ok: false, kind: 'malformed', detail: `malformed decision: it cannot be read (${firstLine(err)})` };
      }
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

const FAULT_KINDS: ReadonlySet<string> = new Set(['threw', 'non-finite', 'non-integer', 'out-of-range', 'share-rule', 'malformed', 'timeout', 'unavailable'] satisfies FaultKind[]);

/** A worker's reply as a Validated, whatever it is: a fault report keeps a known kind and a short text, a decision is validated again by the caller. */
function wellFormed(reply: unknown): Validated {
  if (reply === null || typeof reply !== 'object') return { ok: false, kind: 'malformed', detail: 'malformed reply from the policy\'s worker' };
  const r = reply as Record<string, unknown>;
  if (r.ok === true) return { ok: true, decision: r.decision as Decision };
  if (r.ok === false && typeof r.kind === 'string' && FAULT_KINDS.has(r.kind) && typeof r.detail === 'string') return { ok: false, kind: r.kind as FaultKind, detail: r.detail.slice(0, 2000) };
  return { ok: false, kind: 'malformed', detail: 'malformed reply from the policy\'s worker' };
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
      // An isolated reply is untrusted data from the worker: anything but a well-formed one is malformed.
      const result = parts.isolated ? wellFormed(parts.run(observation)) : parts.run(observation);
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
