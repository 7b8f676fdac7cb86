/** The types of the download: what a caller asks (DownloadOptions), what it hears (DownloadEvent), what it gets (DownloadResult). */
import type { RepoType } from '../hub/api.js';

export type Env = Record<string, string | undefined>;

export interface DownloadResult {
  repo: string;
  revision: string;
  commit: string;
  cacheDir: string;
  snapshotDir: string;
  files: Array<{ path: string; bytes: number; seconds: number; cached: boolean }>;
  bytesDownloaded: number;
  bytesTotal: number;
  seconds: number;
  bytesPerSecond: number;
  fromCache: boolean;
  /** 'cache' (HF cache layout) or 'local-dir'. */
  mode?: 'cache' | 'local-dir';
  /** Files of the repo not fetched (filters or the default .bin skip), with their sizes. */
  excluded?: Array<{ path: string; bytes: number }>;
  /** Set when the default skip of duplicate weight formats applied (safetensors present). */
  defaultExcludes?: string[];
  /** HF_HUB_OFFLINE: only the cache was read. */
  offline?: boolean;
  /** --dry-run: every selected file and whether this run would fetch it (nothing was written). */
  dryRun?: Array<{ path: string; bytes: number; willDownload: boolean }>;
  /** Files continued from an `.incomplete` prefix, and from which byte. */
  resumed?: Array<{ path: string; fromByte: number }>;
  /**
   * Exact byte accounting. bytesWire: body bytes that came over the network (every attempt). bytesResumed:
   * bytes taken from partial files and kept. bytesRefetched: bytes fetched again, i.e. a resumed prefix that
   * a server refusing Range (416, or 200 with the whole body) made us throw away. bytesDownloaded === bytesWire.
   */
  bytesWire?: number;
  bytesResumed?: number;
  bytesRefetched?: number;
}

export type DownloadEvent =
  | { type: 'retry'; file: string; attempt: number; waitSeconds: number; reason: string }
  | { type: 'resume'; file: string; fromByte: number }
  | { type: 'waiting-lock'; file: string }
  | { type: 'rejected'; file: string; reason: string };

export interface DownloadOptions {
  repo: string;
  revision?: string;
  include?: string[];
  exclude?: string[];
  localDir?: string;
  concurrency?: number;
  env: Env;
  signal?: AbortSignal;
  onProgress?: (p: { bytesDone: number; bytesTotal: number; file?: string }) => void;
  /** Transient-failure retries per request (default 5) and the first backoff (default 500 ms, doubling). */
  retries?: number;
  retryBaseMs?: number;
  /** Socket idle timeout (default 30 s). */
  timeoutMs?: number;
  /** Skip .bin/.pt/… weights when safetensors exist (default: true unless include/exclude given). */
  defaultExcludes?: boolean;
  onEvent?: (e: DownloadEvent) => void;
  /** huggingface_hub's repo_type (default model): API path, resolve URL and cache folder (`datasets--org--name`). */
  repoType?: RepoType;
  /**
   * `hf download REPO FILENAMES…`: these files only (a name ending in `/` means everything under it); like
   * huggingface_hub they replace --include/--exclude and the default skip. A name not in the repo is an error.
   */
  filenames?: string[];
  /** Fetch again even when cached (huggingface_hub force_download); the fresh verified blob replaces the old one. */
  forceDownload?: boolean;
  /** Resolve and list only: what would be fetched and its size; nothing written, no file bytes requested. */
  dryRun?: boolean;
}
