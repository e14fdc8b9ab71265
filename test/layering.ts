// The layering rules of the project, as a pure function over sources: which module specifiers
// each file imports or re-exports, where they resolve in the repository, and which of them break a rule.
// test/architecture.test.ts runs it on the real tree and on the real tree with a forbidden import added.
//
//   spec/        the model: imports nothing of engine/, properties/, cli/ or bench/.
//   engine/      imports of spec/ only spec/trace-format.ts (the trace format both sides speak).
//   properties/  never imports cli/ (cli/ renders what properties/ produce, not the other way round).
//   bench/       nothing shipped imports it: not spec/, engine/, properties/, cli/, nor the bin/ entry point.
//                The tests of the benchmarks live under test/ and may import bench/; test/ is not checked.
import { posix } from 'node:path';

/** Folders whose sources are checked. */
export const CHECKED_ROOTS = ['spec', 'engine', 'properties', 'cli', 'bin'] as const;
/** Source files whose imports are read (TypeScript, and the plain-JS entry points and worker entries). */
export const SOURCE_EXTENSIONS = ['.ts', '.mts', '.js', '.mjs'] as const;

export interface ImportRef {
  specifier: string;
  /** `import`, `import type`, `export from`, `import()` or `import =`, for the message. */
  kind: string;
  /** 1-based line of the specifier. */
  line: number;
}

export interface Violation {
  file: string;
  line: number;
  specifier: string;
  /** The repository path it resolves to. */
  target: string;
  kind: string;
  rule: string;
}

export interface LayeringOptions {
  /** The package's own name and `exports` map, so that a self-reference (`pdspec/policy-api`) resolves too. */
  selfPackage?: { name: string; exports: Record<string, string | Record<string, string>> };
}

export const RULES = {
  specIsTheModel: 'spec/ imports nothing of engine/, properties/, cli/ or bench/',
  engineOnlyTraceFormat: 'engine/ imports of spec/ only spec/trace-format.ts',
  propertiesNotCli: 'properties/ never imports cli/',
  noBench: 'spec/, engine/, properties/, cli/ and bin/ never import bench/',
} as const;

// ---------------------------------------------------------------------------------------------------------
// Reading the specifiers: a small lexer (comments, strings, template literals, regular expressions) so that
// an import written in a comment or a string does not count, and one on several lines does.

type Token = { t: 'id' | 'str' | 'punct' | 'tmpl' | 'num' | 're'; v: string; line: number };

const REGEX_AFTER_KEYWORDS = new Set(['return', 'typeof', 'instanceof', 'in', 'of', 'new', 'delete', 'void', 'throw', 'case', 'do', 'else', 'yield', 'await']);

function tokenize(src: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  let line = 1;
  // Open template literals: for each, the brace depth of its current `${ … }` substitution.
  const templates: number[] = [];
  const isIdStart = (c: string) => /[A-Za-z_$\u0080-\uffff]/.test(c);
  const isId = (c: string) => /[A-Za-z0-9_$\u0080-\uffff]/.test(c);
  const prevAllowsRegex = () => {
    const p = tokens[tokens.length - 1];
    if (!p) return true;
    if (p.t === 'id') return REGEX_AFTER_KEYWORDS.has(p.v);
    if (p.t === 'punct') return ![')', ']', '}'].includes(p.v);
    return false;
  };
  // Reads the rest of a template literal from i (just past ` or }), up to ` or ${.
  const templatePart = () => {
    const startLine = line;
    while (i < src.length) {
      const c = src[i]!;
      if (c === '\\') {
        if (src[i + 1] === '\n') line++;
        i += 2;
      } else if (c === '`') {
        i++;
        tokens.push({ t: 'tmpl', v: '', line: startLine });
        return;
      } else if (c === '$' && src[i + 1] === '{') {
        i += 2;
        // A substitution opens like a bracket: a regular expression may follow.
        tokens.push({ t: 'punct', v: '${', line: startLine });
        templates.push(0);
        return;
      } else {
        if (c === '\n') line++;
        i++;
      }
    }
  };
  while (i < src.length) {
    const c = src[i]!;
    if (c === '\n') {
      line++;
      i++;
    } else if (/\s/.test(c)) {
      i++;
    } else if (c === '/' && src[i + 1] === '/') {
      while (i < src.length && src[i] !== '\n') i++;
    } else if (c === '/' && src[i + 1] === '*') {
      const end = src.indexOf('*/', i + 2);
      const stop = end < 0 ? src.length : end + 2;
      for (let k = i; k < stop; k++) if (src[k] === '\n') line++;
      i = stop;
    } else if (c === '"' || c === "'") {
      const startLine = line;
      let v = '';
      i++;
      while (i < src.length && src[i] !== c && src[i] !== '\n') {
        if (src[i] === '\\') {
          v += src[i + 1] ?? '';
          i += 2;
        } else v += src[i++];
      }
      i++;
      tokens.push({ t: 'str', v, line: startLine });
    } else if (c === '`') {
      i++;
      templatePart();
    } else if (c === '/' && prevAllowsRegex()) {
      let inClass = false;
      i++;
      while (i < src.length && src[i] !== '\n') {
        const d = src[i]!;
        if (d === '\\') i += 2;
        else {
          i++;
          if (d === '[') inClass = true;
          else if (d === ']') inClass = false;
          else if (d === '/' && !inClass) break;
        }
      }
      while (i < src.length && isId(src[i]!)) i++;
      tokens.push({ t: 're', v: '', line });
    } else if (isIdStart(c)) {
      let v = '';
      while (i < src.length && isId(src[i]!)) v += src[i++];
      tokens.push({ t: 'id', v, line });
    } else if (/[0-9]/.test(c) || (c === '.' && /[0-9]/.test(src[i + 1] ?? ''))) {
      while (i < src.length && /[0-9A-Za-z_.]/.test(src[i]!)) i++;
      tokens.push({ t: 'num', v: '', line });
    } else if (c === '{') {
      if (templates.length) templates[templates.length - 1]!++;
      tokens.push({ t: 'punct', v: c, line });
      i++;
    } else if (c === '}') {
      i++;
      if (templates.length && templates[templates.length - 1] === 0) {
        templates.pop();
        templatePart();
      } else {
        if (templates.length) templates[templates.length - 1]!--;
        tokens.push({ t: 'punct', v: c, line });
      }
    } else if (c === '.' && src[i + 1] === '.' && src[i + 2] === '.') {
      tokens.push({ t: 'punct', v: '...', line });
      i += 3;
    } else {
      tokens.push({ t: 'punct', v: c, line });
      i++;
    }
  }
  return tokens;
}

/** Every module specifier a source imports or re-exports from: static, type-only, side-effect, dynamic (with a string literal) and `import x = require(…)`. */
export function importsOf(src: string): ImportRef[] {
  const tokens = tokenize(src);
  const refs: ImportRef[] = [];
  const at = (k: number) => tokens[k];
  const is = (k: number, t: Token['t'], v?: string) => at(k)?.t === t && (v === undefined || at(k)!.v === v);
  // From k, skip to the `from` that ends an import or export clause (at brace depth 0) and return the
  // specifier after it; a `;` or another statement keyword first means there is none.
  const fromClause = (k: number): Token | undefined => {
    let depth = 0;
    for (; k < tokens.length; k++) {
      const tk = tokens[k]!;
      if (tk.t === 'punct' && tk.v === '{') depth++;
      else if (tk.t === 'punct' && tk.v === '}') depth--;
      else if (depth === 0 && tk.t === 'punct' && tk.v === ';') return undefined;
      else if (depth === 0 && tk.t === 'id' && tk.v === 'from' && is(k + 1, 'str')) return tokens[k + 1];
      else if (depth === 0 && tk.t === 'punct' && tk.v === '=') return undefined;
      else if (depth === 0 && tk.t === 'id' && (tk.v === 'import' || tk.v === 'export')) return undefined;
      if (depth < 0) return undefined;
    }
    return undefined;
  };
  for (let k = 0; k < tokens.length; k++) {
    const tk = tokens[k]!;
    if (tk.t !== 'id') continue;
    // A property named import/export (`x.import(…)`, `{ import: … }`) is not one.
    if (is(k - 1, 'punct', '.')) continue;
    if (is(k + 1, 'punct', ':')) continue;
    if (tk.v === 'import') {
      if (is(k + 1, 'punct', '.')) continue; // import.meta
      if (is(k + 1, 'punct', '(')) {
        if (is(k + 2, 'str') && (is(k + 3, 'punct', ')') || is(k + 3, 'punct', ','))) refs.push({ specifier: at(k + 2)!.v, kind: 'import()', line: at(k + 2)!.line });
        continue;
      }
      if (is(k + 1, 'str')) {
        refs.push({ specifier: at(k + 1)!.v, kind: 'import', line: at(k + 1)!.line });
        continue;
      }
      // import x = require('…')
      const eq = is(k + 1, 'id', 'type') ? k + 3 : k + 2;
      if (is(k + 1, 'id') && is(eq, 'punct', '=') && is(eq + 1, 'id', 'require') && is(eq + 2, 'punct', '(') && is(eq + 3, 'str')) {
        refs.push({ specifier: at(eq + 3)!.v, kind: 'import =', line: at(eq + 3)!.line });
        continue;
      }
      const spec = fromClause(k + 1);
      if (spec) refs.push({ specifier: spec.v, kind: is(k + 1, 'id', 'type') && !is(k + 2, 'id', 'from') ? 'import type' : 'import', line: spec.line });
    } else if (tk.v === 'export') {
      // Only `export {…} from`, `export * from`, `export * as x from`, `export type {…} from`, `export type * from`.
      const j = is(k + 1, 'id', 'type') ? k + 2 : k + 1;
      if (!is(j, 'punct', '{') && !is(j, 'punct', '*')) continue;
      const spec = fromClause(j);
      if (spec) refs.push({ specifier: spec.v, kind: 'export from', line: spec.line });
    }
  }
  return refs;
}

// ---------------------------------------------------------------------------------------------------------
// Resolving and judging.

/** The repository path a specifier of `file` names, or null for a package outside the repository. */
export function resolveSpecifier(file: string, specifier: string, files: ReadonlyMap<string, string>, options: LayeringOptions = {}): string | null {
  let target: string;
  if (specifier.startsWith('./') || specifier.startsWith('../') || specifier === '.' || specifier === '..') {
    target = posix.normalize(posix.join(posix.dirname(file), specifier));
  } else if (specifier.startsWith('/')) {
    return null;
  } else {
    const self = options.selfPackage;
    if (!self || (specifier !== self.name && !specifier.startsWith(`${self.name}/`))) return null;
    const sub = `.${specifier.slice(self.name.length)}`;
    // A conditional export maps to the built package; `pdspec-source` names the source in the repository.
    const entry = self.exports[sub];
    const mapped = typeof entry === 'string' ? entry : entry?.['pdspec-source'];
    if (!mapped) return null;
    target = posix.normalize(mapped);
  }
  if (target.startsWith('../')) return null;
  if (files.has(target)) return target;
  // `./x.js` written for `./x.ts`, an extensionless path, a folder with an index.
  const stem = target.replace(/\.(m?js)$/, '');
  const candidates = [`${stem}.ts`, `${stem}.mts`, `${target}.ts`, `${target}/index.ts`, `${target}.js`, `${target}/index.js`];
  return candidates.find((c) => files.has(c)) ?? target;
}

const topOf = (path: string) => path.split('/')[0]!;

/** The rule an import from `file` of `target` breaks, or null. */
export function ruleBroken(file: string, target: string): string | null {
  const from = topOf(file);
  const to = topOf(target);
  if (to === 'bench' && ['spec', 'engine', 'properties', 'cli', 'bin'].includes(from)) return RULES.noBench;
  if (from === 'spec' && ['engine', 'properties', 'cli'].includes(to)) return RULES.specIsTheModel;
  if (from === 'engine' && to === 'spec' && target !== 'spec/trace-format.ts') return RULES.engineOnlyTraceFormat;
  if (from === 'properties' && to === 'cli') return RULES.propertiesNotCli;
  return null;
}

/** Every import of the checked files that breaks a layering rule. `files`: repository path (posix) → source. */
export function layeringViolations(files: ReadonlyMap<string, string>, options: LayeringOptions = {}): Violation[] {
  const out: Violation[] = [];
  for (const [file, src] of [...files].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (!(CHECKED_ROOTS as readonly string[]).includes(topOf(file))) continue;
    for (const ref of importsOf(src)) {
      const target = resolveSpecifier(file, ref.specifier, files, options);
      if (target === null) continue;
      const rule = ruleBroken(file, target);
      if (rule) out.push({ file, line: ref.line, specifier: ref.specifier, target, kind: ref.kind, rule });
    }
  }
  return out;
}

/** One line per violation: `file:line → target ('specifier', kind): rule`. */
export function formatViolation(v: Violation): string {
  return `${v.file}:${v.line} → ${v.target} ('${v.specifier}', ${v.kind}): ${v.rule}`;
}
