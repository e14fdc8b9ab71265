// M2 and M3 call a policy in process (fresh instances, so that a stateful policy is compared fairly), and an
// in-process call that never returns cannot be stopped from its own thread. For a policy that is not a
// trusted built-in, the check therefore runs on a worker thread whose every decide() is watched from here
// through shared memory: a call that outlasts the time budget stops the worker and is reported as the
// policy's fault, with the observation it was given — bad input, not a hung command.
import { Worker } from 'node:worker_threads';
import { BUILTIN_POLICIES, DEFAULT_TIME_BUDGET_MS, isBuiltinPolicyName } from '../../engine/policies/index.ts';
import { PolicyHang } from './hang.ts';
import type { CheckResult } from './result.ts';

export { PolicyHang };
import { checkPolicy } from './pressure.ts';
import { checkSystem } from './system.ts';

const ENTRY = new URL('./guard-entry.mjs', import.meta.url);

/** Layout of the shared watch: Int32 [0] in a call (0/1), [1] text length; Float64 [1] call start (ms); text from byte 16. */
export const WATCH_TEXT_AT = 16;
export const WATCH_BYTES = WATCH_TEXT_AT + 1024;

/** An error the check raised on its worker (e.g. a policy that cannot be loaded), with its name and message. */
export class GuardedError extends Error {
  constructor(
    readonly errorName: string,
    message: string,
  ) {
    super(message);
    this.name = 'GuardedError';
  }
}

export type GuardedProperty = 'M2' | 'M3';

/** M2 (checkPolicy) or M3 (checkSystem), in this thread. */
export function runCheck(property: GuardedProperty, policy: string, options: Record<string, unknown>): Promise<CheckResult> {
  return property === 'M2' ? checkPolicy(policy, options) : checkSystem(policy, options);
}

/** M2 or M3 by policy name or path, stopped and reported if the policy hangs. */
export async function guardedCheck(property: GuardedProperty, policy: string, options: Record<string, unknown> = {}, budgetMs = DEFAULT_TIME_BUDGET_MS): Promise<CheckResult> {
  if (isBuiltinPolicyName(policy) && BUILTIN_POLICIES[policy].trusted) return runCheck(property, policy, options);
  const shared = new SharedArrayBuffer(WATCH_BYTES);
  const state = new Int32Array(shared, 0, 2);
  const started = new Float64Array(shared, 8, 1);
  const text = new Uint8Array(shared, WATCH_TEXT_AT);
  const worker = new Worker(ENTRY, { workerData: { property, policy, options, cwd: process.cwd(), shared } });
  return new Promise<CheckResult>((resolve, reject) => {
    let settled = false;
    const settle = (fn: () => void) => {
      if (settled) return;
      settled = true;
      clearInterval(watchdog);
      fn();
    };
    const watchdog = setInterval(() => {
      if (Atomics.load(state, 0) !== 1 || Date.now() - started[0] <= budgetMs) return;
      const observation = new TextDecoder().decode(text.slice(0, Atomics.load(state, 1)));
      void worker.terminate();
      settle(() => reject(new PolicyHang(policy, observation, budgetMs)));
    }, 25);
    worker.once('message', (m: { result?: CheckResult; error?: { name: string; message: string } }) => {
      void worker.terminate();
      settle(() => (m.result ? resolve(m.result) : reject(new GuardedError(m.error!.name, m.error!.message))));
    });
    worker.once('error', (err) => settle(() => reject(err)));
    worker.once('exit', (code) => settle(() => reject(new Error(`the monotonicity check's worker exited (code ${code}) without a result`))));
  });
}
