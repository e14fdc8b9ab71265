// `pdspec docs`: regenerates the generated parts of docs/ (or, with --check, lists the stale ones).
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { faultTableMarkdown } from '../../engine/faults/table.ts';
import { generatedSections, syncDocs } from '../../spec/docs.ts';
import { EXIT, parseOptions, type Command } from '../common.ts';

const usage = 'pdspec docs [--check]';
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Every generated section of docs/: the spec's, and the engine's fault table. */
export function allGeneratedSections(): Record<string, Record<string, string>> {
  return { ...generatedSections(), 'docs/engine.md': { faults: faultTableMarkdown() } };
}

export const docs: Command = {
  name: 'docs',
  summary: 'Regenerates the parts of docs/ generated from the definitions (trace tables, JSON Schema, diagrams, rules, the engine’s fault table).',
  usage,
  async run(args) {
    const { values } = parseOptions(args, { check: { type: 'boolean' } }, usage);
    const stale = syncDocs(root, !values.check, allGeneratedSections());
    if (values.check) {
      if (stale.length) console.error(`stale: ${stale.join(', ')} (run \`pdspec docs\`)`);
      else console.log('docs are up to date');
      return stale.length ? EXIT.violated : EXIT.holds;
    }
    console.log(stale.length ? `updated ${stale.join(', ')}` : 'docs are up to date');
    return EXIT.holds;
  },
};
