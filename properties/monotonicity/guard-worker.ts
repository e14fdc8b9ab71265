// The worker side of guard.ts: publishes every in-process decide() (its start and its observation) to the
// shared watch, runs the check, and posts the result or the error.
import { parentPort, workerData } from 'node:worker_threads';
import { describeObservation, summarizeObservation, watchInProcessDecisions } from '../../engine/policies/index.ts';
import { runCheck, WATCH_TEXT_AT, type GuardedProperty } from './guard.ts';

const { property, policy, options, cwd, shared } = workerData as { property: GuardedProperty; policy: string; options: Record<string, unknown>; cwd: string; shared: SharedArrayBuffer };
const state = new Int32Array(shared, 0, 2);
const started = new Float64Array(shared, 8, 1);
const text = new Uint8Array(shared, WATCH_TEXT_AT);
const encoder = new TextEncoder();

watchInProcessDecisions({
  begin(observation) {
    const { written } = encoder.encodeInto(describeObservation(summarizeObservation(observation)), text);
    Atomics.store(state, 1, written);
    started[0] = Date.now();
    Atomics.store(state, 0, 1);
  },
  end() {
    Atomics.store(state, 0, 0);
  },
});

try {
  const result = await runCheck(property, policy, { cwd, ...options });
  parentPort!.postMessage({ result });
} catch (err) {
  parentPort!.postMessage({ error: { name: (err as Error).name ?? 'Error', message: (err as Error).message ?? String(err) } });
}
