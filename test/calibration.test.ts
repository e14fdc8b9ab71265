// The calibrated cost model: the fitter reproduces the shipped profiles from the copied tables, the errors
// stay within the goals, the share models behave as docs/profiles.md says (monotone in the share, contention
// counted once), the share table the measurement recipe writes is what the fitter reads, and bad profiles
// are refused with one line naming the field.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { calibratedProfiles } from '../bench/calibration/build.ts';
import { reportSources } from '../cli/report/results.ts';
import { predictStep, summarise } from '../bench/calibration/fit.ts';
import { fitShareCurve, formatShareTable, parseShareTable, ShareTableError, type ShareRow } from '../bench/calibration/shares.ts';
import { composeStep, llama3A100Tables, measuredSteps, TABLE_DIR } from '../bench/calibration/tables.ts';
import { CostModelExecutor } from '../engine/executors/cost-model.ts';
import type { StepItem, StepSpec } from '../engine/executors/step-executor.ts';
import { SHARE_MODELS, type ShareModel } from '../engine/kernel-model.ts';
import { attentionPairs, CHECK_PROFILE, latencyModel, loadProfile, PROFILE_DIR, ProfileError, validateProfile, type Profile } from '../engine/profile.ts';

const A100 = loadProfile('llama3-8b-a100-vidur');
const shippedJson = (name: string) => JSON.parse(readFileSync(join(PROFILE_DIR, `${name}.json`), 'utf8'));

describe('the fit', () => {
  const built = calibratedProfiles(loadProfile('llama3-8b-a100'), loadProfile('llama3-8b-h100'));

  it('reproduces both shipped calibrated profiles from the tables in the repository', () => {
    expect(JSON.parse(JSON.stringify(built.a100))).toEqual(shippedJson('llama3-8b-a100-vidur'));
    expect(JSON.parse(JSON.stringify(built.h100))).toEqual(shippedJson('llama3-8b-h100-vidur'));
  });

  it('changes only the hardware peaks between the A100 fit and the H100 profile', () => {
    const { a100, h100 } = built;
    expect(h100.kernels).toEqual(a100.kernels);
    expect(h100.gpu.denseFlops).toBe(989e12);
    expect(h100.gpu.hbmBytesPerSecond).toBe(3.35e12);
    expect(h100.calibration!.derivedFrom).toBe('llama3-8b-a100-vidur');
  });

  it('meets the error goals per step kind on the A100 Llama-3-8B steps', () => {
    const steps = measuredSteps(llama3A100Tables());
    const mape = (kind: string) => summarise(steps.filter((s) => s.kind === kind).map((s) => [predictStep(A100, A100.kernels!, s), s.seconds])).mape;
    expect(mape('prefill')).toBeLessThanOrEqual(0.05);
    expect(mape('decode')).toBeLessThanOrEqual(0.05);
    expect(mape('mixed')).toBeLessThanOrEqual(0.08);
    expect(A100.calibration!.residuals['steps.prefill'].mape).toBeCloseTo(mape('prefill'), 3);
  });

  it('composes a step the way the data README says (a 1,024-token prompt: about 79 ms of kernels)', () => {
    const t = llama3A100Tables();
    const attention = t.attention.find((r) => r.kind === 'prefill_full' && r.size === 1024)!;
    const seconds = composeStep(t, { tokens: 1024, attentionPerLayer: attention.seconds, logits: 1 });
    expect(seconds).toBeGreaterThan(0.078);
    expect(seconds).toBeLessThan(0.081);
  });

  it('reads the tables from the repository, not from outside it', () => {
    expect(TABLE_DIR).toBe(join(import.meta.dirname, '..', 'data', 'vidur-profiling'));
  });
});

// ---------------------------------------------------------------------------------------------------------

function item(phase: 'prefill' | 'decode', startPos: number, tokens: number, producesToken = true): StepItem {
  return { req: 'r', seed: 1, prompt: 4096, phase, startPos, tokens, producesToken, draft: 0, blockTable: [], generated: null, prefixSeed: 0, prefixLength: 0 };
}

function prefillStep(share: number, effectiveShare: number, coRunning: boolean, tokens = 1024, start = 0): StepSpec {
  return { worker: 'P0', role: 'prefill', gpu: 0, share, effectiveShare, coRunning, items: [item('prefill', start, tokens)], prefillTokens: tokens, attentionPairs: attentionPairs(start, tokens), decodeItems: 0, contextTokens: 0 };
}

function decodeStep(share: number, effectiveShare: number, coRunning: boolean, batch = 64, context = 1000): StepSpec {
  return { worker: 'D0', role: 'decode', gpu: 0, share, effectiveShare, coRunning, items: Array.from({ length: batch }, () => item('decode', context, 1)), prefillTokens: 0, attentionPairs: 0, decodeItems: batch, contextTokens: batch * context };
}

const withModel = (model: ShareModel, over: Partial<Profile> = {}): CostModelExecutor => new CostModelExecutor({ ...A100, ...over, shareModel: model });

describe('the share models', () => {
  it('agree on the whole GPU with no co-runner, and match the latency model there', () => {
    const times = SHARE_MODELS.map((m) => withModel(m).stepTime(prefillStep(100, 100, false)));
    expect(times[1]).toBeCloseTo(times[0], 12);
    expect(times[2]).toBeCloseTo(times[0], 12);
    expect(latencyModel(A100).prefillTime(100, 1024)).toBeCloseTo(times[0], 12);
    expect(latencyModel(A100).decodeTime(100, 64, 64_000)).toBeCloseTo(withModel('slices').stepTime(decodeStep(100, 100, false)), 12);
  });

  it('are monotone: a larger share never makes a step slower', () => {
    for (const model of SHARE_MODELS) {
      const exec = withModel(model);
      for (const coRunning of [false, true]) {
        let prefillBefore = Infinity;
        let decodeBefore = Infinity;
        for (let share = 5; share <= 100; share += 5) {
          const p = exec.stepTime(prefillStep(share, share, coRunning));
          const d = exec.stepTime(decodeStep(share, share, coRunning));
          expect(p, `${model} prefill at ${share} %`).toBeLessThanOrEqual(prefillBefore);
          expect(d, `${model} decode at ${share} %`).toBeLessThanOrEqual(decodeBefore);
          prefillBefore = p;
          decodeBefore = d;
        }
        expect(exec.stepTime(prefillStep(20, 20, coRunning))).toBeGreaterThan(exec.stepTime(prefillStep(100, 100, coRunning)));
      }
    }
  });

  it('semi-pd-fit adds no contention: its curve was measured with both phases running', () => {
    const exec = withModel('semi-pd-fit');
    expect(exec.stepTime(prefillStep(80, 80 * (100 / 180), true))).toBe(exec.stepTime(prefillStep(80, 80, false)));
    expect(exec.stepTime(decodeStep(100, 100 * (100 / 180), true))).toBe(exec.stepTime(decodeStep(100, 100, false)));
  });

  it('caps keep the worker’s own share; slices take the effective share; neither counts SMs twice', () => {
    const over = 80 * (100 / 180);
    const caps = withModel('caps');
    const slices = withModel('slices');
    expect(caps.stepTime(prefillStep(80, over, true))).toBe(caps.stepTime(prefillStep(80, 80, true)));
    expect(slices.stepTime(prefillStep(80, over, true))).toBe(slices.stepTime(prefillStep(over, over, true)));
    expect(slices.stepTime(prefillStep(80, over, true))).toBeGreaterThan(caps.stepTime(prefillStep(80, over, true)));
  });

  it('count bandwidth contention once, on memory-bound kernels only', () => {
    for (const model of ['caps', 'slices'] as const) {
      const none = withModel(model, { contention: { prefill: 0, decode: 0 } });
      expect(none.stepTime(decodeStep(60, 60, true))).toBe(none.stepTime(decodeStep(60, 60, false)));
      const exec = withModel(model);
      const alone = exec.stepTime(decodeStep(60, 60, false));
      const together = exec.stepTime(decodeStep(60, 60, true));
      // More than alone, but less than the whole step stretched: host time and compute are not contended.
      expect(together).toBeGreaterThan(alone);
      expect(together).toBeLessThan(alone * (1 + A100.contention.decode));
    }
  });

  it('price a chunk over a cached prefix above the same chunk alone, with the prefix pairs at their own efficiency', () => {
    const exec = withModel('slices');
    const fresh = exec.stepTime(prefillStep(100, 100, false, 512, 0));
    const over = exec.stepTime(prefillStep(100, 100, false, 512, 8192));
    expect(over).toBeGreaterThan(fresh);
    const equalEfficiency = new CostModelExecutor({ ...A100, kernels: { ...A100.kernels!, prefillAttention: { ...A100.kernels!.prefillAttention, prefixPairEfficiency: A100.kernels!.prefillAttention.pairEfficiency } } });
    expect(equalEfficiency.stepTime(prefillStep(100, 100, false, 512, 8192))).toBeLessThan(over);
  });

  it('charge the LM head only on tokens that produce logits', () => {
    const exec = withModel('slices');
    const last = prefillStep(100, 100, false, 1024);
    const middle: StepSpec = { ...last, items: [item('prefill', 0, 1024, false)] };
    expect(exec.stepTime(middle)).toBeLessThan(exec.stepTime(last));
  });
});

// ---------------------------------------------------------------------------------------------------------

describe('the share table', () => {
  const rows: ShareRow[] = [];
  const a = 0.7;
  for (const share of [25, 50, 75, 100]) {
    rows.push({ phase: 'prefill', share, tokens: 256, context: 0, seconds: 0.01 * (a / (share / 100) + 1 - a) });
    rows.push({ phase: 'decode', share, tokens: 16, context: 256, seconds: 0.002 * (0.3 / (share / 100) + 0.7) });
  }

  it('is read back as bench/measure-shares.ts writes it, and the fit recovers the curve', () => {
    const parsed = parseShareTable(formatShareTable(rows, 'measured on a test double'), 'shares.csv');
    expect(parsed).toHaveLength(rows.length);
    expect(fitShareCurve(parsed, 'prefill').a).toBeCloseTo(0.7, 3);
    expect(fitShareCurve(parsed, 'decode').a).toBeCloseTo(0.3, 3);
  });

  it('refuses a bad table with one line naming the row and column', () => {
    expect(() => parseShareTable('phase,share\n', 'x.csv')).toThrow(/^x\.csv: the first line must be/);
    expect(() => parseShareTable('phase,share_percent,tokens,context,seconds\nprefill,0,1,0,1\n', 'x.csv')).toThrow(/x\.csv: row 2: share_percent must be in \(0, 100\]/);
    expect(() => parseShareTable('phase,share_percent,tokens,context,seconds\nmixed,50,1,0,1\n', 'x.csv')).toThrow(ShareTableError);
    expect(() => fitShareCurve([{ phase: 'decode', share: 50, tokens: 1, context: 1, seconds: 1 }], 'decode')).toThrow(/nothing to fit/);
  });
});

describe('profile validation of the kernel form', () => {
  const raw = () => shippedJson('llama3-8b-a100-vidur');

  it('accepts the shipped calibrated profiles and the first ones, and npm start uses a calibrated one', () => {
    for (const name of ['llama3-8b-a100-vidur', 'llama3-8b-h100-vidur', 'llama3-8b-a100', 'llama3-8b-h100']) expect(loadProfile(name).name).toBe(name);
    expect(loadProfile(CHECK_PROFILE).calibration?.source).toContain('microsoft/vidur');
  });

  it('the report of a calibrated profile names the measured data and its license', () => {
    const sources = reportSources(loadProfile(CHECK_PROFILE));
    const text = [sources.profile, ...sources.notes].join('\n');
    expect(text).toContain('microsoft/vidur commit 7d47513363ec447a741ac5e47241580b47724fbf');
    expect(text).toContain('MIT License');
    expect(reportSources(loadProfile('llama3-8b-h100')).notes.join('\n')).not.toContain('vidur');
  });

  it('names the bad field in one line', () => {
    const bad = raw();
    bad.kernels.dense.computeEfficiency = 1.5;
    expect(() => validateProfile(bad, 'p')).toThrow(/^p: field 'kernels\.dense\.computeEfficiency' must be a finite number > 0 and ≤ 1, got 1\.5$/);
    const missing = raw();
    delete missing.kernels.decodeAttention.kvEfficiency;
    expect(() => validateProfile(missing, 'p')).toThrow(/field 'kernels\.decodeAttention\.kvEfficiency'/);
    const model = raw();
    model.shareModel = 'halves';
    expect(() => validateProfile(model, 'p')).toThrow(/field 'shareModel' must be one of semi-pd-fit, caps, slices, got "halves"/);
    const legacy = shippedJson('llama3-8b-a100');
    legacy.shareModel = 'caps';
    expect(() => validateProfile(legacy, 'p')).toThrow(/field 'shareModel' applies only to a profile with 'kernels'/);
    for (const e of [bad, missing, model, legacy]) {
      try {
        validateProfile(e, 'p');
      } catch (err) {
        expect(err).toBeInstanceOf(ProfileError);
        expect((err as Error).message).not.toContain('\n');
      }
    }
  });
});
