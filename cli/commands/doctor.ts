// `pdspec doctor`: is there a WebGPU adapter, which one, with what limits, and does the executor work on it.
import { loadCheckpoint } from '../../engine/model/checkpoint.ts';
import { readStories260KGolden, STORIES260K_PATH } from '../../engine/model/shipped.ts';
import { generateGreedy } from '../../engine/executors/model-executor.ts';
import { createWebGpuExecutor } from '../../engine/executors/webgpu/executor.ts';
import { describeAdapter, NO_ADAPTER_HINT, requestAdapter, webGpu } from '../../engine/executors/webgpu/device.ts';
import { EXIT, parseOptions, UsageError, type Command } from '../common.ts';

const usage = 'pdspec doctor [--no-smoke]\n  --no-smoke  skip the 16-token stories260K check on the WebGPU executor';

const LIMITS = [
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxStorageBuffersPerShaderStage',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupsPerDimension',
] as const;

/** Dawn does not report its backend; find the one whose adapter is the default adapter. */
async function detectBackend(description: string): Promise<string> {
  const candidates = process.platform === 'win32' ? ['d3d12', 'd3d11', 'vulkan'] : process.platform === 'darwin' ? ['metal'] : ['vulkan', 'opengl', 'opengles'];
  for (const backend of candidates) {
    try {
      const adapter = await webGpu([`backend=${backend}`]).requestAdapter();
      if (adapter && adapter.info.description === description) return backend;
    } catch {
      // backend not compiled in or not available: try the next
    }
  }
  return 'unknown';
}

export const doctor: Command = {
  name: 'doctor',
  summary: 'Print the WebGPU adapter, backend and limits (or how to get an adapter), and smoke-test the WebGPU executor.',
  usage,
  async run(args: string[]): Promise<number> {
    const { values, positionals } = parseOptions(args, { 'no-smoke': { type: 'boolean' } }, usage);
    if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0]}'\nusage: ${usage}`);
    const adapter = await requestAdapter(webGpu());
    if (!adapter) {
      console.log(NO_ADAPTER_HINT);
      return EXIT.violated;
    }
    const info = describeAdapter(adapter);
    const backend = await detectBackend(info.description);
    console.log(`adapter: ${info.description || info.device || '(no description)'}`);
    console.log(`vendor: ${info.vendor || '-'}, architecture: ${info.architecture || '-'}, device: ${info.device || '-'}`);
    console.log(`backend: ${backend}${info.isFallbackAdapter ? ' (fallback adapter: software rendering on the CPU, e.g. Mesa lavapipe)' : ''}`);
    console.log(`limits: ${LIMITS.map((k) => `${k}=${adapter.limits[k]}`).join(', ')}`);
    console.log(`features: ${[...adapter.features].sort().join(', ') || '-'}`);
    if (values['no-smoke']) return EXIT.holds;
    const weights = loadCheckpoint(STORIES260K_PATH);
    const golden = readStories260KGolden().slice(0, 16);
    const started = performance.now();
    const executor = await createWebGpuExecutor(weights, { numBlocks: 1, blockSize: 16 });
    let ids: number[];
    try {
      ids = await generateGreedy(executor, [1], 16);
    } finally {
      executor.destroy();
    }
    const ms = (performance.now() - started).toFixed(0);
    const ok = ids.join(' ') === golden.join(' ');
    console.log(`smoke: stories260K, 16 greedy tokens from BOS on WebGPU ${ok ? 'match' : 'DO NOT match'} llama2.c's golden ids (${ms} ms)`);
    return ok ? EXIT.holds : EXIT.violated;
  },
};
