// Where the engine's trace events go. The engine builds an event object only when a sink is attached (or
// stepOnce is collecting), so a run without tracing pays one boolean test per action.
import { closeSync, openSync, writeSync } from 'node:fs';
import type { TraceEvent, TraceHeader } from '../spec/trace-format.ts';

export interface TraceSink {
  /** Called once, before any event. */
  header(header: TraceHeader): void;
  event(ev: TraceEvent): void;
  /** Flushes and releases; no event follows. */
  close(): void;
}

/** Keeps the trace in memory: the header and the events, and the JSONL text on demand. */
export class MemorySink implements TraceSink {
  headerLine: TraceHeader | null = null;
  readonly events: TraceEvent[] = [];

  header(header: TraceHeader): void {
    this.headerLine = header;
  }

  event(ev: TraceEvent): void {
    this.events.push(ev);
  }

  close(): void {}

  /** The trace as JSON Lines, header first. */
  text(): string {
    if (!this.headerLine) throw new Error('MemorySink: no header was written');
    const lines = [JSON.stringify(this.headerLine)];
    for (const ev of this.events) lines.push(JSON.stringify(ev));
    return lines.join('\n') + '\n';
  }
}

/** Writes JSON Lines to a file, buffered: memory stays flat whatever the length of the run. */
export class JsonlFileSink implements TraceSink {
  private fd: number;
  private buffer: string[] = [];
  private buffered = 0;
  lines = 0;

  /** Set when the reader of standard output went away: the rest of the trace has nowhere to go. */
  readerGone = false;

  /** `path` '-' writes to standard output (reopened, so that writes wait for a slow reader instead of failing). */
  constructor(
    readonly path: string,
    private readonly flushAt = 1 << 20,
  ) {
    this.fd = path === '-' ? openStdout() : openSync(path, 'w');
  }

  header(header: TraceHeader): void {
    this.push(JSON.stringify(header));
  }

  event(ev: TraceEvent): void {
    this.push(JSON.stringify(ev));
  }

  private push(line: string): void {
    this.buffer.push(line);
    this.buffered += line.length + 1;
    this.lines++;
    if (this.buffered >= this.flushAt) this.flush();
  }

  private flush(): void {
    if (this.buffer.length === 0) return;
    const text = this.buffer.join('\n') + '\n';
    this.buffer = [];
    this.buffered = 0;
    if (this.readerGone) return;
    try {
      writeSync(this.fd, text);
    } catch (err) {
      // A reader that stopped early (`pdspec conform -` at the first violation) is not an error of the run.
      if (this.path === '-' && (err as NodeJS.ErrnoException).code === 'EPIPE') this.readerGone = true;
      else throw err;
    }
  }

  close(): void {
    if (this.fd < 0) return;
    this.flush();
    if (this.fd !== 1) closeSync(this.fd);
    this.fd = -1;
  }
}

/** A blocking descriptor for standard output: fd 1 itself may be non-blocking, where a full pipe fails a write. */
function openStdout(): number {
  try {
    return openSync('/dev/stdout', 'w');
  } catch {
    return 1;
  }
}
