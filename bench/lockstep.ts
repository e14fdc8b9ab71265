// Lockstep steps per second (engine + spec + every invariant + the observable-state comparison), against the
// engine stepping alone on the same workloads in the same run; and fast-check runs per second of the
// campaign. Goal: ≥ 1,000 lockstep steps per second.
import fc from 'fast-check';
import { Engine } from '../engine/engine.ts';
import { MemorySink } from '../engine/trace-sink.ts';
import { runCampaign } from '../properties/campaign.ts';
import { engineOptions, finish, start } from '../properties/lockstep.ts';
import { modes, scenario, type Scenario } from '../properties/scenario.ts';

/** Scenarios whose runs have about 200 trace events. */
function scenarios(n: number): Scenario[] {
  const out: Scenario[] = [];
  for (const sc of fc.sample(scenario(modes, {}, 8), { seed: 1, numRuns: 2000 })) {
    const probe = start(sc);
    finish(probe.judge, probe.run);
    if (probe.judge.events.length >= 150 && probe.judge.events.length <= 300) out.push(sc);
    if (out.length === n) break;
  }
  return out;
}

function time<T>(f: () => T): [T, number] {
  const t0 = performance.now();
  const r = f();
  return [r, (performance.now() - t0) / 1000];
}

const picked = scenarios(40);
const sharing = (sc: Scenario) => (sc.setup.extra as { prefixCaching?: boolean } | undefined)?.prefixCaching === true;
const speculative = (sc: Scenario) => Boolean((sc.setup.extra as { speculative?: unknown } | undefined)?.speculative);
const groups: [string, Scenario[]][] = [
  ['all', picked],
  ['trace v1 (no sharing)', picked.filter((sc) => !sharing(sc) && !speculative(sc))],
  ['trace v2 (shared KV)', picked.filter((sc) => sharing(sc) && !speculative(sc))],
  ['trace v3 (speculative decoding)', picked.filter(speculative)],
];

/** Best of three rounds: lockstep steps and seconds, and the engine alone on the same scenarios. */
function measure(group: Scenario[]) {
  let best = { lock: Infinity, alone: Infinity, lockSteps: 0, aloneSteps: 0, events: 0 };
  for (let round = 0; round < 3; round++) {
    let events = 0;
    const [lockSteps, lock] = time(() => {
      let steps = 0;
      for (const sc of group) {
        const b = start(sc);
        const stepOnce = b.run.engine.stepOnce.bind(b.run.engine);
        b.run.engine.stepOnce = () => (steps++, stepOnce());
        finish(b.judge, b.run);
        events += b.judge.events.length;
      }
      return steps;
    });
    const [aloneSteps, alone] = time(() => {
      let steps = 0;
      for (const sc of group) {
        const engine = new Engine(engineOptions(sc, new MemorySink()));
        while (!engine.done) {
          engine.stepOnce();
          steps++;
        }
      }
      return steps;
    });
    if (lock < best.lock) best = { lock, alone, lockSteps, aloneSteps, events };
  }
  return best;
}

for (const [name, group] of groups) {
  if (group.length === 0) continue;
  const best = measure(group);
  console.log(`${name}: ${group.length} workloads, ${(best.events / group.length).toFixed(0)} trace events each on average`);
  console.log(`  lockstep (engine + spec + invariants + agreement): ${(best.lockSteps / best.lock).toFixed(0)} steps/s, ${(best.events / best.lock).toFixed(0)} events/s`);
  console.log(`  engine alone, same workloads and run:              ${(best.aloneSteps / best.alone).toFixed(0)} steps/s`);
  console.log(`  ratio lockstep / engine alone: ${(best.lockSteps / best.lock / (best.aloneSteps / best.alone)).toFixed(2)}   goal ≥ 1,000 lockstep steps/s: ${best.lockSteps / best.lock >= 1000 ? 'met' : 'not met'}`);
}
const campaign = runCampaign({ seed: 3, runs: 300 });
console.log(`campaign: ${campaign.runs} fast-check runs in ${campaign.seconds.toFixed(1)} s = ${(campaign.runs / campaign.seconds).toFixed(0)} runs/s (all properties ${campaign.ok ? 'held' : 'did NOT hold'})`);
