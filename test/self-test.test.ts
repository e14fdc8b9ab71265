// The bug zoo: every engine fault switch (Z1–Z13, Z15–Z22, and core-attention disaggregation's C1–C3) is caught by the property campaign, by the property
// the bug breaks, with a shrunk counterexample of at most 12 input events; Z14 is caught as a policy that
// does not terminate; all of it within 120 s. And with every switch off, the campaign finds nothing.
import { describe, expect, it } from 'vitest';
import { CAD_FAULT_NAMES, CAD_FAULTS, FAULT_NAMES, FAULTS } from '../engine/faults/index.ts';
import { runCampaign } from '../properties/campaign.ts';
import { modes } from '../properties/scenario.ts';
import { selfTest } from '../properties/self-test.ts';

describe('the bug zoo', () => {
  it('every fault switch is caught by the right property, shrunk to at most 12 events, all within 120 s', async () => {
    const t0 = performance.now();
    const rows = await selfTest({ seed: 1 });
    const seconds = (performance.now() - t0) / 1000;
    expect(rows.map((r) => r.id)).toEqual(['Z1', 'Z2', 'Z3', 'Z4', 'Z5', 'Z6', 'Z7', 'Z8', 'Z9', 'Z10', 'Z11', 'Z12', 'Z13', 'Z14', 'Z15', 'Z16', 'Z17', 'Z18', 'Z19', 'Z20', 'Z21', 'Z22', 'C1', 'C2', 'C3']);
    for (const r of rows) {
      expect(r.caught, `${r.id} ${r.fault}: got ${r.property}, expected ${r.expected}`).toBe(true);
      expect(r.events, `${r.id}: counterexample of ${r.events} events`).toBeLessThanOrEqual(12);
    }
    expect(seconds).toBeLessThanOrEqual(120);
    // Every switch of the engine is in the zoo's table.
    expect(new Set(FAULTS.map((f) => f.name))).toEqual(new Set(FAULT_NAMES));
    expect(new Set(CAD_FAULTS.map((f) => f.name))).toEqual(new Set(CAD_FAULT_NAMES));
  }, 180_000);

  it('with every switch off, the campaign finds nothing', () => {
    const result = runCampaign({ seed: 2, runs: 600, modes });
    expect(result.ok, JSON.stringify(result.failure?.message)).toBe(true);
    expect(result.runs).toBe(600);
  }, 120_000);
});
