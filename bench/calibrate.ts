// Fits the kernel-class cost model to the measured tables and writes the calibrated profiles with their
// provenance (docs/profiles.md). Deterministic: the same tables give the same files, byte for byte.
//
//   npm run calibrate [-- --out DIR] [--tables DIR] [--shares FILE]
//
//   --out DIR      where to write llama3-8b-{a100,h100}-vidur.json (default data/profiles)
//   --tables DIR   the measured kernel tables (default data/vidur-profiling)
//   --shares FILE  a share table (bench/measure-shares.ts) to fit the share curves from, in place of
//                  semi-PD's published fit
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadProfile, PROFILE_DIR, ProfileError, validateProfile } from '../engine/profile.ts';
import { calibratedProfiles } from './calibration/build.ts';
import { readShareTable, ShareTableError } from './calibration/shares.ts';
import { TABLE_DIR, TableError } from './calibration/tables.ts';

function fail(message: string): never {
  console.error(`calibrate: ${message}`);
  process.exit(2);
}

let values: { out?: string; tables?: string; shares?: string };
try {
  values = parseArgs({ options: { out: { type: 'string' }, tables: { type: 'string' }, shares: { type: 'string' } } }).values;
} catch (err) {
  fail((err as Error).message);
}

try {
  const shares = values.shares ? { file: values.shares, rows: readShareTable(values.shares) } : undefined;
  const { a100, h100 } = calibratedProfiles(loadProfile('llama3-8b-a100'), loadProfile('llama3-8b-h100'), { tableDir: values.tables ?? TABLE_DIR, shares });
  const out = values.out ?? PROFILE_DIR;
  for (const p of [a100, h100]) {
    validateProfile(JSON.parse(JSON.stringify(p)), p.name);
    const file = join(out, `${p.name}.json`);
    writeFileSync(file, `${JSON.stringify(p, null, 2)}\n`);
    console.log(`wrote ${file}`);
  }
  const r = a100.calibration!.residuals;
  const pct = (x: number) => `${(x * 100).toFixed(1)} %`;
  console.log(`kernel-time MAPE on the A100 Llama-3-8B steps: prefill ${pct(r['steps.prefill'].mape)}, decode ${pct(r['steps.decode'].mape)}, mixed ${pct(r['steps.mixed'].mape)}`);
  console.log(`held back (dense rows, Llama-2-7B): A100 ${pct(r['heldBack.dense.a100.llama2-7b'].mape)}, H100 ${pct(r['heldBack.dense.h100.llama2-7b'].mape)}`);
  console.log('per-row errors: npm run bench:calibration');
} catch (err) {
  if (err instanceof TableError || err instanceof ShareTableError || err instanceof ProfileError) fail(err.message);
  throw err;
}
