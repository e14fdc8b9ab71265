// Mermaid stateDiagram-v2 of each machine, generated from the compiled machine definitions.
import type { CompiledMachine } from './machine-kit.ts';
import { MACHINES, type MachineName } from './system.ts';

/** What each machine is, in one line, for the diagram's title. */
export const MACHINE_TITLES: Record<MachineName, string> = {
  request: 'Request lifecycle (one per request)',
  block: 'KV block ownership (one per block)',
  pool: 'Unified memory manager: the pool lock and utilisation (one per GPU)',
  allocator: 'Allocation protocol, one worker’s side: query utilisation → take blocks → update utilisation',
  worker: 'Worker (one per prefill, decode or unified worker)',
  partition: 'SM partition and resize handoff (one per system)',
  slot: 'State slot of a hybrid model’s recurrent state (one per slot; trace v3)',
  task: 'Core-attention task: created → dispatched to a server’s buffer → computing → returned → consumed (one per task; trace v4)',
  buffer: 'Attention server buffer under ping-pong and in-place execution (one per buffer; trace v4)',
};

/** The machine as a Mermaid stateDiagram-v2: one edge per (source, target), labelled with its events and guards. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function mermaid(m: CompiledMachine<any, any>): string {
  const edges = new Map<string, string[]>();
  for (const e of m.edges) {
    if (e.variant) continue;
    const key = `${e.state} --> ${e.target}`;
    const label = e.guard ? `${e.event} [${e.guard.replaceAll(' && ', ', ')}]` : e.event;
    const list = edges.get(key) ?? [];
    if (!list.includes(label)) list.push(label);
    edges.set(key, list);
  }
  const lines = ['stateDiagram-v2', `  [*] --> ${m.initial}`];
  for (const [key, labels] of edges) lines.push(`  ${key}: ${labels.join('<br/>')}`);
  for (const s of m.states) if (!m.edges.some((e) => !e.variant && e.state === s && e.target !== s)) lines.push(`  ${s} --> [*]`);
  return lines.join('\n');
}

export function allDiagrams(): { name: MachineName; title: string; mermaid: string }[] {
  return (Object.keys(MACHINES) as MachineName[]).map((name) => ({ name, title: MACHINE_TITLES[name], mermaid: mermaid(MACHINES[name]) }));
}

/** The Markdown section docs/machines.md embeds between its generated-section markers. */
export function diagramsMarkdown(): string {
  return allDiagrams()
    .map((d) => `### \`${d.name}\` — ${d.title}\n\n\`\`\`mermaid\n${d.mermaid}\n\`\`\``)
    .join('\n\n');
}
