// The engine's behaviour, held bit for bit against the committed record (test/behaviour/record.ts says what
// it holds and how to regenerate it where a change of behaviour is intended). This file: the lockstep
// campaign runs, the self-test's fault rows and the explorer's state counts; the Azure hour is in
// behaviour-record-azure.test.ts, so that the two halves run in parallel.
import { describe, expect, it } from 'vitest';
import { FAULTS } from '../engine/faults/index.ts';
import { modes } from '../properties/scenario.ts';
import { campaignGroups, campaignRecord, exploreRecord, faultRecord, readFixture } from './behaviour/record.ts';

const fixture = readFixture();

describe('behaviour record: lockstep campaign runs', () => {
  for (const group of campaignGroups()) {
    it(`${group.label}: ${group.runs} runs (seed ${group.seed}) give the recorded outcomes and traces`, async () => {
      const want = fixture.campaign.find((g) => g.label === group.label);
      expect(want, `no record for '${group.label}': regenerate with npx tsx test/behaviour/record.ts --write campaign`).toBeDefined();
      const got = await campaignRecord(group);
      const first = got.runs.findIndex((r, i) => r !== want!.runs[i]);
      expect(first, `run ${first} of '${group.label}' differs: ${got.runs[first]} (recorded ${want!.runs[first]})`).toBe(-1);
      expect(got.runs.length).toBe(want!.runs.length);
    });
  }
});

describe('behaviour record: the self-test campaign of each fault switch', () => {
  for (const f of FAULTS) {
    it(`${f.zoo} ${f.name}: caught by the recorded property, counterexample and trace`, () => {
      expect(faultRecord(f.zoo)).toEqual(fixture.faults.find((r) => r.zoo === f.zoo));
    });
  }
});

describe('behaviour record: explorer state counts at the default bound', () => {
  for (const mode of modes) {
    it(`${mode}`, () => {
      expect(exploreRecord(mode)).toEqual(fixture.explore.find((r) => r.mode === mode));
    });
  }
});

describe('behaviour record: it sees a change of behaviour', () => {
  it('the no-fault campaign with one release path changed (Z12 on) differs from the record', async () => {
    const group = campaignGroups()[0];
    const want = fixture.campaign.find((g) => g.label === group.label)!;
    const got = await campaignRecord({ ...group, runs: 200, faults: { duplicateRelease: true } });
    const differing = got.runs.filter((r, i) => r !== want.runs[i]).length;
    expect(differing).toBeGreaterThan(0);
  });
});
