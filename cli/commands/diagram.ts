// `pdspec diagram`: the spec's machines as Mermaid stateDiagram-v2, generated from their definitions.
import { allDiagrams } from '../../spec/diagram.ts';
import { MACHINES, type MachineName } from '../../spec/system.ts';
import { EXIT, parseOptions, UsageError, type Command } from '../common.ts';

const usage = `pdspec diagram [--machine ${Object.keys(MACHINES).join('|')}] [--markdown]`;

export const diagram: Command = {
  name: 'diagram',
  summary: 'Prints the reference machines as Mermaid stateDiagram-v2, generated from the machine definitions.',
  usage,
  async run(args) {
    const { values, positionals } = parseOptions(args, { machine: { type: 'string' }, markdown: { type: 'boolean' } }, usage);
    if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0]}'\nusage: ${usage}`);
    let diagrams = allDiagrams();
    if (values.machine !== undefined) {
      if (!(values.machine in MACHINES)) throw new UsageError(`unknown machine '${values.machine}' (machines: ${Object.keys(MACHINES).join(', ')})`);
      diagrams = diagrams.filter((d) => d.name === (values.machine as MachineName));
    }
    for (const d of diagrams) {
      if (values.markdown) console.log(`### ${d.name} — ${d.title}\n\n\`\`\`mermaid\n${d.mermaid}\n\`\`\`\n`);
      else console.log(`%% ${d.name}: ${d.title}\n${d.mermaid}\n`);
    }
    return EXIT.holds;
  },
};
