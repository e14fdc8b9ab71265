// `pdspec campaign`: the property campaign — random workloads, aborts and resizes run through the engine in
// lockstep with the spec. A failure is shrunk, printed with the one command that replays it exactly, and
// written as a trace v1 file.
import type { Mode } from '../../engine/engine.ts';
import { loadPolicyInstances, PolicyFault, PolicyLoadError, type PolicyInstances } from '../../engine/policies/index.ts';
import { loadProfile } from '../../engine/profile.ts';
import { CAD_FAULT_NAMES, CAD_FAULTS, FAULT_NAMES, FAULTS, type EngineFaults } from '../../engine/faults/index.ts';
import { failureTrace, replayOf, runCampaign, sharingDetail, speculativeDetail, type CampaignFailure, type CampaignResult } from '../../properties/campaign.ts';
import { modes as allModes } from '../../properties/scenario.ts';
import { checkOutputFile, EXIT, intOption, MAX_RUNS, parseOptions, shellWord, UsageError, writeOutputFile, type Command } from '../common.ts';
import { InternalError } from '../crash.ts';

const usage = 'pdspec campaign [--runs N] [--seed N] [--modes semi-pd,nexus,disaggregated,unified] [--fault NAME] [--policy NAME|FILE] [--path PATH --replay-path R] [--out cex.jsonl] [--json]';

/** The shrunk scenario of a failure: the engine's setup, the workload and the environment's commands. */
function scenarioLines(f: CampaignFailure): string[] {
  return [
    `  engine:   ${JSON.stringify({ ...f.scenario.setup, faults: Object.keys(f.scenario.setup.faults).filter((k) => f.scenario.setup.faults[k as keyof EngineFaults]) })}`,
    `  workload: ${f.scenario.workload.map((r) => `${r.id}@${r.arrival}s ${r.prompt}→${r.output}`).join(', ')}`,
    `  commands: ${f.commands.join(', ') || '(none)'}`,
  ];
}

export function describeFailure(result: CampaignResult, replay: string, out: string | undefined): string {
  const f = result.failure!;
  if (f.property === 'crash') {
    // No trace to show or write: the engine threw before the spec could judge anything.
    return [
      `the engine crashed (an internal error, not a verdict) after ${result.runs} run(s): ${f.message}`,
      `shrunk to ${f.scenario.workload.length} request(s) and ${f.commands.length} command(s)`,
      ...scenarioLines(f),
      `replay: ${replay}`,
    ].join('\n');
  }
  const lines = [
    `violation of ${f.property} (${f.family}) after ${result.runs} run(s): ${f.message}`,
    `shrunk to ${f.scenario.workload.length} request(s) and ${f.commands.length} command(s); ${f.events.length} trace event(s) up to the violation`,
    ...scenarioLines(f),
    '  trace (last events):',
    ...f.events.slice(-12).map((e) => `    ${JSON.stringify(e)}`),
  ];
  if (out) lines.push(`written to ${out} (trace v1) — check it with: npx pdspec conform ${out}`);
  lines.push(`replay: ${replay}`);
  return lines.join('\n');
}

/** A failure as --json shows it: the crash's exception goes to the crash file, not into the JSON. */
function shownFailure(f: CampaignFailure): Omit<CampaignFailure, 'error'> {
  const { error: _error, ...shown } = f;
  return shown;
}

/** Said when the policy is one object shared by every run: its replays are exact only if it keeps no state. */
function sharedPolicyNote(name: string): string {
  return `${name} exports one Policy object, not a factory, so every run used that one object; if it keeps state between decisions, a run saw what earlier runs left and its replay may not be exact (export a factory (options) => Policy for a fresh instance per run)`;
}

/** A replay's run index is below this: a campaign of 10⁷ runs takes days, and skipping to a run costs time too. */
const MAX_PATH_RUN = 10_000_000;

/**
 * The policy deciding splits during the runs, loaded as `check` loads it (a user's module isolated), with a
 * fresh instance for every run where it can make one.
 */
async function openPolicy(name: string): Promise<PolicyInstances> {
  try {
    return await loadPolicyInstances(name, { profile: loadProfile(), isolate: 'auto' });
  } catch (err) {
    if (err instanceof PolicyLoadError) throw new UsageError(err.message);
    throw err;
  }
}

export const campaign: Command = {
  name: 'campaign',
  summary: [
    'Runs the property campaign: seeded random workloads, aborts and resizes through the engine, in lockstep',
    'with the spec (every event allowed, every invariant held, the observable state agreeing), then',
    'quiescence, no stall, no preemption cascade and output invariance. A failure is shrunk and replayable.',
    'A policy gets a fresh instance per run (one object, not a factory, is shared: then a note says so).',
    'Exit 0: every property held; 1: a violation; 2: bad input (a policy that faults); 70: the engine crashed',
    '(an internal error, not a verdict: the replay is printed, the stack is in a crash file).',
    `Fault switches (bug zoo): ${FAULT_NAMES.join(', ')}; core-attention disaggregation: ${CAD_FAULT_NAMES.join(', ')}.`,
  ].join('\n'),
  usage,
  async run(args) {
    const { values, positionals } = parseOptions(
      args,
      {
        runs: { type: 'string' },
        seed: { type: 'string' },
        modes: { type: 'string' },
        fault: { type: 'string' },
        path: { type: 'string' },
        'replay-path': { type: 'string' },
        policy: { type: 'string' },
        out: { type: 'string' },
        json: { type: 'boolean' },
      },
      usage,
    );
    if (positionals.length) throw new UsageError(`unexpected argument '${positionals[0]}'\nusage: ${usage}`);
    const runs = intOption(values.runs, 'runs', 1000, 1, MAX_RUNS);
    const seed = intOption(values.seed, 'seed', Date.now() % 1_000_000, 0);
    const modes = (values.modes ?? allModes.join(',')).split(',') as Mode[];
    for (const m of modes) if (!allModes.includes(m)) throw new UsageError(`--modes: unknown mode '${m}' (modes: ${allModes.join(', ')})`);
    const fault = values.fault;
    if (fault !== undefined && ![...FAULT_NAMES, ...CAD_FAULT_NAMES].includes(fault as never)) throw new UsageError(`unknown fault '${fault}' (faults: ${[...FAULT_NAMES, ...CAD_FAULT_NAMES].join(', ')})`);
    if (values.path !== undefined && !/^\d+(:\d+)*$/.test(values.path)) throw new UsageError(`--path must be fast-check's path, e.g. 12:3:1, got '${values.path}'`);
    if (values.path !== undefined && Number(values.path.split(':')[0]) >= MAX_PATH_RUN) throw new UsageError(`--path ${values.path}: the run index ${values.path.split(':')[0]} is beyond ${MAX_PATH_RUN - 1}, more runs than a campaign makes`);
    if (values['replay-path'] !== undefined && values.path === undefined) throw new UsageError(`--replay-path goes with the --path of the same replay command`);
    if (values.out !== undefined) checkOutputFile(values.out, '--out');
    const policy = values.policy === undefined ? null : await openPolicy(values.policy);
    const note = policy && !policy.fresh ? sharedPolicyNote(values.policy!) : undefined;
    let result: CampaignResult;
    try {
      result = runCampaign({
        seed,
        runs,
        modes,
        faults: fault ? { [fault]: true } : {},
        // The engine options the fault needs to show, as the self-test runs it (so that its replay is exact).
        ...(fault ? { extra: { ...[...FAULTS, ...CAD_FAULTS].find((f) => f.name === fault)!.options } } : {}),
        ...(values.path ? { path: values.path } : {}),
        ...(values['replay-path'] ? { replayPath: values['replay-path'] } : {}),
        ...(policy ? { policy: policy.fresh ?? policy.handle } : {}),
      });
    } catch (err) {
      // A policy that faults is bad input, named with its observation.
      if (err instanceof PolicyFault) throw new UsageError(err.message);
      throw err;
    } finally {
      await policy?.close();
    }
    if (values.path !== undefined && result.ok) {
      // A replay names one failing run: if it does not fail, it is not a replay of this campaign.
      throw new UsageError(`the replay --seed ${seed} --path ${values.path}${values['replay-path'] ? ` --replay-path '${values['replay-path']}'` : ''} runs no failing case: use a replay command exactly as a failure printed it (same modes and fault), with this version of pdspec`);
    }
    const replay = result.failure
      ? replayOf(result.failure.seed, result.failure.path, result.failure.replayPath, modes, fault, values.policy === undefined ? undefined : shellWord(values.policy))
      : `npx pdspec campaign --seed ${seed} --runs ${runs}${values.policy ? ` --policy ${shellWord(values.policy)}` : ''}`;
    const crashed = result.failure?.property === 'crash';
    if (result.failure && values.out && !crashed) writeOutputFile(values.out, `${failureTrace(result.failure, replay).join('\n')}\n`, '--out');
    if (values.json) console.log(JSON.stringify({ ...result, ...(result.failure ? { failure: shownFailure(result.failure) } : {}), replay, ...(note ? { note } : {}) }));
    else if (result.ok) console.log(`${result.runs} run(s) in ${result.seconds.toFixed(1)} s, seed ${seed}: every property held${fault ? ` (with ${fault} on!)` : ''}; ${sharingDetail(result.sharing)}; ${speculativeDetail(result.speculative)}`);
    else console.log(describeFailure(result, replay, values.out));
    if (note && !values.json) console.log(`note: ${note}`);
    // An engine crash is pdspec's own fault, never a verdict: exit 70 with a crash file, the replay printed above.
    if (crashed) throw new InternalError(`the engine crashed in a campaign run: ${result.failure!.message} (replay: ${replay})`, { cause: result.failure!.error });
    return result.ok ? EXIT.holds : EXIT.violated;
  },
};
