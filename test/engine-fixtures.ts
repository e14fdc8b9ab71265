// Shared pieces of the engine tests: the profile, small workloads, a tiny local policy that resizes often,
// and running an engine into a checked trace.
import { Engine, MODES as ENGINE_MODES, type EngineOptions, type Mode, type PolicyHandle, type RunResult } from '../engine/engine.ts';
import { loadProfile, type Profile } from '../engine/profile.ts';
import { MemorySink } from '../engine/trace-sink.ts';
import { parseLength, synthetic } from '../engine/workloads/synthetic.ts';
import type { WorkloadRequest } from '../engine/workloads/types.ts';
import { checkText, formatVerdict, type Verdict } from '../spec/checker.ts';

export const PROFILE: Profile = loadProfile('llama3-8b-h100');
export const MODES: readonly Mode[] = ENGINE_MODES;

/** A static split policy: keeps whatever split the engine starts with. */
export const keepSplit: PolicyHandle = { name: 'keep', interval: 1, decide: () => ({}) };

/** Cycles through splits every `interval` seconds (and flips the prefill order): many resizes. */
export function cyclingPolicy(mode: Mode, interval = 0.05): PolicyHandle {
  let tick = 0;
  return {
    name: 'cycling',
    interval,
    decide() {
      tick++;
      const p = 10 + ((tick * 37) % 81);
      return {
        split: mode === 'nexus' ? { prefill: p, decode: 100 - p } : { prefill: p, decode: 20 + ((tick * 53) % 81) },
        prefillOrder: tick % 2 === 0 ? 'fcfs' : 'shortest-prompt-first',
      };
    },
  };
}

export function smallWorkload(seed: number, n: number, opts: { prompt?: string; output?: string; rate?: number; abortFraction?: number; abortAfter?: number } = {}): WorkloadRequest[] {
  return synthetic({
    arrivals: { kind: 'poisson' },
    rate: opts.rate ?? 30,
    requests: n,
    prompt: parseLength(opts.prompt ?? 'uniform:1:200', 'prompt'),
    output: parseLength(opts.output ?? 'uniform:1:40', 'output'),
    seed,
    abortFraction: opts.abortFraction ?? 0,
    abortAfter: opts.abortAfter ?? 0.3,
  });
}

export interface TracedRun {
  result: RunResult;
  text: string;
  verdict: Verdict;
  sink: MemorySink;
}

/** Runs an engine with an in-memory trace and checks the trace with quiescence. */
export function tracedRun(options: Omit<EngineOptions, 'trace' | 'profile'> & { profile?: Profile }): TracedRun {
  const sink = new MemorySink();
  const engine = new Engine({ profile: PROFILE, ...options, trace: sink });
  const result = engine.runToCompletion();
  const text = sink.text();
  return { result, text, verdict: checkText(text, { quiescent: true }), sink };
}

/** The verdict in words, for assertion messages. */
export function explain(v: Verdict): string {
  return formatVerdict('trace', v);
}
