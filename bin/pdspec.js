#!/usr/bin/env node
// Entry point of the `pdspec` command: runs the TypeScript CLI through tsx's loader.
import { register } from 'tsx/esm/api';

register();
const { mainProcess } = await import('../cli/main.ts');
process.exitCode = await mainProcess(process.argv.slice(2));
