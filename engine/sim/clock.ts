// Virtual time: the queue of simulation events, ordered by (time, sequence number) so that ties pop in the
// order they were pushed, and the stall detector. Nothing here knows what an event does: the engine
// dispatches each kind to the module that owns it.
import { MinHeap } from './heap.ts';

export const enum SimKind {
  Arrival,
  Abort,
  StepEnd,
  TransferEnd,
  WorkerReady,
  PolicyTick,
  AdmitTimeout,
}

export interface SimEvent {
  time: number;
  seq: number;
  kind: SimKind;
  /** What the event is about: a request, step, transfer or worker (none for arrivals and policy ticks). */
  ref: unknown;
}

/** Policy ticks with nothing else scheduled after which a run with live requests is declared stalled. */
export const STALL_TICKS = 100;

/** Policy ticks and workers becoming ready move no request; every other kind can. */
function movesWork(kind: SimKind): boolean {
  return kind !== SimKind.PolicyTick && kind !== SimKind.WorkerReady;
}

export class Clock {
  now = 0;
  /** Simulation events processed. */
  events = 0;
  private readonly queue = new MinHeap<SimEvent>((a, b) => a.time < b.time || (a.time === b.time && a.seq < b.seq));
  private seq = 0;
  /** Events queued that can move a request. */
  private pendingWork = 0;
  private idleTicks = 0;

  get empty(): boolean {
    return this.queue.size === 0;
  }

  push(time: number, kind: SimKind, ref: unknown): void {
    if (movesWork(kind)) this.pendingWork++;
    this.queue.push({ time, seq: this.seq++, kind, ref });
  }

  /** The next event (counted as processed), or undefined when none is left; `now` is not moved yet. */
  pop(): SimEvent | undefined {
    const ev = this.queue.pop();
    if (!ev) return undefined;
    if (movesWork(ev.kind)) this.pendingWork--;
    this.events++;
    return ev;
  }

  /** Events still queued, in no particular order. */
  pending(): readonly SimEvent[] {
    return this.queue.values();
  }

  /**
   * A policy tick with live requests: true once nothing but ticks (and workers of a resize becoming ready,
   * which move no request) was scheduled for STALL_TICKS ticks in a row. Nothing can move those requests (a
   * deadlock, or a request dropped by an injected fault): the ticks stop so that the run ends, even under a
   * policy that keeps resizing; the result reports the requests still live, and the trace fails quiescence.
   */
  stalledAtTick(): boolean {
    this.idleTicks = this.pendingWork === 0 ? this.idleTicks + 1 : 0;
    return this.idleTicks >= STALL_TICKS;
  }
}
