// `pdspec docs`: regenerates the generated parts of docs/ (or, with --check, lists the stale ones).
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { syncDocs } from '../../spec/docs.ts';
import { EXIT, parseOptions, type Command } from '../common.ts';

const usage = 'pdspec docs [--check]';
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export const docs: Command = {
  name: 'docs',
  summary: 'Regenerates the parts of docs/ generated from the definitions (trace tables, JSON Schema, diagrams, rules).',
  usage,
  async run(args) {
    const { values } = parseOptions(args, { check: { type: 'boolean' } }, usage);
    const stale = syncDocs(root, !values.check);
    if (values.check) {
      if (stale.length) console.error(`stale: ${stale.join(', ')} (run \`pdspec docs\`)`);
      else console.log('docs are up to date');
      return stale.length ? EXIT.violated : EXIT.holds;
    }
    console.log(stale.length ? `updated ${stale.join(', ')}` : 'docs are up to date');
    return EXIT.holds;
  },
};
