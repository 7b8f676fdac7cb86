// libcoldstart_load.so: the gpu-load engine (load_engine.h) behind a C ABI, for a server's own wake-up — a process
// that released its weights (vLLM's sleep level 2, the device proof's flat_weights.py) reads them back into its own
// tensors at the rate `coldstart profile` measures, instead of its framework's loader. Called from Python through
// ctypes (src/python/coldstart_load.py); no N-API and no Node here.
//
//   int cs_abi_version(void)                   3; bumped when a struct or a signature below changes
//   int cs_load(const cs_range* ranges, uint64_t n, int device, int threads, uint64_t chunk_bytes, int disk_streams,
//               int cold_reads, cs_result* out)
//
// Each range copies `length` bytes of `path` from byte `offset` to `dst`: a CUdeviceptr valid in `device`'s
// primary context (the one torch and vLLM allocate in) when device >= 0, a host address when device is -1. Reads
// land in a pinned ring (copied on several streams), chunk_bytes at a time; a chunk the page cache holds whole is read
// from it; one it does not is read from the disk by at most disk_streams threads at once, lowest offset first (0: no
// bound). out->cold_bytes: the bytes of the ranges the page cache lacked when the call began, counted before the first
// read (UINT64_MAX: residency could not be told). cold_reads says how such a chunk
// is read: 1, around the page cache (O_DIRECT, straight into the ring: the disk's full rate, the page cache left as
// found); 0, through it (buffered: what was read stays cached). A file whose O_DIRECT reads are refused is read through
// the page cache and counted in out->direct_refused. Returns 0
// and fills out->bytes/seconds on success; otherwise a nonzero value with out->code (one of base.h's ErrName) and a
// one-line out->error naming the file or argument. Every number is checked before anything is opened or allocated;
// the memory behind dst is the caller's: nothing is allocated there or freed.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <exception>
#include <string>

#include "load_engine.h"

extern "C" {
struct cs_range {
  const char* path;
  uint64_t offset, length, dst;
};
struct cs_result {
  uint64_t bytes;
  double seconds, read_seconds, copy_seconds;
  uint64_t cold_bytes;       // bytes not in the page cache when the call began (UINT64_MAX: not measured)
  uint64_t disk_readers_max; // the most chunks read from the disk at once
  uint64_t direct_refused;   // files whose cold chunks went through the page cache: O_DIRECT was refused for them
  char code[32];
  char error[1024];
};
}

namespace coldstart {
namespace {

constexpr uint64_t kMaxRanges = 1000000;
constexpr uint64_t kMaxChunks = 1ull << 24;

void Put(char* dst, size_t cap, const std::string& s) {
  size_t n = std::min(cap - 1, s.size());
  memcpy(dst, s.data(), n);
  dst[n] = 0;
}

int Refuse(cs_result* out, const char* code, const std::string& msg) {
  Put(out->code, sizeof(out->code), code);
  Put(out->error, sizeof(out->error), msg);
  return 1;
}
int Refuse(cs_result* out, Err c, const std::string& msg) { return Refuse(out, ErrName(c), msg); }

int Load(const cs_range* ranges, uint64_t n, int device, int threads, uint64_t chunkBytes, int diskStreams, int coldReads, cs_result* out) {
  if (n > kMaxRanges) return Refuse(out, Err::BadArg, "cs_load: at most 1,000,000 ranges, got " + std::to_string(n));
  if (n > 0 && !ranges) return Refuse(out, Err::BadArg, "cs_load: ranges is NULL");
  if (device < -1 || device > 1023) return Refuse(out, Err::BadArg, "cs_load: device must be -1 (host) or a CUDA ordinal, got " + std::to_string(device));
  if (threads < 1 || threads > kMaxThreads) return Refuse(out, Err::BadArg, "cs_load: threads must be 1..256, got " + std::to_string(threads));
  if (diskStreams < 0 || diskStreams > kMaxThreads)
    return Refuse(out, Err::BadArg, "cs_load: disk_streams must be 0 (no bound) or 1..256, got " + std::to_string(diskStreams));
  if (coldReads != 0 && coldReads != 1)
    return Refuse(out, Err::BadArg, "cs_load: cold_reads must be 1 (around the page cache, O_DIRECT) or 0 (through it), got " + std::to_string(coldReads));
  if (!ChunkBytesOk(chunkBytes))
    return Refuse(out, Err::BadArg, "cs_load: chunk_bytes must be a multiple of 4096 up to 1 GiB, got " + std::to_string(chunkBytes));
  LoadEngine e;
  e.gpu = device >= 0;
  e.sink = e.gpu ? Sink::Device : Sink::Memory;
  e.path = CopyPath::Ring;
  e.chunkBytes = chunkBytes;
  e.threads = threads;
  // As gpu-load's measured defaults (src/load/gpu-load.ts DEFAULTS): threads + 2 ring buffers of huge-page memory
  // pinned with cuMemHostRegister (cuMemHostAlloc when that fails), 4 streams.
  e.buffers = threads + 2;
  e.streams = std::min(4, threads);
  e.registerRing = true;
  e.watchCold = true;
  e.coldDirect = coldReads == 1;
  e.diskStreams = diskStreams;
  if (!RingOk(chunkBytes, e.buffers)) return Refuse(out, Err::BadArg, "cs_load: threads × chunk_bytes is more than 64 GiB of ring");
  for (uint64_t i = 0; i < n; i++) {
    const cs_range& r = ranges[i];
    const std::string at = "cs_load: ranges[" + std::to_string(i) + "]";
    if (!r.path || !*r.path) return Refuse(out, Err::BadArg, at + ".path is empty");
    uint64_t end = 0, dstEnd = 0;
    if (!AddU64(r.offset, r.length, &end)) return Refuse(out, Err::BadArg, at + " (" + r.path + "): offset + length overflows");
    if (r.length > 0 && r.dst == 0) return Refuse(out, Err::BadArg, at + " (" + r.path + "): dst is NULL");
    if (!AddU64(r.dst, r.length, &dstEnd)) return Refuse(out, Err::BadArg, at + " (" + r.path + "): dst + length overflows");
    auto f = std::make_unique<FileSpec>();
    f->path = r.path;
    f->begin = r.offset;
    f->end = end;
    f->device = device;
    if (e.gpu) f->givenDptr = static_cast<CUdeviceptr>(r.dst);
    else f->givenHost = reinterpret_cast<char*>(static_cast<uintptr_t>(r.dst));
    e.files.push_back(std::move(f));
    // Chunks start on 4 KiB boundaries of the file (the first one skips up to the range's start), so that a chunk
    // read around the page cache (O_DIRECT: aligned offset, length and buffer) reads the same bytes.
    const uint64_t base = r.offset - r.offset % kAlign;
    for (uint64_t at = base; r.length > 0; at += chunkBytes) {
      if (e.chunks.size() >= kMaxChunks) return Refuse(out, Err::BadArg, "cs_load: more than 16,777,216 chunks: raise chunk_bytes");
      const bool last = end - at <= chunkBytes;  // at < end here; at + chunkBytes is then never computed past 2^64
      const uint64_t from = std::max(at, r.offset), to = last ? end : at + chunkBytes;
      const uint64_t skip = from - at, len = to - from;
      const uint64_t readLen = std::min(chunkBytes, (skip + len + kAlign - 1) / kAlign * kAlign);
      e.chunks.push_back(Chunk{static_cast<uint32_t>(i), at, readLen, skip, len, from - r.offset});
      if (last) break;
    }
  }
  if (e.gpu && !Cuda().loaded) return Refuse(out, Err::NoGpu, "cs_load: no CUDA driver: " + Cuda().loadError + " (pass device -1 to load into host memory)");
  // The caller's thread keeps the context it had (a server's torch thread has its device's primary context
  // current; the engine leaves none current on the threads it used).
  CUcontext callers = nullptr;
  if (e.gpu) Cuda().cuCtxGetCurrent(&callers);
  e.Run();
  if (e.gpu) Cuda().cuCtxSetCurrent(callers);
  if (!e.error.empty()) return Refuse(out, e.code.c_str(), e.error);
  std::vector<Interval> reads, copies;
  for (auto& j : e.jobs) {
    out->bytes += j->bytes;
    reads.insert(reads.end(), j->reads.begin(), j->reads.end());
    copies.insert(copies.end(), j->copies.begin(), j->copies.end());
  }
  out->seconds = e.seconds;
  out->read_seconds = UnionLength(reads);
  out->copy_seconds = UnionLength(copies);
  out->cold_bytes = e.coldUnknown.load() ? UINT64_MAX : e.coldBytes.load();
  out->disk_readers_max = static_cast<uint64_t>(e.diskGate.MaxInUse());
  out->direct_refused = e.directRefused.load();
  return 0;
}

}  // namespace
}  // namespace coldstart

extern "C" __attribute__((visibility("default"))) int cs_abi_version(void) { return 3; }

extern "C" __attribute__((visibility("default"))) int cs_load(const cs_range* ranges, uint64_t n, int device, int threads, uint64_t chunk_bytes, int disk_streams,
                                                              int cold_reads, cs_result* out) {
  if (!out) return 2;
  memset(out, 0, sizeof(*out));
  try {
    return coldstart::Load(ranges, n, device, threads, chunk_bytes, disk_streams, cold_reads, out);
  } catch (const std::exception& ex) {
    return coldstart::Refuse(out, coldstart::Err::Native, std::string("cs_load: ") + ex.what());
  } catch (...) {
    return coldstart::Refuse(out, coldstart::Err::Native, "cs_load: unexpected exception");
  }
}
