// The Azure conversation hour under every configuration of bench/engine-azure.ts, held bit for bit against
// the committed record: the run's counts and metrics, its whole trace and every observation its policy saw.
import { describe, expect, it } from 'vitest';
import { AZURE_CONFIGS, azureRecord, readFixture } from './behaviour/record.ts';

const fixture = readFixture();

describe('behaviour record: the Azure conversation hour', () => {
  for (const config of AZURE_CONFIGS) {
    it(`${config.label}: the recorded run, trace and observations`, async () => {
      const want = fixture.azure.find((a) => a.label === config.label);
      expect(want, `no record for '${config.label}': regenerate with npx tsx test/behaviour/record.ts --write azure`).toBeDefined();
      expect(await azureRecord(config)).toEqual(want);
    });
  }
});
