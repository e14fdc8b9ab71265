// Lockstep runs of the engine against the spec. The engine is the implementation; the spec, fed the
// engine's trace event by event, is the judge: after every engine step the spec must have allowed every
// event, every invariant must hold, and the engine's observable state (block owners, request states and
// servers, worker states, FIFOs and loads) must be the state the spec computed. The environment (aborts,
// resizes) acts through fast-check commands between engine events. At the end the run must be quiescent,
// no request may be stuck, every request's tokens must be those it gets alone, and no worker may cascade
// preemptions.
import type fc from 'fast-check';
import { Engine, InvalidDecisionError, type EngineOptions, type PolicyHandle } from '../engine/engine.ts';
import { loadProfile, type Profile } from '../engine/profile.ts';
import { MemorySink } from '../engine/trace-sink.ts';
import { checkQuiescent, checkState, propertyOf, RULES, type InvariantName } from '../spec/invariants.ts';
import { TraceChecker } from '../spec/checker.ts';
import type { TraceEvent, TraceHeader } from '../spec/trace-format.ts';
import { describeCommand, type Command, type Scenario } from './scenario.ts';

/** Properties of a lockstep run beyond the spec's rules. */
export const CAMPAIGN_PROPERTIES = {
  SpecAgreement: { family: 'SpecAgreement', says: "The engine's observable state after each step is the state the spec computes from its trace." },
  NoStall: { family: 'Liveness', says: 'Every request of a finite workload ends: the engine never stops with live requests it cannot move.' },
  NoPreemptionCascade: {
    family: 'Liveness',
    says: 'A worker does not retract another victim before the blocks of its last victim are freed (else it retracts again and again).',
  },
  OutputInvariance: { family: 'OutputInvariance', says: "Every request's tokens are the tokens it gets when it runs alone, whatever the schedule, split, preemption or resize." },
} as const;

export type CampaignProperty = keyof typeof CAMPAIGN_PROPERTIES;

/** A property the run broke: a spec rule, or one of CAMPAIGN_PROPERTIES. */
export class LockstepFailure extends Error {
  constructor(
    readonly property: InvariantName | CampaignProperty,
    readonly family: string,
    message: string,
    /** The trace up to and including the event that broke it. */
    readonly events: TraceEvent[],
    readonly header: TraceHeader,
  ) {
    super(`${property}: ${message}`);
    this.name = 'LockstepFailure';
  }
}

/** The property a finding puts at stake (a protocol rule's: the property it protects), as the report groups them. */
export function familyOf(property: string): string {
  return property in RULES ? propertyOf(property as InvariantName) : (CAMPAIGN_PROPERTIES[property as CampaignProperty]?.family ?? 'unknown');
}

let profile: Profile | null = null;
/**
 * The default profile with resizes that take milliseconds instead of half a second, so that a resize
 * overlaps the short runs of the campaign (in-flight steps, queued FIFOs) instead of landing after them.
 */
function campaignProfile(): Profile {
  if (!profile) {
    const p = loadProfile();
    profile = { ...p, resize: { ...p.resize, workerInitTime: 0.003 } };
  }
  return profile;
}

export function engineOptions(sc: Scenario, trace: MemorySink | null, workload = sc.workload, policy: PolicyHandle | null = null): EngineOptions {
  const s = sc.setup;
  return {
    mode: s.mode,
    workload,
    profile: campaignProfile(),
    blocks: s.blocks,
    blockSize: s.blockSize,
    allocator: s.allocator,
    allocEvents: s.allocEvents,
    prefillChunk: s.prefillChunk,
    unifiedChunk: s.unifiedChunk,
    maxBatch: s.maxBatch,
    seed: s.seed,
    faults: s.faults,
    recordOutputs: true,
    trace,
    policy,
    ...(s.extra ?? {}),
  } as EngineOptions;
}

/** The spec side: the checker fed the engine's events. */
export interface Judge {
  checker: TraceChecker;
  events: TraceEvent[];
}

/** The engine side. */
export interface Run {
  engine: Engine;
  sink: MemorySink;
  fed: number;
  scenario: Scenario;
}

/**
 * A lockstep run of a scenario. A policy, if given, decides the split as the run goes (asked every few
 * milliseconds of virtual time, so that its decisions land inside the campaign's short runs).
 */
export function start(sc: Scenario, policy: PolicyHandle | null = null): { judge: Judge; run: Run } {
  const sink = new MemorySink();
  const asked = policy ? { name: policy.name, interval: 0.005, decide: policy.decide.bind(policy) } : null;
  const engine = new Engine(engineOptions(sc, sink, sc.workload, asked));
  // The engine's counters are compared, ended requests too; an ended request's blocks are due free at once (no timeout may hold them).
  const checker = new TraceChecker({ system: { retireEnded: false }, releaseWithin: 0 });
  checker.feed(JSON.stringify(engine.header));
  return { judge: { checker, events: [] }, run: { engine, sink, fed: 0, scenario: sc } };
}

function fail(judge: Judge, run: Run, property: InvariantName | CampaignProperty, message: string): never {
  throw new LockstepFailure(property, familyOf(property), message, judge.events.slice(), run.engine.header);
}

/** Feeds the engine's new events to the spec, then compares what each side can observe. */
export function sync(judge: Judge, run: Run): void {
  const events = run.sink.events;
  for (; run.fed < events.length; run.fed++) {
    const ev = events[run.fed];
    judge.events.push(ev);
    judge.checker.feed(JSON.stringify(ev));
    if (judge.checker.done) {
      const v = judge.checker.end();
      if (v.verdict === 'violation') fail(judge, run, v.finding.rule, v.finding.message);
    }
  }
  const sys = judge.checker.sys!;
  const broken = checkState(sys);
  if (broken) fail(judge, run, broken.invariant, broken.message);
  // The engine's own state against the invariants (a leak or a double owner the engine's books show before
  // any event of the trace does), then against the spec's state.
  const books = run.engine.bookkeepingProblems();
  if (books.length) {
    const p = books[0];
    const rule = (p.rule in RULES ? p.rule : 'SpecAgreement') as InvariantName | CampaignProperty;
    fail(judge, run, rule, `in the engine's state: ${p.message}`);
  }
  const diff = disagreement(run.engine, judge.checker);
  if (diff) fail(judge, run, 'SpecAgreement', diff);
}

/** The first difference between the engine's observable state and the spec's, in words; null if none. */
export function disagreement(engine: Engine, checker: TraceChecker): string | null {
  const sys = checker.sys!;
  const view = engine.observe();
  for (let i = 0; i < sys.requestIds.length; i++) {
    const id = sys.requestIds[i];
    const mine = view.requests[id];
    const spec = sys.requests[i];
    if (!mine) return `request ${id} exists in the spec but not in the engine`;
    if (mine.state !== spec.value) return `request ${id} is ${mine.state} in the engine, ${spec.value} in the spec`;
    if (mine.server !== spec.context.server) return `request ${id} is served by ${mine.server} in the engine, by ${spec.context.server} in the spec`;
    if (mine.generated !== spec.context.generated) return `request ${id} has ${mine.generated} token(s) in the engine, ${spec.context.generated} in the spec`;
    if (mine.computed !== spec.context.computed) return `request ${id} has ${mine.computed} computed position(s) in the engine, ${spec.context.computed} in the spec`;
    const a = [...mine.blocks].sort((x, y) => x - y).join(',');
    const b = [...sys.tables[i]].sort((x, y) => x - y).join(',');
    if (a !== b) return `request ${id} holds blocks [${a}] in the engine, [${b}] in the spec`;
  }
  for (let b = 0; b < sys.blocks.length; b++) {
    const c = sys.blocks[b].context;
    if (view.sharing) {
      const mine = [...view.sharing.holders[b]].sort().join(', ');
      const spec = [...c.owners].sort().join(', ');
      if (mine !== spec) return `block ${b} is held by [${mine}] in the engine, by [${spec}] in the spec`;
      if (view.sharing.keys[b] !== c.key) return `block ${b} is cached under ${view.sharing.keys[b] ?? 'no key'} in the engine, under ${c.key ?? 'no key'} in the spec`;
      continue;
    }
    const owner = c.owners[0] ?? null;
    if (view.blocks[b] !== owner) return `block ${b} is owned by ${view.blocks[b] ?? 'nobody'} in the engine, by ${owner ?? 'nobody'} in the spec`;
  }
  // State slots (trace v3): the engine's holder of each slot is the spec's.
  for (let s = 0; s < sys.slots.length; s++) {
    const mine = view.slots?.[s] ?? null;
    const spec = sys.slots[s].context.owner;
    if (mine !== spec) return `state slot ${s} holds ${mine ?? 'no'} request's state in the engine, ${spec ?? 'no'} request's in the spec`;
  }
  for (let w = 0; w < sys.workerIds.length; w++) {
    const id = sys.workerIds[w];
    const mine = view.workers[id];
    const spec = sys.workers[w];
    if (!mine) return `worker ${id} exists in the spec but not in the engine`;
    if (mine.state !== spec.value) return `worker ${id} is ${mine.state} in the engine, ${spec.value} in the spec`;
    if (mine.load !== spec.context.load) return `worker ${id} serves ${mine.load} request(s) in the engine, ${spec.context.load} in the spec`;
    if (mine.fifo.join(',') !== spec.context.fifo.join(',')) return `worker ${id}'s FIFO is [${mine.fifo}] in the engine, [${spec.context.fifo}] in the spec`;
  }
  return null;
}

/** Runs the engine to its end in lockstep, then checks the end-of-run properties. */
export function finish(judge: Judge, run: Run, maxSteps = 100_000): void {
  for (let steps = 0; !run.engine.done; steps++) {
    if (steps >= maxSteps) fail(judge, run, 'NoStall', `the engine did not finish within ${maxSteps} steps`);
    run.engine.stepOnce();
    sync(judge, run);
  }
  const sys = judge.checker.sys!;
  const stuck = sys.requestIds.filter((_, r) => sys.isLive(r));
  if (stuck.length) fail(judge, run, 'NoStall', `the engine stopped with request(s) ${stuck.join(', ')} still live (${stuck.map((id) => sys.requests[sys.requestIndex.get(id)!].value).join(', ')})`);
  const rest = checkQuiescent(sys);
  if (rest) fail(judge, run, rest.invariant, rest.message);
  const cascade = preemptionCascade(judge.events);
  if (cascade) fail(judge, run, 'NoPreemptionCascade', cascade);
  const changed = outputDifference(run);
  if (changed) fail(judge, run, 'OutputInvariance', changed);
}

/** A worker that retracts another victim while the blocks of its previous one are still not freed. */
export function preemptionCascade(events: readonly TraceEvent[]): string | null {
  const pending = new Map<string, string>(); // worker → victim whose blocks are not freed yet
  for (const ev of events) {
    if (ev.ev === 'preempt') {
      const previous = pending.get(ev.worker);
      if (previous !== undefined && previous !== ev.req) return `${ev.worker} retracted ${ev.req} while the blocks of its previous victim ${previous} were not freed yet`;
      pending.set(ev.worker, ev.req);
    } else if (ev.ev === 'free') {
      for (const [w, victim] of pending) if (victim === ev.req) pending.delete(w);
    }
  }
  return null;
}

/** The first request whose tokens differ from those it gets running alone (a prefix, if it was aborted). */
export function outputDifference(run: Run): string | null {
  const together = run.engine.outputs();
  for (const req of run.scenario.workload) {
    const mine = together.get(req.id) ?? [];
    const aloneEngine = new Engine(engineOptions({ ...run.scenario, setup: { ...run.scenario.setup, faults: {} } }, null, [{ ...req, arrival: 0 }]));
    aloneEngine.runToCompletion();
    const alone = aloneEngine.outputs().get(req.id) ?? [];
    for (let i = 0; i < mine.length; i++) {
      if (mine[i] !== alone[i]) return `request ${req.id}'s token ${i} is ${mine[i]} in the run, ${alone[i] ?? 'absent'} when it runs alone`;
    }
  }
  return null;
}

// ---------------------------------------------------------------------------------------------
// The environment's commands, as fast-check commands over (judge, run)

export interface Both {
  judge: Judge;
  run: Run;
}

class EnvironmentCommand implements fc.Command<Both, Both> {
  constructor(readonly command: Command) {}
  check(): boolean {
    return true;
  }
  run(_model: Both, real: Both): void {
    const { run, judge } = real;
    const c = this.command;
    if (c.kind === 'run') {
      for (let i = 0; i < c.events && !run.engine.done; i++) {
        run.engine.stepOnce();
        sync(judge, run);
      }
    } else if (c.kind === 'abort') {
      const view = run.engine.observe();
      const live = Object.keys(view.requests).filter((id) => view.requests[id].state !== 'finished' && view.requests[id].state !== 'aborted');
      if (live.length > 0 && run.engine.abortNow(live[c.pick % live.length])) {
        run.engine.stepOnce();
        sync(judge, run);
      }
    } else {
      try {
        run.engine.applyDecision({ split: { prefill: c.prefill, decode: c.decode } });
      } catch (err) {
        // A split the mode's share rule forbids: the partition controller would not ask for it.
        if (!(err instanceof InvalidDecisionError)) throw err;
      }
      sync(judge, run);
    }
  }
  toString(): string {
    return describeCommand(this.command);
  }
}

export function asFastCheckCommand(c: Command): fc.Command<Both, Both> {
  return new EnvironmentCommand(c);
}
