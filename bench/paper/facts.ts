// Step times the account of differences (docs/reproduction.md) rests on, priced by the shipped cost model
// (and by the `serial` what-if for the mixed step), so that the numbers it cites come from the same run.
import { CostModelExecutor } from '../../engine/executors/cost-model.ts';
import type { Role, StepSpec } from '../../engine/executors/step-executor.ts';
import { SHARE_MODELS } from '../../engine/kernel-model.ts';
import { attentionPairs, type Profile } from '../../engine/profile.ts';
import { WhatIfExecutor } from './whatif.ts';

function spec(role: Role, share: number, effectiveShare: number, coRunning: boolean, work: { prefill?: number; decodes?: number; context?: number }): StepSpec {
  const prefill = work.prefill ?? 0;
  const decodes = work.decodes ?? 0;
  return {
    worker: 'x',
    role,
    gpu: 0,
    share,
    effectiveShare,
    coRunning,
    items: [],
    prefillTokens: prefill,
    attentionPairs: attentionPairs(0, prefill),
    decodeItems: decodes,
    contextTokens: decodes * (work.context ?? 0),
  };
}

export function modelFacts(profile: Profile): string {
  const shipped = new CostModelExecutor(profile);
  const serial = new WhatIfExecutor(profile, { caps: false, serial: true });
  const ms = (x: number) => `${(x * 1000).toFixed(1)} ms`;
  // semi-PD's default split 80/100 while both run: each share scaled by 100 / 180.
  const p80 = (80 * 100) / 180;
  const d100 = (100 * 100) / 180;
  const rows: [string, string][] = [
    ['prefill, 1,024-token prompt: whole GPU / 80 % alone / 80 % of 80+100 co-running (44 %) / Nexus 54 % co-running', [
      shipped.stepTime(spec('prefill', 100, 100, false, { prefill: 1024 })),
      shipped.stepTime(spec('prefill', 80, 80, false, { prefill: 1024 })),
      shipped.stepTime(spec('prefill', 80, p80, true, { prefill: 1024 })),
      shipped.stepTime(spec('prefill', 54, 54, true, { prefill: 1024 })),
    ].map(ms).join(' / ')],
    ['prefill, 6,500-token prompt: whole GPU / 44 % co-running / 54 % co-running', [
      shipped.stepTime(spec('prefill', 100, 100, false, { prefill: 6500 })),
      shipped.stepTime(spec('prefill', 80, p80, true, { prefill: 6500 })),
      shipped.stepTime(spec('prefill', 54, 54, true, { prefill: 6500 })),
    ].map(ms).join(' / ')],
    ['decode, 64 requests × 500 cached tokens: whole GPU / 56 % co-running (100 of 80+100) / 46 % co-running', [
      shipped.stepTime(spec('decode', 100, 100, false, { decodes: 64, context: 500 })),
      shipped.stepTime(spec('decode', 100, d100, true, { decodes: 64, context: 500 })),
      shipped.stepTime(spec('decode', 46, 46, true, { decodes: 64, context: 500 })),
    ].map(ms).join(' / ')],
    profile.kernels
      ? ['unified step, 1,024-token chunk + 32 decodes × 6,500 cached tokens (kernel classes summed)', ms(shipped.stepTime(spec('unified', 100, 100, false, { prefill: 1024, decodes: 32, context: 6500 })))]
      : ['unified step, 1,024-token chunk + 32 decodes × 6,500 cached tokens: shipped (roofline max) / serial what-if', [
          shipped.stepTime(spec('unified', 100, 100, false, { prefill: 1024, decodes: 32, context: 6500 })),
          serial.stepTime(spec('unified', 100, 100, false, { prefill: 1024, decodes: 32, context: 6500 })),
        ].map(ms).join(' / ')],
    ['unified step, 32 decodes × 6,500 cached tokens alone (the same decodes without the chunk)', ms(shipped.stepTime(spec('unified', 100, 100, false, { decodes: 32, context: 6500 })))],
  ];
  if (profile.kernels) {
    // The same co-running steps under each share model: where the models differ.
    for (const model of SHARE_MODELS) {
      const exec = new CostModelExecutor({ ...profile, shareModel: model });
      rows.push([
        `share model ${model}: prefill 1,024 at 80 of 80+100 co-running / decode 64 × 500 at 100 of 80+100 co-running / prefill 6,500 at Nexus 54 % co-running`,
        [
          exec.stepTime(spec('prefill', 80, p80, true, { prefill: 1024 })),
          exec.stepTime(spec('decode', 100, d100, true, { decodes: 64, context: 500 })),
          exec.stepTime(spec('prefill', 54, 54, true, { prefill: 6500 })),
        ].map(ms).join(' / '),
      ]);
    }
  }
  return ['| step (profile ' + profile.name + ') | time |', '| --- | --- |', ...rows.map(([k, v]) => `| ${k} | ${v} |`)].join('\n');
}
