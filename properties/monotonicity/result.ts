// What every monotonicity check returns, and the one place fast-check is run. A check is a list of clauses,
// each a single statement checked by its own fc.check with the check's seed; a failing clause is shrunk by
// fast-check and explained by re-reading the last failing run (the shrunk counterexample).
import fc from 'fast-check';

export type PropertyId = 'M1' | 'M2' | 'M3';

/** One failing case, for people (`summary`, `lines`) and for programs (`data`). */
export interface Counterexample {
  /** The clause it breaks. */
  clause: string;
  /** One line: what went wrong, with the numbers. */
  summary: string;
  /** The readable diff: the two inputs where they differ, and the two outcomes. */
  lines: string[];
  /** The same, as plain data (inputs and outputs). */
  data: Record<string, unknown>;
  /** fast-check's path to the shrunk case: with the seed, it replays exactly this case. */
  path: string;
}

export interface ClauseResult {
  clause: string;
  /** The statement checked, in one sentence. */
  statement: string;
  holds: boolean;
  /** Generated cases run (up to and including the first failure). */
  runs: number;
  /** Shrinking steps that led from the first failure to the counterexample. */
  shrinks: number;
  counterexample?: Counterexample;
}

/** The options that reproduce a result exactly when passed back to the function that produced it. */
export interface ReplayOptions {
  seed: number;
  numRuns: number;
  clauses: string[];
  /** Only with a failure: the shrunk case's path (the first failing clause's). */
  path?: string;
  [option: string]: unknown;
}

export interface CheckResult {
  property: PropertyId;
  /** What was checked: a profile, a model, a policy. */
  subject: string;
  holds: boolean;
  /** Cases run over all clauses. */
  runs: number;
  seed: number;
  clauses: ClauseResult[];
  /** The first failing clause's counterexample. */
  counterexample?: Counterexample;
  /** One command (or call) that reproduces this result: the counterexample, when there is one. */
  replay: string;
  replayOptions: ReplayOptions;
  /** How the check was made fair or restricted (fresh instances, share rules, skipped clauses). */
  notes: string[];
}

/** The outcome of one case: fine, or a failure explained. */
export type Verdict = { ok: true } | { ok: false; summary: string; lines: string[]; data: Record<string, unknown> };

export const OK: Verdict = { ok: true };

/** One statement to check: its generator and its judge. */
export interface Clause<T> {
  name: string;
  statement: string;
  arbitrary: fc.Arbitrary<T>;
  verdict(input: T): Verdict;
}

export interface RunOptions {
  seed: number;
  numRuns: number;
  /** Replays one case (with its shrinking) instead of generating `numRuns`. */
  path?: string;
}

/**
 * Runs one clause. The explanation kept is the last failing verdict: fast-check's last failing run is the
 * shrunk counterexample, and keeping it (rather than judging the counterexample again) stays right for a
 * policy whose state carries over between calls.
 */
export function runClause<T>(clause: Clause<T>, options: RunOptions): ClauseResult {
  let lastFailure: Verdict | undefined;
  const property = fc.property(clause.arbitrary, (input) => {
    let verdict: Verdict;
    try {
      verdict = clause.verdict(input);
    } catch (err) {
      verdict = { ok: false, summary: `the check itself threw: ${err instanceof Error ? err.message : String(err)}`, lines: [], data: {} };
    }
    if (!verdict.ok) lastFailure = verdict;
    return verdict.ok;
  });
  const details = fc.check(property, {
    seed: options.seed,
    numRuns: options.numRuns,
    ...(options.path !== undefined ? { path: options.path } : {}),
  });
  const base = { clause: clause.name, statement: clause.statement, runs: details.numRuns, shrinks: details.numShrinks };
  if (!details.failed) return { ...base, holds: true };
  if (details.counterexamplePath === null || lastFailure === undefined || lastFailure.ok) {
    // Interrupted or too many skips: nothing here skips or times out, so this is a bug in the check.
    throw new Error(`monotonicity clause '${clause.name}' failed without a counterexample (interrupted: ${details.interrupted})`);
  }
  const { summary, lines, data } = lastFailure;
  return { ...base, holds: false, counterexample: { clause: clause.name, summary, lines, data, path: details.counterexamplePath } };
}

/**
 * Runs the selected clauses in order. With `path`, only the first selected clause runs, replaying that
 * case: a replay names exactly the clause that failed.
 */
export function runClauses(all: readonly Clause<unknown>[], selected: readonly string[], options: RunOptions): ClauseResult[] {
  const byName = new Map(all.map((c) => [c.name, c]));
  for (const name of selected) {
    if (!byName.has(name)) throw new Error(`unknown clause '${name}' (known: ${[...byName.keys()].join(', ')})`);
  }
  const names = options.path !== undefined ? selected.slice(0, 1) : selected;
  return names.map((name) => runClause(byName.get(name)!, options));
}

/** Assembles a CheckResult; `replay` turns the options that reproduce it into a command. */
export function assemble(
  property: PropertyId,
  subject: string,
  clauses: ClauseResult[],
  options: RunOptions & Record<string, unknown>,
  extra: Record<string, unknown>,
  replay: (o: ReplayOptions) => string,
  notes: string[],
): CheckResult {
  const failed = clauses.find((c) => !c.holds);
  const replayOptions: ReplayOptions = failed
    ? { ...extra, seed: options.seed, numRuns: options.numRuns, clauses: [failed.clause], path: failed.counterexample!.path }
    : { ...extra, seed: options.seed, numRuns: options.numRuns, clauses: clauses.map((c) => c.clause) };
  return {
    property,
    subject,
    holds: failed === undefined,
    runs: clauses.reduce((sum, c) => sum + c.runs, 0),
    seed: options.seed,
    clauses,
    ...(failed ? { counterexample: failed.counterexample } : {}),
    replay: replay(replayOptions),
    replayOptions,
    notes,
  };
}

/** Quotes one shell word: as it is when it is plain, else in single quotes. */
function shellWord(word: string): string {
  return /^[\w./:=,@+-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}

/**
 * The command that replays a check: `npx pdspec monotonicity PROPERTY SUBJECT 'OPTIONS'`, where the subject is
 * a profile (M1) or a policy (M2, M3), by name or path, and the options are the replay options as JSON.
 */
export function replayCommand(property: PropertyId, subject: string, options: object): string {
  return ['npx', 'pdspec', 'monotonicity', property, subject, literal(options)].map(shellWord).join(' ');
}

/** A JavaScript literal for options, stable and readable (JSON with the keys in a fixed order). */
export function literal(value: unknown): string {
  return JSON.stringify(value);
}

/** The result as text: the verdict per clause, the counterexample, and how to replay it. */
export function formatResult(result: CheckResult): string {
  const out: string[] = [];
  out.push(`${result.property} ${result.subject}: ${result.holds ? 'holds' : 'FAILS'} (${result.runs} cases, seed ${result.seed})`);
  for (const c of result.clauses) out.push(`  ${c.holds ? 'ok  ' : 'FAIL'} ${c.clause}: ${c.statement} (${c.runs} cases${c.holds ? '' : `, ${c.shrinks} shrinks`})`);
  for (const note of result.notes) out.push(`  note: ${note}`);
  const cx = result.counterexample;
  if (cx) {
    out.push(`  counterexample (${cx.clause}, path ${cx.path}): ${cx.summary}`);
    for (const line of cx.lines) out.push(`    ${line}`);
  }
  out.push(`  replay: ${result.replay}`);
  return out.join('\n');
}

/** A number with at most `digits` significant decimals and no trailing zeros noise. */
export function num(x: number, digits = 6): string {
  if (!Number.isFinite(x)) return String(x);
  return String(Number(x.toPrecision(digits)));
}
