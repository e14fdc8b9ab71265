// bench/paper: the capacity search, the rebuilt paper workloads, and the shape of the reproduction table.
import { describe, expect, it } from 'vitest';
import { paperScenario, SEMI_PD_SETTINGS, semiPdCapacities, semiPdTable, type Sizes } from '../bench/paper/reproduce.ts';
import { Runner, searchCapacity } from '../bench/paper/search.ts';
import { SEMI_PD_SYSTEMS, VLLM_S } from '../bench/paper/systems.ts';
import { lengthStats, NEXUS_LONG, NEXUS_MID, paperWorkload, SHAREGPT } from '../bench/paper/workloads.ts';
import { defaultBlocks, loadProfile } from '../engine/profile.ts';

const profile = loadProfile('llama3-8b-a100');
const runner = () => new Runner({ profile, blocks: defaultBlocks(profile, 16), blockSize: 16 });

describe('capacity search', () => {
  it('finds a threshold of a falling attainment within the bisection precision, from above and from below', () => {
    for (const threshold of [0.37, 3.1, 17, 240]) {
      for (const start of [1, 50]) {
        const r = searchCapacity((rate) => (rate <= threshold ? 0.95 : 0.5), { start, steps: 4 });
        expect(r.capacity).toBeLessThanOrEqual(threshold);
        expect(r.failsAt).toBeGreaterThan(threshold);
        expect(r.failsAt / r.capacity).toBeLessThanOrEqual(1.25 ** (1 / 16) * (1 + 1e-9));
      }
    }
  });

  it('reports no capacity below its floor rather than searching forever', () => {
    const r = searchCapacity(() => 0, { start: 1, min: 0.01 });
    expect(r.capacity).toBe(0);
    expect(r.points.length).toBeLessThan(25);
  });
});

describe('paper workloads', () => {
  it('serve the published means (ShareGPT 161 / 338, Nexus 5,905 / 180 and 3,832 / 200) within 3 %', () => {
    const cases: [typeof SHAREGPT, number, number][] = [
      [SHAREGPT, 161.31, 337.99],
      [NEXUS_LONG, 5905, 180],
      [NEXUS_MID, 3832, 200],
    ];
    for (const [w, prompt, output] of cases) {
      const s = lengthStats(w, 20000, 7);
      expect(Math.abs(s.prompt / prompt - 1), `${w.name} prompt mean ${s.prompt}`).toBeLessThan(0.03);
      expect(Math.abs(s.output / output - 1), `${w.name} output mean ${s.output}`).toBeLessThan(0.03);
    }
  });

  it('give the same requests at every rate, with arrivals scaled by the rate', () => {
    const a = paperWorkload(SHAREGPT, 2, 50, 3);
    const b = paperWorkload(SHAREGPT, 8, 50, 3);
    expect(b.map((r) => [r.prompt, r.output])).toEqual(a.map((r) => [r.prompt, r.output]));
    for (let i = 0; i < a.length; i++) expect(b[i].arrival * 4).toBeCloseTo(a[i].arrival, 9);
  });
});

describe('the reproduction', () => {
  it('attainment of a fixed system never rises with the rate (the premise of the bisection)', () => {
    const r = runner();
    const scenario = paperScenario(SHAREGPT, 300);
    const slo = SEMI_PD_SETTINGS[0].slo;
    let previous = Number.POSITIVE_INFINITY;
    for (let rate = 8; rate <= 40; rate *= 1.25) {
      const a = r.attainment(VLLM_S, scenario, rate, 1, slo);
      expect(a, `attainment at ${rate.toFixed(2)} req/s`).toBeLessThanOrEqual(previous);
      previous = a;
    }
    expect(previous).toBeLessThan(0.9);
  });

  it('has one row per published setting, a capacity for every system, and the paper ratios beside them', () => {
    const sizes: Sizes = { seeds: [1], short: 120, long: 60, azure: 60, steps: 1 };
    const results = semiPdCapacities(runner(), sizes);
    expect(results.map((r) => r.setting.id)).toEqual(SEMI_PD_SETTINGS.map((s) => s.id));
    for (const r of results) {
      expect(r.caps.map((c) => c.system.id)).toEqual(SEMI_PD_SYSTEMS.map((s) => s.id));
      for (const c of r.caps) expect(c.mean, `${r.setting.id}: ${c.system.id}`).toBeGreaterThan(0);
    }
    const table = semiPdTable(results);
    for (const s of SEMI_PD_SETTINGS) expect(table).toContain(s.id);
    expect(table).toContain('1.55×');
  });
});
