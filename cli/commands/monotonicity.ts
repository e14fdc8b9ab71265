// `pdspec monotonicity`: one SLO-policy monotonicity property (M1, M2 or M3) on one profile or policy, on its
// own. Every monotonicity failure that `pdspec check` reports names the command of this form that replays it.
import { PolicyFault, PolicyLoadError } from '../../engine/policies/index.ts';
import { ProfileError } from '../../engine/profile.ts';
import { guardedCheck, GuardedError, PolicyHang } from '../../properties/monotonicity/guard.ts';
import { checkProfile, formatResult, M1_CLAUSES, M2_CLAUSES, M3_CLAUSES, type CheckResult } from '../../properties/monotonicity/index.ts';
import { EXIT, intOption, MAX_RUNS, parseOptions, UsageError, type Command } from '../common.ts';

const usage =
  "pdspec monotonicity M1|M2|M3 SUBJECT ['OPTIONS'] [--seed N] [--runs N] [--json]\n" +
  '  M1        the latency model of a profile never rewards less share or more work (SUBJECT: profile name or file)\n' +
  '  M2        more pressure on a phase never lowers its share (SUBJECT: policy name or file)\n' +
  '  M3        looser SLOs or more capacity never lower attainment (SUBJECT: policy name or file)\n' +
  "  OPTIONS   the check's options as JSON, as a replay command prints them (seed, numRuns, clauses, path, ...)\n" +
  '  --seed    seed (overrides OPTIONS); --runs: generated cases per clause (overrides OPTIONS)\n' +
  '  --json    the result as JSON\n' +
  'Exit 0: holds; 1: a counterexample (printed, with the command that replays it); 2: bad input.';

const CLAUSES = { M1: M1_CLAUSES, M2: M2_CLAUSES, M3: M3_CLAUSES } as const;

function readOptions(text: string | undefined, property: keyof typeof CLAUSES): Record<string, unknown> {
  if (text === undefined) return {};
  let options: unknown;
  try {
    options = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`OPTIONS is not valid JSON (${(err as Error).message})`);
  }
  if (options === null || typeof options !== 'object' || Array.isArray(options)) throw new UsageError('OPTIONS must be a JSON object');
  const o = options as Record<string, unknown>;
  if (o.seed !== undefined && !Number.isInteger(o.seed)) throw new UsageError(`OPTIONS.seed must be an integer, got ${JSON.stringify(o.seed)}`);
  if (o.numRuns !== undefined && !(Number.isInteger(o.numRuns) && (o.numRuns as number) > 0)) throw new UsageError(`OPTIONS.numRuns must be a positive integer, got ${JSON.stringify(o.numRuns)}`);
  if (o.numRuns !== undefined && (o.numRuns as number) > MAX_RUNS) throw new UsageError(`OPTIONS.numRuns ${o.numRuns} is beyond the limit of ${MAX_RUNS.toLocaleString('en-US')}`);
  if (o.path !== undefined && (typeof o.path !== 'string' || !/^\d+(:\d+)*$/.test(o.path))) throw new UsageError(`OPTIONS.path must be a fast-check path like "3:1:0", got ${JSON.stringify(o.path)}`);
  if (o.clauses !== undefined) {
    const known: readonly string[] = CLAUSES[property];
    if (!Array.isArray(o.clauses) || o.clauses.length === 0) throw new UsageError(`OPTIONS.clauses must be a non-empty list of ${known.join(', ')}`);
    for (const c of o.clauses) if (!known.includes(c)) throw new UsageError(`OPTIONS.clauses: unknown clause ${JSON.stringify(c)} of ${property} (known: ${known.join(', ')})`);
  }
  return o;
}

export const monotonicity: Command = {
  name: 'monotonicity',
  summary: 'Check one SLO-policy monotonicity property (M1 latency model, M2 policy, M3 system) on one profile or policy; replays a reported counterexample.',
  usage,
  async run(args: string[]): Promise<number> {
    const { values, positionals } = parseOptions(args, { seed: { type: 'string' }, runs: { type: 'string' }, json: { type: 'boolean' } }, usage);
    const [property, subject, optionsText, extra] = positionals;
    if (property !== 'M1' && property !== 'M2' && property !== 'M3') throw new UsageError(`the property must be M1, M2 or M3, got ${property === undefined ? 'nothing' : `'${property}'`}\nusage: ${usage}`);
    if (subject === undefined) throw new UsageError(`${property} needs a ${property === 'M1' ? 'profile' : 'policy'} (a name or a file)\nusage: ${usage}`);
    if (extra !== undefined) throw new UsageError(`unexpected argument '${extra}'\nusage: ${usage}`);
    const options = readOptions(optionsText, property);
    if (values.seed !== undefined) options.seed = intOption(values.seed, 'seed', 0);
    if (values.runs !== undefined) options.numRuns = intOption(values.runs, 'runs', 1, 1, MAX_RUNS);
    let result: CheckResult;
    try {
      // M2 and M3 run a policy that is not a trusted built-in on a watched worker: a hang is stopped and reported.
      result = property === 'M1' ? checkProfile(subject, options) : await guardedCheck(property, subject, options);
    } catch (err) {
      if (err instanceof PolicyLoadError || err instanceof ProfileError || err instanceof PolicyFault || err instanceof PolicyHang) throw new UsageError(err.message);
      if (err instanceof GuardedError && ['PolicyLoadError', 'ProfileError', 'PolicyFault', 'PolicyOptionError', 'PolicyHang'].includes(err.errorName)) throw new UsageError(err.message);
      throw err;
    }
    console.log(values.json ? JSON.stringify(result, null, 2) : formatResult(result));
    // A policy that throws, returns NaN or an out-of-range split, or hangs is bad input, not a counterexample.
    const cx = result.counterexample;
    if (cx && (cx.data as { fault?: unknown } | undefined)?.fault !== undefined) {
      console.error(`pdspec monotonicity: ${cx.summary}`);
      return EXIT.badInput;
    }
    return result.holds ? EXIT.holds : EXIT.violated;
  },
};
