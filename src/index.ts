/**
 * coldstart as a typed library (the package's `main`/`types`): the engines the CLI's commands are built on.
 * Expected failures are thrown as a `ColdstartError` whose `code` maps to the CLI's exit codes (`ExitCode`).
 *
 *   import { readHeader, convertCheckpoint } from 'coldstart';
 */
export { runGpuLoad } from './load/gpu-load.js';
export type { CacheMode, GpuLoadOptions, GpuLoadResult } from './load/gpu-load.js';
export { resolveWeights, weightsAt } from './load/weights.js';
export type { ResolveWeightsOptions, WeightFiles, WeightFormat, WeightsAtOptions } from './load/weights.js';
export { convertCheckpoint } from './convert/convert.js';
export type { ConvertOptions, ConvertResult, ConvertedFile, TargetDtype } from './convert/convert.js';
export { downloadRepo } from './cache/download.js';
export type { DownloadOptions, DownloadResult, DownloadEvent } from './cache/download.js';
export { readHeader } from './formats/safetensors.js';
export type { SafetensorsHeader, TensorEntry } from './formats/safetensors.js';
export { ColdstartError, ExitCode } from './core/errors.js';
export type { ErrorCode, ExitCodeValue } from './core/errors.js';
export { loadNative } from './native.js';
export type { NativeLoad } from './native.js';
export { version } from './core/version.js';
