// Builds the calibrated profiles from the tables: the A100 profile fitted on Vidur's Llama-3-8B A100 kernels,
// and the H100 profile that changes only the hardware peaks (the form and its fitted constants carry over).
// Pure: bench/calibrate.ts writes what this returns, and test/calibration.test.ts checks that the shipped
// files are what it returns from the shipped tables.
import type { KernelConstants } from '../../engine/kernel-model.ts';
import type { CalibrationProvenance, Profile } from '../../engine/profile.ts';
import { denseRows, fitKernels, predictStep, round4, summarise, type ErrorSummary } from './fit.ts';
import { fitShareCurves, type ShareRow } from './shares.ts';
import { llama2Tables, llama3A100Tables, measuredSteps, TABLE_DIR, VIDUR_LICENSE, VIDUR_SOURCE, type ModelTables } from './tables.ts';

/** Llama 2 7B (huggingface.co/meta-llama/Llama-2-7b-hf config.json): the held-back check's model on the same GPU peaks. */
export function llama2Profile(base: Profile): Profile {
  return { ...base, name: `${base.name}+llama-2-7b`, model: { ...base.model, name: 'Llama-2-7b-hf', params: 6_738_415_616, layers: 32, hiddenSize: 4096, kvHeads: 32, headDim: 128, vocabSize: 32000 } };
}

const rounded = (s: ErrorSummary) => ({ rows: s.rows, mape: round4(s.mape), maxError: round4(s.maxError) });

/** Errors of the form on every table: the fitted classes, the composed steps, and the held-back dense rows. */
export function residuals(a100: Profile, h100: Profile, k: KernelConstants, tables: { llama3: ModelTables; llama2A100: ModelTables; llama2H100: ModelTables }): CalibrationProvenance['residuals'] {
  const steps = measuredSteps(tables.llama3);
  const byKind = (kind: string) => summarise(steps.filter((s) => s.kind === kind).map((s) => [predictStep(a100, k, s), s.seconds]));
  const dense = (p: Profile, t: ModelTables) => summarise(denseRows(p, k, t).map((r) => [r.predicted, r.measured]));
  return {
    'steps.prefill': rounded(byKind('prefill')),
    'steps.decode': rounded(byKind('decode')),
    'steps.mixed': rounded(byKind('mixed')),
    'dense.a100.llama3-8b': rounded(dense(a100, tables.llama3)),
    'heldBack.dense.a100.llama2-7b': rounded(dense(llama2Profile(a100), tables.llama2A100)),
    'heldBack.dense.h100.llama2-7b': rounded(dense(llama2Profile(h100), tables.llama2H100)),
  };
}

/** The fitted constants, flattened with their paths (the provenance's `fitted`). */
export function flatten(k: KernelConstants, prefix = 'kernels'): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [key, v] of Object.entries(k)) {
    if (typeof v === 'number') out[`${prefix}.${key}`] = v;
    else Object.assign(out, flatten(v as KernelConstants, `${prefix}.${key}`));
  }
  return out;
}

const NOTICE =
  'Kernel latencies: Vidur profiling data (microsoft/vidur commit 7d47513363ec447a741ac5e47241580b47724fbf, data/profiling/), MIT License, Copyright (c) Microsoft Corporation; Agrawal et al., Vidur, MLSys 2024. A kernel-only lower bound of a mid-2024 stack (Sarathi-Serve profiler, FlashInfer, TP 1) on A100; no MPS or green-context measurements; the attention rows are a sample.';

/** Builds both calibrated profiles. `shares`: measured share rows (bench/measure-shares.ts) to fit the share curves from. */
export function calibratedProfiles(baseA100: Profile, baseH100: Profile, options: { tableDir?: string; shares?: { file: string; rows: ShareRow[] } } = {}): { a100: Profile; h100: Profile } {
  const dir = options.tableDir ?? TABLE_DIR;
  const tables = { llama3: llama3A100Tables(dir), llama2A100: llama2Tables('a100', dir), llama2H100: llama2Tables('h100', dir) };
  const kernels = fitKernels(baseA100, tables.llama3);
  const attention = tables.llama3.attention;
  const count = (kind: string) => attention.filter((r) => r.kind === kind).length;
  const ops = tables.llama3.operators.tokens;
  const rows = [
    `a100-llama3-8b-mlp.csv: ${ops.length} token counts ${ops[0]}–${ops[ops.length - 1]} at TP 1 (medians, duplicate counts averaged): dense layers (${9} operators summed per layer) and embedding`,
    `a100-llama3-8b-attention.csv: ${count('prefill_full')} prefill_full and ${count('prefill_chunk')} prefill_chunk rows (prefill attention), ${count('decode')} decode rows (decode attention)`,
    'held back, not fitted: a100-llama2-7b-mlp.csv and h100-llama2-7b-mlp.csv dense rows (TP 1)',
  ];
  const share = options.shares ? fitShareCurves(options.shares.rows) : undefined;
  const shareCurve = share
    ? { prefill: { a: share.prefill.a, b: share.prefill.b, lambda: 0, saturation: 1 }, decode: { a: share.decode.a, b: share.decode.b, saturation: 1 } }
    : // semi-PD's published fit as published: no saturation share of ours on top of it.
      { prefill: { ...baseA100.shareCurve.prefill, lambda: 0, saturation: 1 }, decode: { ...baseA100.shareCurve.decode, saturation: 1 } };
  const notes = [
    'Form and terms: engine/kernel-model.ts and docs/profiles.md. Errors are of kernel time against the composed steps (bench/calibration/tables.ts): stepOverhead (host time) is not in the tables and stays an assumption.',
    'The LM head has no column in the tables; composed steps charge it as the up-projection GEMM scaled by weight size.',
    'bandwidthSaturationShare and contention are assumptions (the tables hold no partial-share measurements).',
    share
      ? `shareCurve fitted to ${options.shares!.rows.length} measured rows of ${options.shares!.file} (slowdown a/s + b, a + b = 1): prefill a ${share.prefill.a} (MAPE ${share.prefill.mape}), decode a ${share.decode.a} (MAPE ${share.decode.mape})`
      : "shareCurve: semi-PD's published Llama3-8B fit (arXiv 2504.19867, Fig. 10), measured with both phases running; used by shareModel 'semi-pd-fit' only.",
  ];
  const build = (base: Profile, name: string, gpuNote: string, derivedFrom?: string): Profile => ({
    name,
    description: `Llama 3 8B (BF16) on one ${base.gpu.name}: the kernel-class cost model with constants fitted to Vidur's measured A100 kernel latencies${derivedFrom ? ', hardware peaks changed to this GPU' : ''}. ${gpuNote} See docs/profiles.md.`,
    model: base.model,
    gpu: base.gpu,
    efficiency: { compute: kernels.dense.computeEfficiency, memory: kernels.dense.memoryEfficiency },
    stepOverhead: base.stepOverhead,
    shareCurve,
    contention: base.contention,
    memoryFraction: base.memoryFraction,
    transfer: base.transfer,
    resize: base.resize,
    sources: [
      NOTICE,
      ...(base.sources ?? []).slice(0, 2), // the model's config and the GPU's datasheet
      "Hong et al., semi-PD (arXiv 2504.19867): fitted forms TTFT(x) = a1/(x - lambda) + b1, TPOT(y) = a2/y + b2 with a1 0.6809, b1 0.022, a2 0.6284, b2 0.3818 for Llama3-8B, measured with both phases running (shareModel 'semi-pd-fit')",
      "Shi, Cai, Du, Jia, Nexus (arXiv 2507.06608): co-running prefill and decode contend for memory bandwidth, and GPU resources show diminishing returns past a saturation point; the contention factors and the bandwidth saturation share 0.5 are this project's assumptions in that shape (shareModels 'caps' and 'slices')",
    ],
    kernels,
    shareModel: 'slices',
    calibration: {
      source: VIDUR_SOURCE,
      license: VIDUR_LICENSE,
      rows,
      fitted: flatten(kernels),
      residuals: residuals(baseA100, baseH100, kernels, tables),
      ...(derivedFrom ? { derivedFrom } : {}),
      notes,
    },
  });
  return {
    a100: build(baseA100, 'llama3-8b-a100-vidur', 'Fitted on this GPU.'),
    h100: build(baseH100, 'llama3-8b-h100-vidur', 'No Llama-3-8B H100 measurements exist in the tables: only the peaks differ from the A100 fit; the held-back Llama-2-7B H100 dense rows measure how well that transfers.', 'llama3-8b-a100-vidur'),
  };
}
