// M2, the policy: its decisions are deterministic (clause `deterministic`: the same history and observation,
// the same decision), and componentwise more pressure on one phase, everything else equal, never lowers that
// phase's share. One pressure clause per phase; a case is (history, more pressure, base observation):
//
//   o′ = the generated observation    o = o′ with the phase's components lowered (never raised)
//   share(o) = decide(o).split?.[phase] ?? o.split[phase]      ({} keeps the split)
//   holds when share(o′) ≥ share(o)
//
// Fairness for stateful policies: with fresh instances (PolicySubject.fresh) each of o and o′ goes to its
// own new instance, both first fed the same history of windows (played as the engine would: each decision's
// split is the next window's split); the history shrinks to empty, so a failure that needs none shows none.
// With one shared handle, o and then o′ go to the same instance, with no history: fair only without state.
//
// The tuple is (history, difference, o′) so that fast-check shrinks the history away first, then the
// difference to the smallest step that still shows the failure, then o′ towards a quiet window.
import fc from 'fast-check';
import type { Decision, LatencyModel, Observation, Split } from '../../engine/policy-api.ts';
import { PolicyFault, type PolicyHandle } from '../../engine/policies/index.ts';
import { noteHang, throwNotedHang } from './hang.ts';
import { DEFAULT_PROFILE, latencyModel, loadProfile } from '../../engine/profile.ts';
import { DEFAULT_SEED } from './latency.ts';
import {
  DEFAULT_DECODE_COMPONENTS,
  decodePressure,
  diffLines,
  fieldsOf,
  observationOf,
  observationSpec,
  prefillPressure,
  PREFILL_COMPONENTS,
  withLessDecodePressure,
  withLessPrefillPressure,
  type DecodePressure,
  type ObservationSpec,
  type Phase,
  type PrefillPressure,
  type PressureComponent,
  type ShareRange,
  type ShareRule,
} from './observation.ts';
import { assemble, literal, OK, runClauses, replayCommand, type CheckResult, type Clause, type Verdict } from './result.ts';
import { closeSubject, policySubject, subjectOfHandle, type PolicySubject, type SubjectOptions } from './subject.ts';

/**
 * `deterministic` first: every comparison M2 makes, and every replay pdspec prints, assumes that a decision is
 * a function of the policy's history and the observation. A policy that reads the wall clock, draws random
 * numbers or keeps state outside its instance breaks that, and its other counterexamples would not replay.
 */
export const M2_CLAUSES = ['deterministic', 'prefill', 'decode'] as const;
export type M2Clause = (typeof M2_CLAUSES)[number];

export interface PressureCheckOptions {
  seed?: number;
  /** Cases per phase (default 300). */
  numRuns?: number;
  clauses?: readonly M2Clause[];
  path?: string;
  /** Pressure components that vary (default: all prefill ones and the design's decode ones; add 'kvUsage' to include KV usage). */
  components?: readonly PressureComponent[];
  /** Most history windows fed to fresh instances before o and o′ (default 3; 0: the first call only). */
  history?: number;
  /** Share rules to generate observations under (default: the subject's). */
  shareRules?: readonly ShareRule[];
  /** Bounds on the generated splits' shares (default 1..100), e.g. the range a policy keeps its own splits in. */
  shares?: ShareRange;
  /** Profile whose latency model is Observation.model (default llama3-8b-h100); must be the one an isolated policy was loaded with. */
  profile?: string;
}

type Case<P> = [ObservationSpec[], P, ObservationSpec];

/** The phase's share after a decision on `obs`. */
function shareAfter(decision: Decision, obs: Observation, phase: Phase): number {
  return decision.split?.[phase] ?? obs.split[phase];
}

function describeDecision(decision: Decision, obs: Observation, phase: Phase): string {
  return `${JSON.stringify(decision)} → ${phase} share ${shareAfter(decision, obs, phase)}`;
}

interface Played {
  decision: Decision;
  /** The observation decided on: the spec at the split the history's decisions left. */
  observation: Observation;
}

/** Plays `history` on `handle` (each decision's split is the next window's, as in the engine), then `spec`. */
function play(handle: PolicyHandle, history: readonly ObservationSpec[], spec: ObservationSpec, model: LatencyModel, interval: number): Played {
  let split: Split = spec.split;
  history.forEach((h, i) => {
    const decision = handle.decide(observationOf({ ...h, split }, model, (i + 1) * interval));
    if (decision.split) split = decision.split;
  });
  const observation = observationOf({ ...spec, split }, model, (history.length + 1) * interval);
  return { decision: handle.decide(observation), observation };
}

/** The history windows of a case, one line each (the split left out: the decisions set it). */
function historyLinesOf(hist: readonly ObservationSpec[], model: LatencyModel): string[] {
  return hist.map((h, i) => `history window ${i + 1} (fed to both first): ${fieldsOf(observationOf(h, model, 0)).slice(1).map(([k, v]) => `${k} ${v}`).join(', ')}`);
}

/** A policy fault as a failing case (a hang is also noted, to end the check once fast-check returns). */
function faultVerdict(err: unknown): Verdict {
  if (!(err instanceof PolicyFault)) throw err;
  noteHang(err);
  return { ok: false, summary: `the policy faulted: ${err.message}`, lines: [err.message], data: { fault: { kind: err.kind, detail: err.detail } } };
}

/** A decision as comparable text: the split's two shares and the prefill order, in a fixed order. */
function decisionKey(d: Decision): string {
  return JSON.stringify([d.split ? [d.split.prefill, d.split.decode] : null, d.prefillOrder ?? null]);
}

/** Lets the wall clock move on between the two calls compared, so that a policy reading it can show it. */
const pause = new Int32Array(new SharedArrayBuffer(4));
const PAUSE_MS = 1;

function determinismClause(subject: PolicySubject, rules: readonly ShareRule[], historyMax: number, model: LatencyModel, shares: ShareRange | undefined): Clause<[ObservationSpec[], ObservationSpec]> {
  const history = subject.fresh && historyMax > 0 ? fc.array(observationSpec(rules, shares), { maxLength: historyMax }) : fc.constant([] as ObservationSpec[]);
  const how = subject.fresh
    ? 'two fresh instances (the second made after the first has decided), fed the same history'
    : 'the one shared instance, asked twice';
  return {
    name: 'deterministic',
    statement: `the same history and observation get the same decision (${how}, ${PAUSE_MS} ms apart)`,
    arbitrary: fc.tuple(history, observationSpec(rules, shares)),
    verdict([past, spec]) {
      const hist = past.map((h) => ({ ...h, shareRule: spec.shareRule }));
      let first: Played;
      let second: Played;
      try {
        first = play(subject.fresh ? subject.fresh() : subject.shared!, hist, spec, model, subject.interval);
        Atomics.wait(pause, 0, 0, PAUSE_MS);
        second = play(subject.fresh ? subject.fresh() : subject.shared!, hist, spec, model, subject.interval);
      } catch (err) {
        return faultVerdict(err);
      }
      if (decisionKey(first.decision) === decisionKey(second.decision)) return OK;
      const historyLines = historyLinesOf(hist, model);
      return {
        ok: false,
        summary: `the same observation got two decisions: ${JSON.stringify(first.decision)} and ${JSON.stringify(second.decision)} (the policy reads something besides its history and the observation: the clock, randomness, state shared between instances)`,
        lines: [
          `policy '${subject.name}', ${how}${hist.length ? `, after ${hist.length} history window(s)` : ', first call'}`,
          ...historyLines,
          `o: ${fieldsOf(first.observation).map(([k, v]) => `${k} ${v}`).join(', ')}`,
          `first decide(o)  = ${JSON.stringify(first.decision)}`,
          `second decide(o) = ${JSON.stringify(second.decision)}`,
          'replaying this case runs the same observations again; a nondeterministic policy may answer differently each time',
        ],
        data: { history: hist.map((h) => plain(observationOf(h, model, 0))), o: plain(first.observation), decisions: [first.decision, second.decision] },
      };
    },
  };
}

function m2Clause<P>(
  subject: PolicySubject,
  phase: Phase,
  pressure: fc.Arbitrary<P>,
  relieve: (pressured: ObservationSpec, d: P) => ObservationSpec,
  rules: readonly ShareRule[],
  historyMax: number,
  model: LatencyModel,
  components: readonly string[],
  shares: ShareRange | undefined,
): Clause<Case<P>> {
  const history = subject.fresh && historyMax > 0 ? fc.array(observationSpec(rules, shares), { maxLength: historyMax }) : fc.constant([] as ObservationSpec[]);
  const instances = subject.fresh ? 'a fresh instance for each of o and o′' : 'one shared instance, o then o′';
  return {
    name: phase,
    statement: `more ${phase} pressure (${components.join(', ')}), everything else equal, never lowers the ${phase} share`,
    arbitrary: fc.tuple(history, pressure, observationSpec(rules, shares)),
    verdict([past, delta, pressured]) {
      // History windows run under the same share rule; their split is whatever the policy made it.
      const hist = past.map((h) => ({ ...h, shareRule: pressured.shareRule }));
      const base = relieve(pressured, delta);
      // o and o′ have the same split (pressure never touches it), so both histories play out alike.
      const both = (): [Played, Played] =>
        subject.fresh
          ? [play(subject.fresh(), hist, base, model, subject.interval), play(subject.fresh(), hist, pressured, model, subject.interval)]
          : [play(subject.shared!, [], base, model, subject.interval), play(subject.shared!, [], pressured, model, subject.interval)];
      let before: Played;
      let after: Played;
      try {
        [before, after] = both();
      } catch (err) {
        return faultVerdict(err);
      }
      const o = before.observation;
      const oPrime = after.observation;
      const shareBefore = shareAfter(before.decision, o, phase);
      const shareAfterPressure = shareAfter(after.decision, oPrime, phase);
      if (shareAfterPressure >= shareBefore) return OK;
      const diff = diffLines(o, oPrime);
      const historyLines = historyLinesOf(hist, model);
      return {
        ok: false,
        summary: `more ${phase} pressure lowered the ${phase} share ${shareBefore} → ${shareAfterPressure} (${diff[1].slice('o → o′: '.length)})`,
        lines: [
          `policy '${subject.name}', ${instances}${hist.length ? `, after ${hist.length} history window(s)` : ', first call'}`,
          ...historyLines,
          ...diff,
          `decide(o)  = ${describeDecision(before.decision, o, phase)}`,
          `decide(o′) = ${describeDecision(after.decision, oPrime, phase)}`,
          ...(subject.fresh ? [confirmation(both, before, after)] : []),
        ],
        data: {
          phase,
          history: hist.map((h) => plain(observationOf(h, model, 0))),
          o: plain(o),
          oPrime: plain(oPrime),
          decisions: [before.decision, after.decision],
          shares: [shareBefore, shareAfterPressure],
        },
      };
    },
  };
}

/** Whether the same pair, asked of two more fresh instances, gets the same two decisions. */
function confirmation(again: () => [Played, Played], before: Played, after: Played): string {
  let repeat: [Played, Played];
  try {
    repeat = again();
  } catch (err) {
    if (!(err instanceof PolicyFault)) throw err;
    noteHang(err);
    return `asked again of two more fresh instances, the policy faulted: ${err.message} — it is not deterministic`;
  }
  const same = decisionKey(repeat[0].decision) === decisionKey(before.decision) && decisionKey(repeat[1].decision) === decisionKey(after.decision);
  return same
    ? 'asked again of two more fresh instances: the same two decisions'
    : `asked again of two more fresh instances: ${JSON.stringify(repeat[0].decision)} and ${JSON.stringify(repeat[1].decision)} — the policy is not deterministic, so this case may not replay (see clause deterministic)`;
}

/** An observation without its model (functions do not print or compare). */
function plain(obs: Observation): Omit<Observation, 'model'> {
  const { model: _model, ...rest } = obs;
  return rest;
}

/**
 * M2 for a policy: a PolicySubject (fresh instances; see policySubject) or a single PolicyHandle (shared,
 * fair only for a stateless policy).
 */
export function checkPolicyPressure(policy: PolicySubject | PolicyHandle, options: PressureCheckOptions = {}): CheckResult {
  const subject = 'decide' in policy ? subjectOfHandle(policy) : policy;
  const seed = options.seed ?? DEFAULT_SEED;
  const numRuns = options.numRuns ?? 300;
  const selected = options.clauses ?? M2_CLAUSES;
  const components = options.components ?? [...PREFILL_COMPONENTS, ...DEFAULT_DECODE_COMPONENTS];
  const historyMax = options.history ?? 3;
  const rules = options.shareRules ?? subject.shareRules;
  const profileName = options.profile ?? DEFAULT_PROFILE;
  const model = latencyModel(loadProfile(profileName));
  const prefillComponents = components.filter((c) => (PREFILL_COMPONENTS as readonly string[]).includes(c));
  const decodeComponents = components.filter((c) => !(PREFILL_COMPONENTS as readonly string[]).includes(c));
  const clauses = [
    determinismClause(subject, rules, historyMax, model, options.shares),
    m2Clause<PrefillPressure>(subject, 'prefill', prefillPressure(components), withLessPrefillPressure, rules, historyMax, model, prefillComponents, options.shares),
    m2Clause<DecodePressure>(subject, 'decode', decodePressure(components), withLessDecodePressure, rules, historyMax, model, decodeComponents, options.shares),
  ] as Clause<unknown>[];
  const run = { seed, numRuns, ...(options.path !== undefined ? { path: options.path } : {}) };
  throwNotedHang();
  const results = runClauses(clauses, selected, run);
  throwNotedHang();
  const extra: Record<string, unknown> = {};
  if (options.components) extra.components = options.components;
  if (options.history !== undefined) extra.history = options.history;
  if (options.shareRules) extra.shareRules = options.shareRules;
  if (options.shares) extra.shares = options.shares;
  if (options.profile) extra.profile = options.profile;
  const notes = [
    subject.fresh
      ? `fresh instances: o and o′ each go to a new instance, both first fed the same history (0..${historyMax} windows, splits following the decisions)`
      : 'one shared instance: o, then o′ (fair only for a stateless policy; no history is fed)',
    `observations under share rule(s) ${rules.join(', ')}${options.shares ? `, shares ${options.shares.min}..${options.shares.max}` : ''}; Observation.model from profile ${profileName}`,
  ];
  const replay = (o: object) => {
    if (subject.source === undefined) return `checkPolicyPressure(<the policy>, ${literal(o)})`;
    const loadOptions: Record<string, unknown> = {};
    if (subject.policyOptions && Object.keys(subject.policyOptions).length) loadOptions.policyOptions = subject.policyOptions;
    if (subject.shared?.isolated) loadOptions.isolate = true;
    return replayCommand('M2', subject.source, { ...loadOptions, ...o });
  };
  return assemble('M2', `policy '${subject.name}'`, results, run, extra, replay, notes);
}

/** M2 for a built-in name or module path: loads it (policySubject), checks, and closes it. */
export async function checkPolicy(nameOrPath: string, options: PressureCheckOptions & SubjectOptions = {}): Promise<CheckResult> {
  const { policyOptions, cwd, isolate, mode, ...check } = options;
  const profile = loadProfile(options.profile ?? DEFAULT_PROFILE);
  const subject = await policySubject(nameOrPath, { policyOptions, cwd, isolate, mode, profile, shareRules: options.shareRules });
  try {
    return checkPolicyPressure(subject, check);
  } finally {
    await closeSubject(subject);
  }
}
