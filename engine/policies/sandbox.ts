// A user's policy module in its own process, seen from its (trusted) worker thread. The module and the
// host program are bundled to plain JavaScript here, with esbuild, because the sandboxed process may not
// start the TypeScript compiler's own service; the process runs under Node's permission model with read
// access only (host.ts says what that keeps out).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { firstLine } from './errors.ts';
import { FrameReader, frame } from './frames.ts';
import type { HostRequest, HostStart } from './host.ts';
import type { PlainObservation, WorkerLoaded, WorkerReply } from './worker-protocol.ts';

/** The host program: its TypeScript source here, the compiled JavaScript in the built package. */
const HOST_ENTRY = fileURLToPath(new URL(import.meta.url.endsWith('.ts') ? './host.ts' : './host.js', import.meta.url));
/** Node 20 names the permission model experimental; later versions take --permission. */
const PERMISSION_FLAG = process.allowedNodeEnvironmentFlags.has('--permission') ? '--permission' : '--experimental-permission';
/** CommonJS packages bundled into an ES module still call require(): give them one. */
const REQUIRE_BANNER = "import { createRequire as __pdspecCreateRequire } from 'node:module'; const require = __pdspecCreateRequire(import.meta.url);";

async function bundle(entry: string, out: string): Promise<void> {
  const result = await build({
    entryPoints: [entry],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    write: false,
    logLevel: 'silent',
    banner: { js: REQUIRE_BANNER },
  });
  writeFileSync(out, result.outputFiles[0].contents);
}

/** A load message as the host sends it (a module can write frames of its own; they are not taken for one). */
function isLoadMessage(m: unknown): m is WorkerLoaded {
  if (m === null || typeof m !== 'object') return false;
  const l = m as Record<string, unknown>;
  if (l.type === 'load-error') return typeof l.message === 'string';
  return (
    l.type === 'ready' &&
    typeof l.name === 'string' &&
    l.name !== '' &&
    typeof l.claimsMonotone === 'boolean' &&
    typeof l.interval === 'number' &&
    Number.isFinite(l.interval) &&
    l.interval > 0 &&
    typeof l.fresh === 'boolean'
  );
}

export interface Sandbox {
  loaded: WorkerLoaded;
  pid: number;
  /** One decision of one instance; a process that died or answered garbage gives a fault, never a throw. */
  decide(instance: number, observation: PlainObservation): Promise<WorkerReply>;
  drop(instance: number): void;
}

/** Bundles the module, starts its process and waits for it to load (or say why it cannot). */
export async function startSandbox(moduleUrl: string, policyOptions: Record<string, unknown>, profile: unknown, onProcess: (pid: number) => void): Promise<Sandbox> {
  const dir = mkdtempSync(join(tmpdir(), 'pdspec-policy-'));
  let child: ChildProcess;
  try {
    try {
      await bundle(fileURLToPath(moduleUrl), join(dir, 'policy.mjs'));
    } catch (err) {
      // esbuild's message starts with the file and line of the first error.
      throw new Error(`the module failed to import: ${firstLine(err).replace(/^Build failed with \d+ errors?:\s*/, '')}`);
    }
    await bundle(HOST_ENTRY, join(dir, 'host.mjs'));
    child = spawn(process.execPath, [PERMISSION_FLAG, '--allow-fs-read=*', '--no-warnings', join(dir, 'host.mjs')], {
      stdio: ['pipe', 'pipe', 'pipe', 'pipe'],
      // The parent's NODE_OPTIONS may load tsx or a test runner's hooks, which the sandbox may not run.
      env: { ...process.env, NODE_OPTIONS: '' },
    });
    onProcess(child.pid!);
    return await connect(child, { bundle: join(dir, 'policy.mjs'), policyOptions, profile });
  } finally {
    // Loaded (or failed): the process holds its code; the files are no longer needed.
    rmSync(dir, { recursive: true, force: true });
  }
}

function connect(child: ChildProcess, start: HostStart): Promise<Sandbox> {
  const input = child.stdin as Writable;
  const replies = child.stdio[3] as Readable;
  // The policy's own output: to this worker's streams, which the main thread marks as the policy's.
  child.stdout!.pipe(process.stdout);
  child.stderr!.pipe(process.stderr);
  input.on('error', () => undefined); // a dead process's pipe: reported through 'exit'

  const reader = new FrameReader();
  let gone: string | undefined;
  let seq = 0;
  let waiting: { seq: number; resolve: (reply: WorkerReply) => void } | null = null;
  let loading: ((loaded: WorkerLoaded) => void) | null = null;

  const fail = (reason: string) => {
    gone ??= reason;
    loading?.({ type: 'load-error', message: reason });
    loading = null;
    waiting?.resolve({ ok: false, kind: 'unavailable', detail: `the policy is not running: ${reason}` });
    waiting = null;
  };
  child.on('exit', (code, signal) => fail(`its process exited (${signal ? `signal ${signal}` : `code ${code}`})`));
  child.on('error', (err) => fail(`its process could not run: ${err.message}`));
  replies.on('data', (chunk: Buffer) => {
    let messages: unknown[];
    try {
      messages = reader.push(chunk);
    } catch (err) {
      fail(`its process sent an unreadable reply (${firstLine(err)})`);
      child.kill('SIGKILL');
      return;
    }
    for (const m of messages) {
      if (loading) {
        // Only a well-formed load message ends the load: a frame the module wrote at import is not one.
        if (!isLoadMessage(m)) continue;
        loading(m);
        loading = null;
      } else if (waiting && (m as { seq?: unknown })?.seq === waiting.seq) {
        // Anything the policy writes on fd 3 itself is a reply like any other: validated, never trusted.
        waiting.resolve((m as { reply: WorkerReply }).reply);
        waiting = null;
      }
    }
  });

  return new Promise<Sandbox>((resolve) => {
    loading = (loaded) =>
      resolve({
        loaded,
        pid: child.pid!,
        decide(instance, observation) {
          if (gone !== undefined) return Promise.resolve({ ok: false, kind: 'unavailable', detail: `the policy is not running: ${gone}` });
          seq += 1;
          const request: HostRequest = { seq, instance, observation };
          return new Promise<WorkerReply>((answer) => {
            waiting = { seq, resolve: answer };
            input.write(frame(request));
          });
        },
        drop(instance) {
          if (gone === undefined) input.write(frame({ drop: instance } satisfies HostRequest));
        },
      });
    input.write(frame(start));
  });
}
