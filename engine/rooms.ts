// The engine's rooms, wired together: each module of the engine holds this record and reaches the others
// through it when it runs (not when it is built), so that the Engine can build them in any order.
import type { EngineConfig } from './config.ts';
import type { Seams } from './faults/seams.ts';
import type { KvManager } from './kv/kv-manager.ts';
import type { PrefixCache } from './kv/prefix-cache.ts';
import type { ServingMode } from './modes/mode.ts';
import type { Resize } from './partition/resize.ts';
import type { Forks } from './sched/forks.ts';
import type { Lifecycle } from './sched/lifecycle.ts';
import type { Preemption } from './sched/preemption.ts';
import type { Speculation } from './sched/speculation.ts';
import type { WaitingQueue } from './sched/waiting-queue.ts';
import type { WorkerSet } from './sched/workers.ts';
import type { Clock } from './sim/clock.ts';
import type { History } from './sim/history.ts';
import type { Tracer } from './sim/tracer.ts';
import type { StepRunner } from './steps.ts';

export interface Rooms {
  readonly config: EngineConfig;
  readonly clock: Clock;
  readonly tracer: Tracer;
  readonly history: History;
  readonly seams: Seams;
  readonly prefix: PrefixCache;
  readonly kv: KvManager;
  readonly waiting: WaitingQueue;
  readonly workers: WorkerSet;
  readonly lifecycle: Lifecycle;
  readonly preemption: Preemption;
  readonly forks: Forks;
  readonly steps: StepRunner;
  readonly resize: Resize;
  readonly mode: ServingMode;
  /** Speculative decoding, or null when off. */
  readonly speculation: Speculation | null;
}
