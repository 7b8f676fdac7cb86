// libcoldstart_load.so: the gpu-load engine (load_engine.h) behind a C ABI, for a server's own wake-up — a process
// that released its weights (vLLM's sleep level 2, the device proof's flat_weights.py) reads them back into its own
// tensors at the rate `coldstart profile` measures, instead of its framework's loader. Called from Python through
// ctypes (src/python/coldstart_load.py); no N-API and no Node here.
//
//   int cs_abi_version(void)                   4; bumped when a struct or a signature below changes
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
//
//   int cs_copy_staged(const cs_staged* items, uint64_t n, int device, cs_result* out)
//
// Copies GPU to GPU from allocations another process staged (restore --stage: coldstart's own process loaded the
// weights onto the card while CRIU restored the server): each item opens `handle` (a CUDA IPC handle, 128 hex digits)
// once, checks that offset + length lies inside the allocation behind it (cuMemGetAddressRange: the handle's owner
// cannot make it copy past its end), and copies that range to dst in `device`'s primary context. Every handle is
// closed before it returns, so nothing of the other process stays mapped here (a later checkpoint of this process
// would refuse IPC memory). Fails whole (code UNSUPPORTED where the driver lacks IPC, ENV where a handle does not
// open): the caller then reads those ranges from the files.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <exception>
#include <map>
#include <string>

#include "load_engine.h"

extern "C" {
struct cs_range {
  const char* path;
  uint64_t offset, length, dst;
};
struct cs_staged {
  const char* handle;  // 128 hex digits
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

bool ParseHandle(const char* hex, CUipcMemHandle* h) {
  if (!hex) return false;
  for (size_t i = 0; i < sizeof(h->reserved); i++) {
    auto nib = [](char c) -> int { return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1; };
    const int hi = nib(hex[2 * i]), lo = hi < 0 ? -1 : nib(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    h->reserved[i] = static_cast<char>(hi << 4 | lo);
  }
  return hex[2 * sizeof(h->reserved)] == 0;
}

// The other process's allocations mapped here, each closed on the way out (in the context they were opened in).
class OpenedHandles {
 public:
  ~OpenedHandles() {
    for (auto& kv : open_) Cuda().cuIpcCloseMemHandle(kv.second);
  }
  CUresult Open(const std::string& hex, const CUipcMemHandle& h, CUdeviceptr* p) {
    auto it = open_.find(hex);
    if (it != open_.end()) return *p = it->second, 0;
    CUresult r = Cuda().cuIpcOpenMemHandle(p, h, CU_IPC_MEM_LAZY_ENABLE_PEER_ACCESS);
    if (r == 0) open_[hex] = *p;
    return r;
  }

 private:
  std::map<std::string, CUdeviceptr> open_;
};

int CopyStaged(const cs_staged* items, uint64_t n, int device, cs_result* out) {
  if (n > kMaxRanges) return Refuse(out, Err::BadArg, "cs_copy_staged: at most 1,000,000 items, got " + std::to_string(n));
  if (n > 0 && !items) return Refuse(out, Err::BadArg, "cs_copy_staged: items is NULL");
  if (device < 0 || device > 1023) return Refuse(out, Err::BadArg, "cs_copy_staged: device must be a CUDA ordinal, got " + std::to_string(device));
  std::vector<CUipcMemHandle> handles(n);
  for (uint64_t i = 0; i < n; i++) {
    const cs_staged& it = items[i];
    const std::string at = "cs_copy_staged: items[" + std::to_string(i) + "]";
    uint64_t end = 0;
    if (!ParseHandle(it.handle, &handles[i])) return Refuse(out, Err::BadArg, at + ".handle is not 128 lowercase hex digits");
    if (!AddU64(it.offset, it.length, &end)) return Refuse(out, Err::BadArg, at + ": offset + length overflows");
    if (it.length > 0 && it.dst == 0) return Refuse(out, Err::BadArg, at + ": dst is NULL");
    if (!AddU64(it.dst, it.length, &end)) return Refuse(out, Err::BadArg, at + ": dst + length overflows");
  }
  const CudaApi& cu = Cuda();
  if (!cu.loaded) return Refuse(out, Err::NoGpu, "cs_copy_staged: no CUDA driver: " + cu.loadError);
  if (!cu.cuIpcOpenMemHandle || !cu.cuIpcCloseMemHandle || !cu.cuMemcpyDtoDAsync || !cu.cuMemGetAddressRange)
    return Refuse(out, Err::Unsupported, "cs_copy_staged: this CUDA driver lacks cuIpcOpenMemHandle, cuMemcpyDtoDAsync or cuMemGetAddressRange");
  const double t0 = MonotonicSeconds();
  CUcontext callers = nullptr;
  cu.cuCtxGetCurrent(&callers);
  int rc = 0;
  {
    // Declaration order is release order reversed: the context outlives the mapped handles and the stream.
    PrimaryCtx ctx;
    CUresult r = ctx.Retain(device);
    if (r == 0) r = ctx.Current();
    if (r != 0) {
      rc = Refuse(out, Err::NoGpu, "cs_copy_staged: GPU " + std::to_string(device) + ": no context: " + CuErrorText(r));
    } else {
      OpenedHandles opened;
      Stream stream;
      r = cu.cuStreamCreate(stream.out(), CU_STREAM_NON_BLOCKING);
      if (r != 0) stream.release(), rc = Refuse(out, Err::Env, "cs_copy_staged: cuStreamCreate failed: " + CuErrorText(r));
      for (uint64_t i = 0; rc == 0 && i < n; i++) {
        const cs_staged& it = items[i];
        if (it.length == 0) continue;
        CUdeviceptr base = 0, allocBase = 0;
        size_t allocBytes = 0;
        r = opened.Open(it.handle, handles[i], &base);
        if (r != 0) {
          rc = Refuse(out, Err::Env, "cs_copy_staged: the staged allocation did not open (cuIpcOpenMemHandle: " + CuErrorText(r) + "): its holder may have ended");
          break;
        }
        uint64_t end = 0;
        r = cu.cuMemGetAddressRange(&allocBase, &allocBytes, base);
        if (r != 0 || !AddU64(base - allocBase, it.offset, &end) || !AddU64(end, it.length, &end) || end > allocBytes) {
          rc = Refuse(out, Err::CorruptFile, "cs_copy_staged: items[" + std::to_string(i) + "]: offset " + std::to_string(it.offset) + " + length " + std::to_string(it.length) +
                                                  " lies outside the staged allocation (" + std::to_string(allocBytes) + " bytes)");
          break;
        }
        r = cu.cuMemcpyDtoDAsync(static_cast<CUdeviceptr>(it.dst), base + it.offset, it.length, stream.get());
        if (r != 0) {
          rc = Refuse(out, Err::Env, "cs_copy_staged: copy failed: " + CuErrorText(r));
          break;
        }
        out->bytes += it.length;
      }
      if (stream && (r = cu.cuStreamSynchronize(stream.get())) != 0 && rc == 0) rc = Refuse(out, Err::Env, "cs_copy_staged: copy failed: " + CuErrorText(r));
    }
  }
  cu.cuCtxSetCurrent(callers);
  out->seconds = MonotonicSeconds() - t0;
  out->copy_seconds = out->seconds;
  return rc;
}

}  // namespace
}  // namespace coldstart

extern "C" __attribute__((visibility("default"))) int cs_abi_version(void) { return 4; }

extern "C" __attribute__((visibility("default"))) int cs_copy_staged(const cs_staged* items, uint64_t n, int device, cs_result* out) {
  if (!out) return 2;
  memset(out, 0, sizeof(*out));
  try {
    return coldstart::CopyStaged(items, n, device, out);
  } catch (const std::exception& ex) {
    return coldstart::Refuse(out, coldstart::Err::Native, std::string("cs_copy_staged: ") + ex.what());
  } catch (...) {
    return coldstart::Refuse(out, coldstart::Err::Native, "cs_copy_staged: unexpected exception");
  }
}

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
