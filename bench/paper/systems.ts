// The systems the papers compare, as engine modes, options and policies. Rates are per GPU throughout (the
// papers' convention): a system on two GPUs (DistServe 1P1D) is offered twice the per-GPU rate.
//
// Running-batch caps are each implementation's default, since they decide where a system saturates:
// vLLM's max_num_seqs is 256; SGLang (and semi-PD, a fork of SGLang 0.4.4) caps running requests at
// min(max(pool tokens / context × 512, 2048), 4096), which is 4,096 for Llama3-8B on an 80 GB GPU;
// DistServe and Nexus keep the engine's default of 256 (their defaults are not published).
import type { EngineOptions, Mode, PolicyHandle } from '../../engine/engine.ts';
import { BUILTIN_POLICIES, handleForPolicy } from '../../engine/policies/index.ts';

/** vLLM's default max_num_seqs. */
export const VLLM_MAX_BATCH = 256;
/** SGLang's default max running requests on an 80 GB GPU (model_runner: min(max(tokens / context · 512, 2048), 4096)). */
export const SGLANG_MAX_BATCH = 4096;

export interface System {
  /** Short name used in the tables. */
  id: string;
  /** What it stands for. */
  label: string;
  mode: Mode;
  gpus: 1 | 2;
  extra?: Partial<EngineOptions>;
  /** A fresh policy per run (the dynamic ones keep state); none = the epoch-0 split throughout. */
  policy?: () => PolicyHandle;
  /** The policy reads the SLO (so a run at another SLO is another run). */
  readsSlo?: boolean;
}

export const SEMI_PD: System = {
  id: 'semi-PD',
  label: 'semi-PD, Algorithm 1 (SLO-aware split, start 80/100)',
  mode: 'semi-pd',
  gpus: 1,
  extra: { maxBatch: SGLANG_MAX_BATCH },
  policy: () => handleForPolicy(BUILTIN_POLICIES['semi-pd'].create({})),
  readsSlo: true,
};

export const SEMI_PD_STATIC: System = {
  id: 'static(100,100)',
  label: 'semi-PD, static split 100/100 (MPS, no partition)',
  mode: 'semi-pd',
  gpus: 1,
  extra: { split: { prefill: 100, decode: 100 }, maxBatch: SGLANG_MAX_BATCH },
};

export const VLLM_S: System = {
  id: 'vLLM-S',
  label: 'unified, chunked prefill (SplitFuse, 1,024-token budget)',
  mode: 'unified',
  gpus: 1,
  extra: { unifiedChunk: 1024, maxBatch: VLLM_MAX_BATCH },
};

export const VLLM_D: System = {
  id: 'vLLM-D',
  label: 'unified, no chunking (whole prompts first)',
  mode: 'unified',
  gpus: 1,
  extra: { unifiedChunk: 0, maxBatch: VLLM_MAX_BATCH },
};

export const DISTSERVE: System = {
  id: 'DistServe',
  label: 'full disaggregation 1P1D on two GPUs, one KV transfer per request',
  mode: 'disaggregated',
  gpus: 2,
};

/** SGLang's default chunked-prefill size on 80 GB GPUs is 8,192 tokens (sglang server_args.py). */
export const SGLANG: System = {
  id: 'SGLang-like',
  label: 'unified, chunked prefill (8,192-token budget, SGLang default)',
  mode: 'unified',
  gpus: 1,
  extra: { unifiedChunk: 8192, maxBatch: SGLANG_MAX_BATCH },
};

export const NEXUS: System = {
  id: 'Nexus',
  label: 'Nexus: exact split (green contexts), greedy cost-model policy, start 50/50',
  mode: 'nexus',
  gpus: 1,
  policy: () => handleForPolicy(BUILTIN_POLICIES.nexus.create({})),
};

/** The systems of semi-PD's Llama comparison, semi-PD first. */
export const SEMI_PD_SYSTEMS: readonly System[] = [SEMI_PD, SEMI_PD_STATIC, VLLM_S, VLLM_D, DISTSERVE];
/** The systems of Nexus's comparison, Nexus first. */
export const NEXUS_SYSTEMS: readonly System[] = [NEXUS, VLLM_S, SGLANG, DISTSERVE];
/** Every system, for the Azure sweep. */
export const ALL_SYSTEMS: readonly System[] = [SEMI_PD, SEMI_PD_STATIC, NEXUS, VLLM_S, VLLM_D, SGLANG, DISTSERVE];
