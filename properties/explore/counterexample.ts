// Counterexamples as trace files (v1, v2 at a shared-KV bound, v3 at a v3 bound, v4 at a CAD bound: the header is the explored system's): the
// same file `pdspec conform` reads, so a violation the explorer finds in a
// spec variant is a trace the reference spec rejects, with the same rule.
import { writeFileSync } from 'node:fs';
import type { TraceEvent, TraceHeader } from '../../spec/trace-format.ts';
import type { ExploreConfig } from './config.ts';
import { headerOf } from './config.ts';
import type { Finding } from './explorer.ts';

/** The events with times and step ids an engine would write: steps numbered per worker, 1 ms apart. */
export function asTrace(events: TraceEvent[]): TraceEvent[] {
  const next = new Map<string, number>();
  const current = new Map<string, string>();
  return events.map((ev, i) => {
    const t = Number(((i + 1) / 1000).toFixed(3));
    if (ev.ev === 'step_begin') {
      const n = (next.get(ev.worker) ?? 0) + 1;
      next.set(ev.worker, n);
      current.set(ev.worker, String(n));
      return { ...ev, t, step: String(n) };
    }
    if (ev.ev === 'step_end' || ev.ev === 'task_create') return { ...ev, t, step: current.get(ev.worker) ?? ev.step };
    return { ...ev, t };
  });
}

/** The counterexample as the lines of a trace file (the version of the explored system's header). */
export function counterexampleLines(config: ExploreConfig, finding: Finding, replay: string): string[] {
  const header: TraceHeader = {
    ...headerOf(config),
    note: `pdspec explore counterexample: ${finding.rule} — ${finding.message}${finding.cycle ? ` (the last ${finding.cycle} events repeat forever)` : ''}. Reproduce: ${replay}`,
  };
  return [JSON.stringify(header), ...asTrace(finding.trace).map((e) => JSON.stringify(e))];
}

export function writeCounterexample(path: string, config: ExploreConfig, finding: Finding, replay: string): void {
  writeFileSync(path, `${counterexampleLines(config, finding, replay).join('\n')}\n`);
}

/** One event in words, in the trace vocabulary: `step_begin worker=P0 batch=r0:2,r1:2`, `step_end worker=D0 accepted=r0:1`. */
export function formatEvent(ev: TraceEvent): string {
  const parts: string[] = [ev.ev];
  for (const [k, v] of Object.entries(ev)) {
    if (k === 'ev' || k === 't' || k === 'note' || (k === 'step' && ev.ev !== 'step_begin' && ev.ev !== 'step_end')) continue;
    // A batch item: `r0:3` (3 positions); v3 `r0:3@2+2d` (from position 2, the last 2 of them drafts).
    const item = (x: { req: string; tokens: number; from?: number; draft?: number }) => `${x.req}:${x.tokens}${x.from === undefined ? '' : `@${x.from}`}${x.draft ? `+${x.draft}d` : ''}`;
    const text = Array.isArray(v)
      ? v.map((x) => (typeof x === 'object' ? item(x) : x)).join(',')
      : v !== null && typeof v === 'object'
        ? Object.entries(v).map(([req, n]) => `${req}:${n}`).join(',') // v3 step_end accepted
        : String(v);
    parts.push(`${k}=${text}`);
  }
  return parts.join(' ');
}
