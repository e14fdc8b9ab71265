// A hang during a monotonicity check: the policy's decide() did not return within its budget. It ends the
// check (one line, exit 2), whichever way it was stopped: by the guard's watchdog for an in-process policy,
// by its worker's time budget for an isolated one.
import { DEFAULT_TIME_BUDGET_MS, describeObservation, type PolicyFault } from '../../engine/policies/index.ts';

/** A policy whose decide() did not return within its budget while a monotonicity check ran it. */
export class PolicyHang extends Error {
  constructor(policy: string, observation: string, budgetMs: number) {
    super(`policy '${policy}' fault (timeout) at ${observation}: decide did not return within ${budgetMs} ms (a hang?); it was stopped`);
    this.name = 'PolicyHang';
  }
}

/**
 * A `timeout` fault of an isolated policy (its worker was stopped at the budget) ends the whole check as a
 * hang, as the guard's watchdog does for in-process ones: it is not a counterexample to shrink (the runs
 * after it only see the policy gone). The property notes the first hang of a check; the check throws it
 * once the property runner returns (a throw inside a property would only be shrunk).
 */
let firstHang: PolicyHang | null = null;

export function noteHang(fault: PolicyFault): void {
  if (fault.kind !== 'timeout' || firstHang !== null) return;
  const budget = Number(/time budget of (\d+(?:\.\d+)?) ms/.exec(fault.detail)?.[1] ?? DEFAULT_TIME_BUDGET_MS);
  firstHang = new PolicyHang(fault.policy, describeObservation(fault.observation), budget);
}

/** Throws the hang noted since the last call, if any. */
export function throwNotedHang(): void {
  const hang = firstHang;
  firstHang = null;
  if (hang) throw hang;
}
