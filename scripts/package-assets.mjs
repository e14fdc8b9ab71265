// The second half of `npm run build` (the first is `tsc -p tsconfig.build.json`): puts beside the compiled
// JavaScript in dist/ what the compiler does not copy — the worker entries (.mjs), the JSON files the code
// reads next to itself, and data/ (the profiles, the Azure traces, the llama2.c model), which the code finds
// at ../data from engine/ in the sources and from dist/engine/ in the package.
import { cpSync, existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');
if (!existsSync(join(dist, 'api', 'index.js'))) {
  console.error('scripts/package-assets.mjs: dist/api/index.js is missing: run `tsc -p tsconfig.build.json` first');
  process.exit(1);
}

let copied = 0;
function copyAssets(dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) copyAssets(path);
    else if (/\.(mjs|json)$/.test(entry.name)) {
      cpSync(path, join(dist, relative(root, path)));
      copied += 1;
    }
  }
}
for (const dir of ['api', 'spec', 'engine', 'properties', 'cli']) copyAssets(join(root, dir));
cpSync(join(root, 'data'), join(dist, 'data'), { recursive: true });
const size = (p) => (statSync(p).isDirectory() ? readdirSync(p).reduce((s, e) => s + size(join(p, e)), 0) : statSync(p).size);
console.log(`dist/: ${copied} entry and data file(s) beside the compiled code, data/ (${(size(join(dist, 'data')) / 1e6).toFixed(1)} MB)`);
