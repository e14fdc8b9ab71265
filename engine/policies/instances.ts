// The instances of one loaded policy and one decision of one of them, the same wherever the policy runs
// (a built-in's worker thread, a user module's sandboxed process): instance 0 exists from the start, a
// higher number is made on first use (a fresh instance), a dropped one answers 'unavailable'.
import type { LatencyModel, Policy } from '../policy-api.ts';
import { firstLine } from './errors.ts';
import { validateDecision } from './validate.ts';
import type { PlainObservation, WorkerReply } from './worker-protocol.ts';

export class InstanceTable {
  private readonly instances: Map<number, Policy>;
  private newest = 0;

  constructor(
    private readonly make: () => Policy,
    private readonly model: LatencyModel,
  ) {
    this.instances = new Map([[0, make()]]);
  }

  /** Instance 0, made at load: its name, claim and interval describe the policy. */
  get first(): Policy {
    return this.instances.get(0)!;
  }

  drop(instance: number): void {
    this.instances.delete(instance);
  }

  /** One decision of `instance`, validated; a throw, a malformed or unreadable decision is a fault. */
  answer(instance: number, plain: PlainObservation): WorkerReply {
    let policy = this.instances.get(instance);
    if (policy === undefined && instance > this.newest) {
      try {
        policy = this.make();
      } catch (err) {
        return { ok: false, kind: 'threw', detail: `making a fresh instance threw: ${firstLine(err)}` };
      }
      this.instances.set(instance, policy);
      this.newest = instance;
    }
    if (policy === undefined) return { ok: false, kind: 'unavailable', detail: `the policy is not running: instance ${instance} was dropped` };
    let raw: unknown;
    try {
      raw = policy.decide({ ...plain, model: this.model });
    } catch (err) {
      return { ok: false, kind: 'threw', detail: `decide threw: ${firstLine(err)}` };
    }
    try {
      if (raw !== null && typeof raw === 'object' && typeof (raw as { then?: unknown }).then === 'function') {
        // A Promise is a contract breach, reported below; keep its rejection from crashing the process.
        Promise.resolve(raw).catch(() => undefined);
      }
      return validateDecision(raw, plain.shareRule);
    } catch (err) {
      // A decision that cannot even be read (a Proxy or a getter that throws) is malformed, not a crash.
      return { ok: false, kind: 'malformed', detail: `malformed decision: it cannot be read (${firstLine(err)})` };
    }
  }
}
