// Entry of a policy worker. A worker thread starts as plain Node whatever loader its parent used (tsx in
// the CLI, Vite in vitest), so it registers tsx itself before loading the TypeScript worker and any
// TypeScript policy module a user points it at. In the built package the worker is compiled JavaScript.
import { existsSync } from 'node:fs';
import { register } from 'tsx/esm/api';

register();
const source = new URL('./worker.ts', import.meta.url);
await import(existsSync(source) ? source.href : new URL('./worker.js', import.meta.url).href);
