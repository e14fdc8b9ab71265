// What a policy module must export, checked the same way in-process and in a worker. The reasons are
// phrased to complete "cannot load policy '<path>': ...".
import type { Policy } from '../policy-api.ts';
import { firstLine } from './errors.ts';

/** A module's exports that are not a usable policy; the message is the reason. */
export class PolicyShapeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PolicyShapeError';
  }
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : typeof value;
}

/** Why a value is not a Policy, or undefined when it is one. */
export function policyShapeProblem(value: unknown): string | undefined {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return `expected a Policy object, got ${describe(value)}`;
  const p = value as Partial<Record<keyof Policy, unknown>>;
  if (typeof p.name !== 'string' || p.name.trim() === '') return "the Policy has no 'name' (a non-empty string)";
  if (typeof p.decide !== 'function') return `policy '${p.name}' has no 'decide' function`;
  if (p.claimsMonotone !== undefined && typeof p.claimsMonotone !== 'boolean') {
    return `policy '${p.name}': 'claimsMonotone' must be a boolean, got ${describe(p.claimsMonotone)}`;
  }
  if (p.interval !== undefined && !(typeof p.interval === 'number' && Number.isFinite(p.interval) && p.interval > 0)) {
    return `policy '${p.name}': 'interval' must be a positive number of seconds, got ${JSON.stringify(p.interval) ?? String(p.interval)}`;
  }
  return undefined;
}

/** The Policy a module's namespace object provides: its default export, or what its factory returns. */
export function policyFromModule(namespace: Record<string, unknown>, options: Record<string, unknown>): Policy {
  if (!('default' in namespace) || namespace.default === undefined) {
    const named = Object.keys(namespace).filter((k) => k !== 'default');
    const hint = named.length > 0 ? ` (it exports ${named.map((n) => `'${n}'`).join(', ')})` : '';
    throw new PolicyShapeError(`the module has no default export${hint}; export default a Policy or a factory (options) => Policy`);
  }
  const exported = namespace.default;
  if (typeof exported === 'function') {
    let made: unknown;
    try {
      made = (exported as (o: Record<string, unknown>) => unknown)(options);
    } catch (err) {
      throw new PolicyShapeError(`its factory threw: ${firstLine(err)}`);
    }
    const problem = policyShapeProblem(made);
    if (problem) throw new PolicyShapeError(`its factory did not return a Policy: ${problem}`);
    return made as Policy;
  }
  const problem = policyShapeProblem(exported);
  if (problem) throw new PolicyShapeError(`its default export is not a Policy or a factory: ${problem}`);
  if (Object.keys(options).length > 0) {
    throw new PolicyShapeError(`options were given (${Object.keys(options).join(', ')}) but the module exports a Policy, not a factory that takes them`);
  }
  return exported as Policy;
}
