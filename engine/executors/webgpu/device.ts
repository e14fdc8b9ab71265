// Getting a WebGPU adapter and device through Dawn's Node binding (the `webgpu` package).
import { create, globals } from 'webgpu';

// Dawn's Vulkan loader warns without it; lavapipe does not need a real runtime dir.
process.env.XDG_RUNTIME_DIR ??= '/tmp';

let installed = false;
/** Puts GPUBufferUsage and friends on globalThis (once): Dawn's Node binding does not. */
export function installWebGpuGlobals(): void {
  if (installed) return;
  Object.assign(globalThis, globals);
  installed = true;
}

/** The one-line advice when there is no adapter (Debian bookworm: Mesa 25 lavapipe from backports). */
export const NO_ADAPTER_HINT =
  "no WebGPU adapter: install a Vulkan driver; on Debian bookworm, Mesa 25 lavapipe (Vulkan on the CPU): echo 'deb http://deb.debian.org/debian bookworm-backports main' > /etc/apt/sources.list.d/bpo.list && apt-get update && apt-get install -y -t bookworm-backports mesa-vulkan-drivers";

/** The GPU entry point is kept referenced while in use: Dawn tears down when it is collected. */
let gpuInstance: GPU | null = null;
export function webGpu(options: string[] = []): GPU {
  installWebGpuGlobals();
  if (options.length > 0) return create(options);
  gpuInstance ??= create([]);
  return gpuInstance;
}

/** The default adapter, or null when none exists (never throws for a missing driver). */
export async function requestAdapter(gpu: GPU = webGpu()): Promise<GPUAdapter | null> {
  try {
    return await gpu.requestAdapter({ powerPreference: 'high-performance' });
  } catch {
    return null;
  }
}

export interface AdapterSummary {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  isFallbackAdapter: boolean;
}

export function describeAdapter(adapter: GPUAdapter): AdapterSummary {
  const info = adapter.info as GPUAdapterInfo & { isFallbackAdapter?: boolean };
  return {
    vendor: info.vendor,
    architecture: info.architecture,
    device: info.device,
    description: info.description,
    isFallbackAdapter: info.isFallbackAdapter === true,
  };
}

/**
 * A device with the adapter's own limits for buffer sizes and workgroup memory (the spec defaults of
 * 128 MiB / 16 KiB would cap the KV pool and attention's head size needlessly).
 */
export async function requestDevice(adapter: GPUAdapter, features: GPUFeatureName[] = []): Promise<GPUDevice> {
  const l = adapter.limits;
  return adapter.requestDevice({
    requiredFeatures: features,
    requiredLimits: {
      maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
      maxBufferSize: l.maxBufferSize,
      maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
    },
  });
}
