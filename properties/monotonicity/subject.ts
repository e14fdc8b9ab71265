// The policy a monotonicity check runs: a way to get fresh instances when there is one, so that a stateful
// policy (semi-pd keeps a sliding history and refits; nexus keeps a hysteresis mode) is compared fairly —
// each of the two observations goes to its own fresh instance, fed the same history first.
//
// A single PolicyHandle (e.g. an isolated one from loadPolicy) cannot be copied: both observations then go
// to the same instance, one after the other, which is fair only for a policy without state. Results say
// which of the two was used.
import { dirname, isAbsolute, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Policy } from '../../engine/policy-api.ts';
import { MODE_INFO, type Mode } from '../../engine/engine.ts';
import { BUILTIN_POLICIES, handleForPolicy, isBuiltinPolicyName, isExecPolicy, loadIsolatedPolicy, loadPolicy, type PolicyHandle } from '../../engine/policies/index.ts';
import type { Profile } from '../../engine/profile.ts';
import type { ShareRule } from './observation.ts';

export interface PolicySubject {
  /** Policy name (as in reports). */
  name: string;
  /** How to load it again: a built-in name or a module path; undefined for a policy built in code. */
  source?: string;
  /** The options it was loaded with (for the replay). */
  policyOptions?: Record<string, unknown>;
  claimsMonotone: boolean;
  interval: number;
  /** A new instance, with no history. Absent: only `shared` exists. */
  fresh?: () => PolicyHandle;
  /** The one instance, when fresh ones cannot be had. */
  shared?: PolicyHandle;
  /** The share rules the policy is meant for (M2 generates observations under these). */
  shareRules: readonly ShareRule[];
  /** The engine mode M3 runs it in. */
  mode: Mode;
  /** Stops what runs the policy (its worker), when something does. */
  close?: () => Promise<void>;
}

/** The repository root: replay commands run from there. */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** A module path as a replay names it: relative to the repository root when inside it. */
function sourceOf(path: string): string {
  const rel = relative(REPO_ROOT, path);
  return rel.startsWith('..') || isAbsolute(rel) ? path : rel;
}

const BUILTIN_MODE: Record<string, Mode> = {
  static: 'semi-pd',
  'semi-pd': 'semi-pd',
  'semi-pd-z14': 'semi-pd',
  nexus: 'nexus',
  unified: 'unified',
  disaggregated: 'disaggregated',
};

/** The share rule of an engine mode: Nexus's green contexts sum to 100, the others oversubscribe. */
export function shareRuleOf(mode: Mode): ShareRule {
  return MODE_INFO[mode].shareRule;
}

export interface SubjectOptions {
  policyOptions?: Record<string, unknown>;
  /** Directory that relative module paths are resolved against (default: the working directory). */
  cwd?: string;
  /**
   * true: one isolated instance (loadPolicy with isolate), shared by every comparison — safe against hangs,
   * fair only for a stateless policy; the caller closes `shared`. false (default): fresh in-process instances.
   */
  isolate?: boolean;
  /** Required with isolate, so that the worker can rebuild Observation.model. */
  profile?: Profile;
  /** Engine mode for M3 (a user module's default: semi-pd); a built-in has its own. */
  mode?: Mode;
  /** Share rules for M2 (default: a built-in's own; both for a user module, which may run under either). */
  shareRules?: readonly ShareRule[];
}

/**
 * A policy by built-in name or module path, ready for checkPolicyPressure and checkSystem. In-process (the
 * default): fresh instances — a factory module's factory is called again, a built-in created again; a module
 * exporting one Policy object has no fresh instances and is used shared.
 */
export async function policySubject(nameOrPath: string, options: SubjectOptions = {}): Promise<PolicySubject> {
  const policyOptions = options.policyOptions ?? {};
  const builtin = isBuiltinPolicyName(nameOrPath);
  const mode = builtin ? BUILTIN_MODE[nameOrPath] : (options.mode ?? 'semi-pd');
  const shareRules = options.shareRules ?? (builtin ? (nameOrPath === 'semi-pd' || nameOrPath === 'static' || nameOrPath === 'unified' ? ['oversubscribe', 'exact'] : [shareRuleOf(mode)]) : ['oversubscribe', 'exact']);
  const path = isAbsolute(nameOrPath) ? nameOrPath : resolve(options.cwd ?? process.cwd(), nameOrPath);
  const common = { source: builtin || isExecPolicy(nameOrPath) ? nameOrPath : sourceOf(path), policyOptions, shareRules, mode } as const;

  if (options.isolate || (builtin && !BUILTIN_POLICIES[nameOrPath].trusted)) {
    const handle = await loadPolicy(nameOrPath, { policyOptions, isolate: true, profile: options.profile, cwd: options.cwd });
    return { ...common, name: handle.name, claimsMonotone: handle.claimsMonotone, interval: handle.interval, shared: handle };
  }
  if (!builtin) {
    // A user's module never runs in the checker's realm: it runs in its own worker, which makes the fresh
    // instances (a factory module) or holds the one policy object.
    const loaded = await loadIsolatedPolicy(nameOrPath, { policyOptions, profile: options.profile, cwd: options.cwd });
    const h = loaded.handle;
    const base = { ...common, name: h.name, claimsMonotone: h.claimsMonotone, interval: h.interval, close: loaded.close };
    return loaded.fresh ? { ...base, fresh: loaded.fresh } : { ...base, shared: h };
  }
  const entry = BUILTIN_POLICIES[nameOrPath];
  const make = () => entry.create(policyOptions);
  const first = make();
  const fresh = () => handleForPolicy(make());
  return { ...common, name: first.name, claimsMonotone: first.claimsMonotone ?? false, interval: first.interval ?? 1, fresh };
}

/** A subject for a Policy built in code: fresh instances from `make`. */
export function subjectOf(make: () => Policy, options: { shareRules?: readonly ShareRule[]; mode?: Mode } = {}): PolicySubject {
  const first = make();
  return {
    name: first.name,
    claimsMonotone: first.claimsMonotone ?? false,
    interval: first.interval ?? 1,
    fresh: () => handleForPolicy(make()),
    shareRules: options.shareRules ?? ['oversubscribe', 'exact'],
    mode: options.mode ?? 'semi-pd',
  };
}

/** A subject around one handle (shared by every comparison). */
export function subjectOfHandle(handle: PolicyHandle, options: { shareRules?: readonly ShareRule[]; mode?: Mode } = {}): PolicySubject {
  return {
    name: handle.name,
    ...(handle.source !== 'in-memory' ? { source: handle.source === 'built-in' ? handle.name : handle.source } : {}),
    claimsMonotone: handle.claimsMonotone,
    interval: handle.interval,
    shared: handle,
    shareRules: options.shareRules ?? ['oversubscribe', 'exact'],
    mode: options.mode ?? 'semi-pd',
  };
}

/** Closes a subject's shared handle (an isolated policy's worker). */
export async function closeSubject(subject: PolicySubject): Promise<void> {
  await subject.shared?.close();
  await subject.close?.();
}
