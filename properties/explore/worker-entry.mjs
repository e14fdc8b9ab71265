// Entry of an explorer worker thread: a worker starts as plain Node whatever loader its parent used, so it
// registers tsx before loading the TypeScript search (the compiled search, in the built package).
import { existsSync } from 'node:fs';
import { register } from 'tsx/esm/api';

register();
const source = new URL('./worker.ts', import.meta.url);
await import(existsSync(source) ? source.href : new URL('./worker.js', import.meta.url).href);
