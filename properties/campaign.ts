// The property campaign: random scenarios and environment schedules, each run in lockstep with the spec
// (properties/lockstep.ts), through fast-check's model-based runner so that a failure shrinks to a small
// scenario and a short schedule. Every run is seeded; a failure comes back with the seed and path that
// replay it exactly, and with its trace, written as trace v1.
import fc from 'fast-check';
import type { Mode, PolicyHandle } from '../engine/engine.ts';
import type { EngineFaults } from '../engine/faults/index.ts';
import { PolicyFault, type PolicyHandle as LoadedPolicy } from '../engine/policies/index.ts';
import type { TraceEvent, TraceHeader } from '../spec/trace-format.ts';
import { asFastCheckCommand, finish, LockstepFailure, start } from './lockstep.ts';
import { abortCommand, modes as allModes, resizeCommand, runCommand, scenario, type Scenario } from './scenario.ts';

export interface CampaignOptions {
  seed: number;
  runs: number;
  modes?: readonly Mode[];
  faults?: EngineFaults;
  /** Other engine options (a fault may need one to show). */
  extra?: Record<string, unknown>;
  maxRequests?: number;
  /** Replay: fast-check's path of the counterexample to run again, and the commands' replay path. */
  path?: string;
  replayPath?: string;
  /** Stop the campaign (runs and shrinking) after this long (ms); what ran so far counts. */
  timeLimitMs?: number;
  /** The policy deciding splits during the runs: fresh instances, one per run, or one shared handle. */
  policy?: CampaignPolicy;
}

/**
 * A campaign's policy: a maker of fresh instances, so that every run (shrinking included) starts with no
 * history and a replay, which runs the failing case alone, decides exactly as the campaign did; or one handle
 * for every run, for a policy that is one object (a module that exports a Policy, not a factory) — then a
 * stateful policy carries its state from run to run, and a replay may not be exact.
 */
export type CampaignPolicy = PolicyHandle | (() => LoadedPolicy);

/** Runs `body` with the policy instance of one run: a fresh one, closed when the run ends, or the shared handle. */
function withRunPolicy<T>(policy: CampaignPolicy | undefined, body: (handle: PolicyHandle | null) => T): T {
  if (typeof policy !== 'function') return body(policy ?? null);
  const handle = policy();
  try {
    return body(handle);
  } finally {
    // Closing a spent instance (an isolated one is dropped in its worker) cannot change the run's outcome.
    handle.close().catch(() => undefined);
  }
}

export interface CampaignFailure {
  property: string;
  family: string;
  message: string;
  /** The shrunk scenario and schedule. */
  scenario: Scenario;
  commands: string[];
  /** The trace up to and including the offending event. */
  header: TraceHeader;
  events: TraceEvent[];
  seed: number;
  path: string;
  /** fast-check's replay path of the command list (its shrinking), needed with seed and path to replay. */
  replayPath: string;
  /** For a crash (property 'crash'): what the engine threw, stack and all, for the crash file. */
  error?: unknown;
}

export interface CampaignResult {
  ok: boolean;
  runs: number;
  seconds: number;
  failure?: CampaignFailure;
  /** What the runs covered of shared KV (counted over every run, shrinking included). */
  sharing: SharingCoverage;
  /** What the runs covered of speculative decoding (likewise). */
  speculative: SpeculativeCoverage;
}

/** Shared-KV coverage of a campaign: runs with shared KV (a v2 trace, or v3 with a prefix cache), and the prefix hits, evictions, forks and copies they had. */
export interface SharingCoverage {
  runs: number;
  hits: number;
  evictions: number;
  forks: number;
  copies: number;
}

/** Adds one run's trace to `into`. */
export function tallySharing(into: SharingCoverage, header: TraceHeader, events: readonly TraceEvent[]): void {
  // Version 3 includes shared KV; the engine's v3 runs without a prefix cache share nothing.
  if (header.version < 2 || (header.version > 2 && header.prefixCache === undefined)) return;
  into.runs++;
  for (const e of events) {
    if (e.ev === 'cache_hit') into.hits += e.blocks.length;
    else if (e.ev === 'evict') into.evictions++;
    else if (e.ev === 'fork') into.forks++;
    else if (e.ev === 'cow') into.copies++;
  }
}

/** What a campaign covered of shared KV, in words. */
export function sharingDetail(s: SharingCoverage): string {
  return `shared KV in ${s.runs} of them: ${s.hits} prefix-cache hit(s), ${s.evictions} eviction(s), ${s.forks} fork(s), ${s.copies} copy-on-write`;
}

export function noSharing(): SharingCoverage {
  return { runs: 0, hits: 0, evictions: 0, forks: 0, copies: 0 };
}

/**
 * Trace v3 coverage of a campaign: runs with a v3 trace; speculative verifies, drafts, accepted drafts and
 * verifies with a rejection; windowed blocks freed while their request lived; state slots taken; and
 * preemptions of requests still prefilling.
 */
export interface SpeculativeCoverage {
  runs: number;
  verifies: number;
  drafted: number;
  accepted: number;
  rejections: number;
  windowFrees: number;
  slotAllocs: number;
  prefillPreemptions: number;
  /** Trace v4: core-attention tasks read back, and attention servers lost. */
  tasks: number;
  serverLosses: number;
}

export function noSpeculation(): SpeculativeCoverage {
  return { runs: 0, verifies: 0, drafted: 0, accepted: 0, rejections: 0, windowFrees: 0, slotAllocs: 0, prefillPreemptions: 0, tasks: 0, serverLosses: 0 };
}

/** Adds one run's trace to `into`. */
export function tallySpeculative(into: SpeculativeCoverage, header: TraceHeader, events: readonly TraceEvent[]): void {
  if (header.version < 3) return;
  into.runs++;
  const drafts = new Map<string, Record<string, number>>();
  // Requests scheduled and not yet joined: a preemption of one of them is a preemption while prefilling.
  const prefilling = new Set<string>();
  // Requests whose frees are whole-table frees (ended or retracted).
  const freeing = new Set<string>();
  for (const e of events) {
    if (e.ev === 'schedule') {
      prefilling.add(e.req);
      freeing.delete(e.req);
    } else if (e.ev === 'join' || e.ev === 'handoff' || e.ev === 'token') prefilling.delete(e.req);
    else if (e.ev === 'preempt') {
      if (prefilling.delete(e.req)) into.prefillPreemptions++;
      freeing.add(e.req);
    } else if (e.ev === 'finish' || e.ev === 'abort') freeing.add(e.req);
    else if (e.ev === 'slot_alloc') into.slotAllocs++;
    else if (e.ev === 'task_consume') into.tasks++;
    else if (e.ev === 'server_lost') into.serverLosses++;
    else if (e.ev === 'free' && e.group !== undefined && !freeing.has(e.req) && header.groups?.find((g) => g.id === e.group)?.window !== undefined) into.windowFrees += e.blocks.length;
    if (e.ev === 'step_begin') {
      const d: Record<string, number> = {};
      for (const item of e.batch) {
        if (!item.draft) continue;
        d[item.req] = item.draft;
        into.verifies++;
        into.drafted += item.draft;
      }
      drafts.set(`${e.worker}/${e.step}`, d);
    } else if (e.ev === 'step_end' && e.accepted) {
      const d = drafts.get(`${e.worker}/${e.step}`) ?? {};
      for (const [req, a] of Object.entries(e.accepted)) {
        into.accepted += a;
        if (a < (d[req] ?? 0)) into.rejections++;
      }
    }
  }
}

/** What a campaign covered of speculative decoding, in words. */
export function speculativeDetail(s: SpeculativeCoverage): string {
  return `trace v3 in ${s.runs} of them: ${s.verifies} speculative verify item(s), ${s.drafted} draft(s), ${s.accepted} accepted, ${s.rejections} verify(s) with a rejection; ${s.windowFrees} windowed block(s) freed by live requests, ${s.slotAllocs} state slot(s) taken, ${s.prefillPreemptions} preemption(s) while prefilling; ${s.tasks} core-attention task(s) read back, ${s.serverLosses} attention server(s) lost`;
}

/** The lockstep property: for every scenario and environment schedule, the run keeps every property. */
export function lockstepProperty(options: Pick<CampaignOptions, 'modes' | 'faults' | 'extra' | 'maxRequests' | 'replayPath' | 'policy'>, sharing?: SharingCoverage, speculative?: SpeculativeCoverage) {
  const commandArb = fc.commands([runCommand, abortCommand, resizeCommand].map((a) => a.map(asFastCheckCommand)), {
    maxCommands: 12,
    ...(options.replayPath ? { replayPath: options.replayPath } : {}),
  });
  return fc.property(scenario(options.modes ?? allModes, options.faults ?? {}, options.maxRequests ?? 6, options.extra), commandArb, (sc, cmds) =>
    withRunPolicy(options.policy, (policy) => {
      const both = start(sc, policy);
      try {
        fc.modelRun(() => ({ model: both, real: both }), cmds);
        finish(both.judge, both.run);
      } finally {
        if (sharing) tallySharing(sharing, both.run.engine.header, both.judge.events);
        if (speculative) tallySpeculative(speculative, both.run.engine.header, both.judge.events);
      }
    }),
  );
}

export function runCampaign(options: CampaignOptions): CampaignResult {
  const t0 = performance.now();
  const sharing = noSharing();
  const speculative = noSpeculation();
  const details = fc.check(lockstepProperty(options, sharing, speculative), {
    seed: options.seed,
    numRuns: options.path ? 1 : options.runs,
    ...(options.path ? { path: options.path } : {}),
    ...(options.timeLimitMs ? { interruptAfterTimeLimit: options.timeLimitMs, markInterruptAsFailure: false } : {}),
  });
  const seconds = (performance.now() - t0) / 1000;
  if (!details.failed) return { ok: true, runs: details.numRuns, seconds, sharing, speculative };
  const err = details.errorInstance;
  const [sc, cmds] = details.counterexample as unknown as [Scenario, Iterable<unknown>];
  const commands = [...cmds].map((c) => String(c));
  const replayPath = /replayPath="([^"]*)"/.exec(String(cmds))?.[1] ?? '';
  // A policy that throws, returns nonsense or hangs is bad input for the caller, not a finding of the campaign.
  if (err instanceof PolicyFault) throw err;
  if (!(err instanceof LockstepFailure)) {
    // An engine crash or a bug in the campaign itself: report it as such, with the replay.
    return {
      ok: false,
      runs: details.numRuns,
      seconds,
      sharing,
      speculative,
      failure: {
        property: 'crash',
        family: 'crash',
        message: err instanceof Error ? `${err.name}: ${err.message}` : String(err),
        scenario: sc,
        commands,
        header: { format: 'pdspec-trace', version: 1 } as TraceHeader,
        events: [],
        seed: details.seed,
        path: details.counterexamplePath ?? '',
        replayPath,
        error: err,
      },
    };
  }
  return {
    ok: false,
    runs: details.numRuns,
    seconds,
    sharing,
    speculative,
    failure: {
      property: err.property,
      family: err.family,
      message: err.message.slice(err.property.length + 2),
      scenario: sc,
      commands,
      header: err.header,
      events: err.events,
      seed: details.seed,
      path: details.counterexamplePath ?? '',
      replayPath,
    },
  };
}

/**
 * The one command that replays a campaign failure exactly: its seed, fast-check's path and the commands'
 * replay path, with the modes when not all of them and the fault switch when one was on.
 */
export function replayOf(seed: number, path: string, replayPath: string, modes: readonly Mode[], fault: string | undefined, policy?: string): string {
  const parts = ['npx pdspec campaign', `--seed ${seed}`, `--path ${path}`];
  if (replayPath) parts.push(`--replay-path '${replayPath}'`);
  // The modes' order matters too: the scenarios draw a mode by its index among them.
  if (modes.join(',') !== allModes.join(',')) parts.push(`--modes ${modes.join(',')}`);
  if (fault) parts.push(`--fault ${fault}`);
  if (policy) parts.push(`--policy ${policy}`);
  return parts.join(' ');
}

/** The trace v1 lines of a failure (header with the replay command in its note). */
export function failureTrace(f: CampaignFailure, replay: string): string[] {
  const header = { ...f.header, note: `pdspec campaign counterexample: ${f.property} — ${f.message}. Reproduce: ${replay}` };
  return [JSON.stringify(header), ...f.events.map((e) => JSON.stringify(e))];
}
