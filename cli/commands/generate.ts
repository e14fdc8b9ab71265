// `pdspec generate`: greedy token ids of one prompt, with llama2.c run.c's loop, on either executor.
import { CheckpointError, loadCheckpoint } from '../../engine/model/checkpoint.ts';
import { STORIES260K_PATH } from '../../engine/model/shipped.ts';
import { createCpuReferenceExecutor } from '../../engine/executors/cpu-reference.ts';
import { generateGreedy, type ModelExecutor } from '../../engine/executors/model-executor.ts';
import { intOption, parseOptions, UsageError, type Command } from '../common.ts';

const usage =
  'pdspec generate [--model FILE] [--prompt 1,2,3] [--steps N] [--executor cpu|webgpu] [--block-size T]\n' +
  '  --model       legacy llama2.c checkpoint (default: the shipped stories260K)\n' +
  '  --prompt      comma-separated token ids (default 1, BOS)\n' +
  '  --steps       positions to run, prompt included, as run.c -n counts them (default 256; 0 = seq_len)\n' +
  '  --executor    cpu (TypeScript reference, default) or webgpu\n' +
  '  --block-size  KV block size in tokens (default 16)';

function parsePrompt(text: string, vocabSize: number): number[] {
  const parts = text.split(',').map((s) => s.trim());
  const ids = parts.map(Number);
  ids.forEach((id, i) => {
    if (parts[i] === '' || !Number.isInteger(id) || id < 0 || id >= vocabSize) {
      throw new UsageError(`--prompt: '${parts[i]}' is not a token id in 0..${vocabSize - 1}`);
    }
  });
  return ids;
}

export const generate: Command = {
  name: 'generate',
  summary: "Print the greedy token ids of one prompt (llama2.c run.c's loop) on the CPU reference or WebGPU executor.",
  usage,
  async run(args: string[]): Promise<number> {
    const { values, positionals } = parseOptions(
      args,
      {
        model: { type: 'string' },
        prompt: { type: 'string' },
        steps: { type: 'string' },
        executor: { type: 'string' },
        'block-size': { type: 'string' },
      },
      usage,
    );
    if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0]}'\nusage: ${usage}`);
    const kind = values.executor ?? 'cpu';
    if (kind !== 'cpu' && kind !== 'webgpu') throw new UsageError(`--executor must be cpu or webgpu, got '${kind}'`);
    const steps = intOption(values.steps, 'steps', 256, 0);
    const blockSize = intOption(values['block-size'], 'block-size', 16, 1);
    let weights;
    try {
      weights = loadCheckpoint(values.model ?? STORIES260K_PATH);
    } catch (err) {
      if (err instanceof CheckpointError) throw new UsageError(err.message);
      throw err;
    }
    const prompt = parsePrompt(values.prompt ?? '1', weights.config.vocabSize);
    const pool = { numBlocks: Math.ceil(weights.config.seqLen / blockSize), blockSize };
    let executor: ModelExecutor;
    if (kind === 'cpu') {
      executor = createCpuReferenceExecutor(weights, pool);
    } else {
      const { createWebGpuExecutor } = await import('../../engine/executors/webgpu/executor.ts');
      const { requestAdapter, webGpu, NO_ADAPTER_HINT } = await import('../../engine/executors/webgpu/device.ts');
      if (!(await requestAdapter(webGpu()))) throw new UsageError(NO_ADAPTER_HINT);
      executor = await createWebGpuExecutor(weights, pool);
    }
    try {
      const ids = await generateGreedy(executor, prompt, steps);
      console.log(ids.join(' '));
    } finally {
      executor.destroy();
    }
    return 0;
  },
};
