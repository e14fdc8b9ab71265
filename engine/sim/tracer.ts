// Where the engine's trace events go: the run's sink, and the list stepOnce collects. Events are built only
// when `on` (a sink is attached, or stepOnce is collecting), so a run without tracing pays one test per
// action.
import type { TraceEvent } from '../../spec/trace-format.ts';
import type { TraceSink } from '../trace-sink.ts';

export class Tracer {
  on: boolean;
  private capture: TraceEvent[] | null = null;

  constructor(readonly sink: TraceSink | null) {
    this.on = sink !== null;
  }

  emit(ev: TraceEvent): void {
    this.sink?.event(ev);
    this.capture?.push(ev);
  }

  /** Events emitted from now on are also appended to `into`. */
  collect(into: TraceEvent[]): void {
    this.capture = into;
    this.on = true;
  }

  stopCollecting(): void {
    this.capture = null;
    this.on = this.sink !== null;
  }
}
