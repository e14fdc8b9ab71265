// The parts of docs/ that are generated from the definitions (event catalogue, JSON Schema, diagrams,
// rule catalogue), so that the documentation cannot drift from what the checker does.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { diagramsMarkdown } from './diagram.ts';
import { RULE_NAMES, RULES } from './invariants.ts';
import { eventTableMarkdown, headerTableMarkdown, traceSchema } from './trace-format.ts';

function rulesMarkdown(): string {
  const rows = RULE_NAMES.map((n) => `| \`${n}\` | ${RULES[n].family} | ${RULES[n].kind} | ${RULES[n].says} |`);
  return ['| rule | property | checked | what it protects |', '| --- | --- | --- | --- |', ...rows].join('\n');
}

/** Generated sections, by file and by marker name. */
export function generatedSections(): Record<string, Record<string, string>> {
  return {
    'docs/trace-format.md': { header: headerTableMarkdown(), events: eventTableMarkdown() },
    'docs/machines.md': { diagrams: diagramsMarkdown() },
    'docs/properties.md': { rules: rulesMarkdown() },
  };
}

/** Whole generated files. */
export function generatedFiles(): Record<string, string> {
  return { 'docs/trace-schema.json': `${JSON.stringify(traceSchema(), null, 2)}\n` };
}

/** Replaces each `<!-- generated:NAME -->…<!-- /generated:NAME -->` block of the text. */
export function applySections(text: string, sections: Record<string, string>, file: string): string {
  let out = text;
  for (const [name, body] of Object.entries(sections)) {
    const open = `<!-- generated:${name} -->`;
    const close = `<!-- /generated:${name} -->`;
    const a = out.indexOf(open);
    const b = out.indexOf(close);
    if (a === -1 || b === -1 || b < a) throw new Error(`${file}: missing the markers of generated section '${name}'`);
    out = `${out.slice(0, a + open.length)}\n${body}\n${out.slice(b)}`;
  }
  return out;
}

/**
 * Files of docs/ whose generated parts differ from the definitions (after writing them, when `write`).
 * `sections` defaults to the spec's own; the docs command adds the engine's (spec/ cannot import them).
 */
export function syncDocs(root: string, write: boolean, sections = generatedSections()): string[] {
  const stale: string[] = [];
  const update = (file: string, next: string, current: string) => {
    if (next === current) return;
    stale.push(file);
    if (write) writeFileSync(join(root, file), next);
  };
  for (const [file, parts] of Object.entries(sections)) {
    const current = readFileSync(join(root, file), 'utf8');
    update(file, applySections(current, parts, file), current);
  }
  for (const [file, body] of Object.entries(generatedFiles())) {
    let current = '';
    try {
      current = readFileSync(join(root, file), 'utf8');
    } catch {
      // a missing file is stale
    }
    update(file, body, current);
  }
  return stale;
}
