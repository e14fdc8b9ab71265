// Entry of a policy worker. A worker thread starts as plain Node whatever loader its parent used (tsx in
// the CLI, Vite in vitest), so it registers tsx itself before loading the TypeScript worker and any
// TypeScript policy module a user points it at.
import { register } from 'tsx/esm/api';

register();
await import('./worker.ts');
