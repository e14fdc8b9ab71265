#!/usr/bin/env node
// Entry point of the `pdspec` command: the compiled CLI of the installed package (dist/), or in the
// repository the TypeScript sources through tsx's loader.
import { existsSync } from 'node:fs';

const source = new URL('../cli/main.ts', import.meta.url);
let cli;
if (existsSync(source)) {
  const { register } = await import('tsx/esm/api');
  register();
  cli = await import(source.href);
} else {
  cli = await import('../dist/cli/main.js');
}
process.exitCode = await cli.mainProcess(process.argv.slice(2));
