// The layering of the project, held by a test: spec/ is the model and imports nothing of the
// code that runs or checks it; engine/ speaks to spec/ only through the trace format; properties/ produce
// what cli/ renders and never import cli/; nothing shipped imports bench/. (The tests of the benchmarks live
// under test/ and may import bench/: test/ is not checked.) The rules and the import reader are in
// test/layering.ts, a pure function over sources, so that the second test can show it catches a forbidden
// import added to the real tree.
import { readdirSync, readFileSync } from 'node:fs';
import { join, posix, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { CHECKED_ROOTS, formatViolation, importsOf, layeringViolations, RULES, SOURCE_EXTENSIONS, type LayeringOptions } from './layering.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** Every source under the checked folders, as repository path (posix) → text. */
function realTree(): Map<string, string> {
  const files = new Map<string, string>();
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (entry.name === 'node_modules' || entry.name.startsWith('.')) continue;
      const full = join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.isFile() && SOURCE_EXTENSIONS.some((e) => entry.name.endsWith(e)) && !entry.name.endsWith('.d.ts')) {
        files.set(relative(ROOT, full).split(sep).join('/'), readFileSync(full, 'utf8'));
      }
    }
  };
  for (const root of CHECKED_ROOTS) {
    try {
      walk(join(ROOT, root));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
  }
  return files;
}

const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { name: string; exports?: Record<string, string | Record<string, string>> };
const options: LayeringOptions = { selfPackage: { name: pkg.name, exports: pkg.exports ?? {} } };

/** A specifier from `file` to the repository path `target`, as the project writes them. */
function specifierTo(file: string, target: string): string {
  const rel = posix.relative(posix.dirname(file), target);
  return rel.startsWith('.') ? rel : `./${rel}`;
}

describe('layering', () => {
  const tree = realTree();

  it('reads the real tree', () => {
    for (const root of ['spec', 'engine', 'properties', 'cli']) expect([...tree.keys()].some((f) => f.startsWith(`${root}/`)), root).toBe(true);
    expect(tree.has('spec/trace-format.ts')).toBe(true);
  });

  it('the real tree keeps every layering rule', () => {
    expect(layeringViolations(tree, options).map(formatViolation)).toEqual([]);
  });

  it('catches a forbidden import added to the real tree', () => {
    // A properties/ module importing cli/, an engine/ module importing a spec machine (spec/kv.ts: the KV
    // blocks and the allocator), spec/ importing engine/ (type-only counts too) and cli/ importing bench/.
    const props = [...tree.keys()].find((f) => f.startsWith('properties/') && f.endsWith('.ts'))!;
    const engine = [...tree.keys()].find((f) => f.startsWith('engine/') && f.endsWith('.ts'))!;
    const spec = [...tree.keys()].find((f) => f.startsWith('spec/') && f !== 'spec/trace-format.ts' && f.endsWith('.ts'))!;
    const cli = [...tree.keys()].find((f) => f.startsWith('cli/') && f.endsWith('.ts'))!;
    expect(tree.has('spec/kv.ts') && tree.has('cli/main.ts') && tree.has('engine/policy-api.ts')).toBe(true);
    const bad = new Map(tree);
    bad.set(props, `${tree.get(props)}\nimport { x } from '${specifierTo(props, 'cli/main.ts')}';\n`);
    bad.set(engine, `${tree.get(engine)}\nimport '${specifierTo(engine, 'spec/kv.ts')}';\n`);
    bad.set(spec, `${tree.get(spec)}\nimport type { Observation } from '${specifierTo(spec, 'engine/policy-api.ts')}';\n`);
    bad.set(cli, `${tree.get(cli)}\nconst gen = await import('${specifierTo(cli, 'bench/trace-gen.ts')}');\n`);

    const found = layeringViolations(bad, options);
    const summary = found.map((v) => ({ file: v.file, target: v.target, rule: v.rule }));
    expect(summary).toContainEqual({ file: props, target: 'cli/main.ts', rule: RULES.propertiesNotCli });
    expect(summary).toContainEqual({ file: engine, target: 'spec/kv.ts', rule: RULES.engineOnlyTraceFormat });
    expect(summary).toContainEqual({ file: spec, target: 'engine/policy-api.ts', rule: RULES.specIsTheModel });
    expect(summary).toContainEqual({ file: cli, target: 'bench/trace-gen.ts', rule: RULES.noBench });
    expect(found).toHaveLength(4);
    // The message names the file, the line, the import and the rule.
    const line = formatViolation(found.find((v) => v.file === props)!);
    expect(line).toContain(`${props}:`);
    expect(line).toContain('cli/main.ts');
    expect(line).toContain(RULES.propertiesNotCli);
  });

  it('allows what the rules allow', () => {
    const files = new Map([
      ['engine/a.ts', `import type { TraceEvent } from '../spec/trace-format.ts';\nimport { b } from './b.ts';`],
      ['properties/p.ts', `import { Engine } from '../engine/a.ts';\nimport { check } from '../spec/checker.ts';`],
      ['cli/c.ts', `import { p } from '../properties/p.ts';\nimport fc from 'fast-check';\nimport { readFileSync } from 'node:fs';`],
      ['bin/x.js', `const { main } = await import('../cli/c.ts');`],
      ['test/t.test.ts', `import { run } from '../bench/lockstep.ts';\nimport { k } from '../cli/c.ts';`],
      ['bench/b.ts', `import { Engine } from '../engine/a.ts';`],
    ]);
    expect(layeringViolations(files)).toEqual([]);
  });

  it('resolves a self-reference of the package through its exports', () => {
    const files = new Map([['spec/s.ts', `import type { Policy } from 'pdspec/policy-api';`]]);
    expect(layeringViolations(files, { selfPackage: { name: 'pdspec', exports: { './policy-api': './engine/policy-api.ts' } } }).map((v) => v.target)).toEqual(['engine/policy-api.ts']);
  });
});

describe('importsOf', () => {
  it('reads every form of import and re-export', () => {
    const src = [
      `import a from './a.ts';`,
      `import type { B } from "./b.ts";`,
      `import {`,
      `  c,`,
      `  type C2,`,
      `} from './c.ts';`,
      `import * as d from './d.ts';`,
      `import e, { e2 } from './e.ts';`,
      `import './f.ts';`,
      `export { g } from './g.ts';`,
      `export * from './h.ts';`,
      `export * as i from './i.ts';`,
      `export type { J } from './j.ts';`,
      `const k = await import('./k.ts');`,
      `type L = typeof import('./l.ts');`,
      `import m = require('./m.ts');`,
    ].join('\n');
    expect(importsOf(src).map((r) => [r.specifier, r.kind, r.line])).toEqual([
      ['./a.ts', 'import', 1],
      ['./b.ts', 'import type', 2],
      ['./c.ts', 'import', 6],
      ['./d.ts', 'import', 7],
      ['./e.ts', 'import', 8],
      ['./f.ts', 'import', 9],
      ['./g.ts', 'export from', 10],
      ['./h.ts', 'export from', 11],
      ['./i.ts', 'export from', 12],
      ['./j.ts', 'export from', 13],
      ['./k.ts', 'import()', 14],
      ['./l.ts', 'import()', 15],
      ['./m.ts', 'import =', 16],
    ]);
  });

  it('ignores imports in comments, strings, templates and regular expressions, and non-literal dynamic imports', () => {
    const src = [
      `// import { x } from '../cli/main.ts';`,
      `/* export * from '../cli/main.ts'; */`,
      `const s = "import '../cli/main.ts'";`,
      'const t = `import x from "../cli/main.ts" ${"}"} import(\'../cli/a.ts\')`;',
      `const r = /import '[^']*'/.test(s) ? 1 / 2 : 3;`,
      `const m = await import(userModule);`,
      `const q = x.import('../cli/b.ts');`,
      `export { y };`,
      `export const z = 1;`,
      `const meta = import.meta.url;`,
      `import real from './real.ts';`,
    ].join('\n');
    expect(importsOf(src).map((r) => r.specifier)).toEqual(['./real.ts']);
  });

  it('finds at least every one-line import a plain pattern finds in the real tree', () => {
    // A cross-check of the lexer: were it to lose its place in some file, imports after that point would
    // vanish from the check without a word.
    const plain = /^\s*(?:import|export)\b[^'"\n]*?\bfrom\s*['"]([^'"\n]+)['"]|^\s*import\s*['"]([^'"\n]+)['"]/gm;
    const missed: string[] = [];
    for (const [file, src] of realTree()) {
      const read = new Set(importsOf(src).map((r) => r.specifier));
      for (const m of src.matchAll(plain)) {
        const spec = m[1] ?? m[2]!;
        if (!read.has(spec)) missed.push(`${file}: ${spec}`);
      }
    }
    expect(missed).toEqual([]);
  });
});
