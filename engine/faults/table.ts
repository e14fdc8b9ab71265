// docs/engine.md's fault table, generated from the fault files (`pdspec docs` writes it).
import { FAULTS } from './index.ts';

export function faultTableMarkdown(): string {
  const code = (xs: readonly string[]) => (xs.length ? xs.map((x) => `\`${x}\``).join(', ') : '—');
  const rows = FAULTS.map((f) => {
    const needs = [...Object.entries(f.options).map(([k, v]) => `${k}: ${JSON.stringify(v)}`), ...f.workload, ...(f.resizing ? ['a resizing policy'] : [])];
    const file = `[${f.zoo}](../engine/faults/${f.zoo.toLowerCase().replace(/^z(\d)$/, 'z0$1')}-${kebab(f.name)}.ts)`;
    return `| ${file} | \`${f.name}\` | ${f.source} | ${code(f.seams)} | ${f.says} | ${f.modes.join(', ')} | ${needs.join('; ') || '—'} | ${code(f.relaxes)} | ${f.check.kind}: ${code(f.check.rules)} |`;
  });
  return [
    '| row | switch | source | seams | what it changes | modes | needs | relaxes | caught by |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...rows,
  ].join('\n');
}

function kebab(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}
