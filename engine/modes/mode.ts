// A serving mode as an object: its epoch-0 workers, the scheduler of each worker role, and what happens when
// a request's prefill completes. co-located.ts (semi-PD and Nexus, which differ by parameters),
// disaggregated.ts (with the KV connector) and unified.ts implement it; modes/index.ts picks one.
import type { Role } from '../executors/step-executor.ts';
import { EngineBugError } from '../kv/block-pool.ts';
import type { Split } from '../policy-api.ts';
import type { Rooms } from '../rooms.ts';
import { AsyncDecodeScheduler } from '../sched/async.ts';
import { DecodeScheduler } from '../sched/decode.ts';
import type { RoleScheduler } from '../sched/scheduler.ts';
import type { Req, Transfer, Worker } from '../state.ts';
import type { ModeInfo } from './info.ts';

export interface WorkerDecl {
  id: string;
  role: Role;
  share: number;
  gpu: number;
}

export type RoleSchedulers = Partial<Record<Role, RoleScheduler>>;

export abstract class ServingMode {
  /** Whether a decode worker's FIFO order is part of the protocol (observe() shows it); not across GPUs. */
  readonly fifoIsProtocol: boolean = true;

  constructor(
    readonly info: ModeInfo,
    protected readonly rooms: Rooms,
  ) {}

  /** The workers of epoch 0 under `split`. */
  abstract topology(split: Split): WorkerDecl[];

  /** The scheduler of each worker role the mode has. */
  abstract schedulers(): RoleSchedulers;

  /** A decode worker's scheduler: asynchronous or not, as configured. */
  protected decodeScheduler(): RoleScheduler {
    return this.rooms.config.asyncScheduling ? new AsyncDecodeScheduler(this.rooms) : new DecodeScheduler(this.rooms);
  }

  /**
   * `r`'s prefill completed on `w` (its token owed): hand it on. Returns true when its stop condition is
   * left to the asynchronous scheduler (`overlap`).
   */
  abstract afterPrefill(r: Req, w: Worker, overlap: boolean): boolean;

  /** A KV transfer ended (modes with transfers only). */
  onTransferEnd(x: Transfer): void {
    throw new EngineBugError(`transfer ${x.id} ended in the ${this.info.name} mode, which has no transfers`);
  }

  /** A prefilled request's decode admission timed out (modes with decode admission only). */
  onAdmitTimeout(r: Req): void {
    throw new EngineBugError(`admission timeout of ${r.id} in the ${this.info.name} mode, which has no decode admission`);
  }
}
