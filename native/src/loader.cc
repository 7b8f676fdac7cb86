// gpu-load engine (issues 4, 15): puts byte ranges of files (the data sections of safetensors files, validated in
// TypeScript first and again here) into GPU memory through the dlopen'd driver API, timed.
//
// Two copy paths (options.path):
//   ring    reader threads ──pread (optionally O_DIRECT)──▶ ring of pinned host buffers ──cuMemcpyHtoDAsync (N streams)──▶
//           one device allocation per file. A buffer goes back to the ring as soon as its copy is enqueued; the
//           next reader that takes it waits on the buffer's end event first, so reads overlap the DMA.
//   mapped  the files are mmap'ed read-only; each worker pins one chunk of the mapping in place with
//           cuMemHostRegister(READ_ONLY) — which faults the page-cache pages in — and the GPU DMAs straight from
//           the page cache: no host copy at all. Meant for warm caches (a cold fault-in reads one page at a time).
//
// Every chunk's read (or registration) is timed on the host clock and every copy with a pair of CUDA events placed
// on a common timeline, which gives read-busy, copy-busy and overlap time. The chunk plan (which bytes go where) is
// computed in TypeScript (planChunks) and handed over as a Float64Array; every number in it is checked here before
// it becomes a uint64_t (checked.h), and every sum is overflow-checked, before anything is allocated.
//
// With no driver the ring path runs with plain aligned host buffers and the "copy" is a memcpy into host memory
// (sink "memory") or nothing at all (sink "discard", used for read-bandwidth limits and cache warming).
//
// Everything acquired is owned by a handle from handles.h. progress is a BigUint64Array (on a SharedArrayBuffer)
// that the workers add to atomically and JS reads with Atomics.load.
//
// Exports: gpuLoad(options). pagecache.cc adds pageCache/prefetch, limits.cc transferLimits/deviceMemInfo.
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "checked.h"
#include "common.h"
#include "cuda_api.h"
#include "handles.h"

namespace coldstart {

void InitPageCache(Napi::Env env, Napi::Object exports);  // pagecache.cc
void InitLimits(Napi::Env env, Napi::Object exports);     // limits.cc

namespace {

constexpr uint64_t kAlign = 4096;             // O_DIRECT offset/length/address alignment
constexpr uint64_t kDevRound = 2 << 20;       // the driver hands out device memory in 2 MiB pages
constexpr uint64_t kDevMargin = 64ull << 20;  // left free on the card besides the allocations
constexpr uint64_t kMaxChunk = 1ull << 30;    // one ring buffer
constexpr uint64_t kMaxRing = 64ull << 30;    // buffers × chunkBytes
constexpr uint64_t kMaxSample = 64ull << 20;  // one verify sample (it is allocated twice)
constexpr size_t kOpenFiles = 32;             // descriptors open at once per pool (buffered, O_DIRECT), any file count

std::string Errno(int e) { return std::string(strerror(e)) + " (errno " + std::to_string(e) + ")"; }

struct Interval {
  double a, b;
  uint32_t file;
};

// Length of the union of intervals.
double UnionLength(std::vector<Interval> v) {
  std::sort(v.begin(), v.end(), [](const Interval& x, const Interval& y) { return x.a < y.a; });
  double total = 0, ca = 0, cb = -1;
  bool open = false;
  for (const Interval& i : v) {
    if (!open || i.a > cb) {
      if (open) total += cb - ca;
      ca = i.a;
      cb = i.b;
      open = true;
    } else if (i.b > cb) {
      cb = i.b;
    }
  }
  if (open) total += cb - ca;
  return total;
}

// Sorted, merged copy of the intervals.
std::vector<Interval> Merge(std::vector<Interval> v) {
  std::sort(v.begin(), v.end(), [](const Interval& x, const Interval& y) { return x.a < y.a; });
  std::vector<Interval> out;
  for (const Interval& i : v) {
    if (!out.empty() && i.a <= out.back().b) out.back().b = std::max(out.back().b, i.b);
    else out.push_back(i);
  }
  return out;
}

// Length of the intersection of two interval sets.
double IntersectLength(const std::vector<Interval>& x, const std::vector<Interval>& y) {
  std::vector<Interval> a = Merge(x), b = Merge(y);
  size_t i = 0, j = 0;
  double total = 0;
  while (i < a.size() && j < b.size()) {
    double lo = std::max(a[i].a, b[j].a), hi = std::min(a[i].b, b[j].b);
    if (hi > lo) total += hi - lo;
    if (a[i].b < b[j].b) i++;
    else j++;
  }
  return total;
}

struct FileSpec {
  std::string path;
  uint64_t begin = 0, end = 0;  // absolute byte range to load
  int device = -1;              // CUDA ordinal, -1 in host mode
  // runtime: descriptors come from the baton's pools (fds, fdsDirect), opened when a chunk of the file is read
  std::atomic<bool> directOk{false};
  Mapping map;             // path "mapped" (the descriptor is closed once the file is mapped)
  CUdeviceptr dptr = 0;    // owned by RunJob's DeviceMem (freed on the job's thread, in its context)
  HostMem host;            // sink "memory"
  uint64_t size() const { return end - begin; }
};

struct Chunk {
  uint32_t file;
  uint64_t readOff, readLen, skip, copyLen, dest;
};

struct Sample {
  uint32_t file;
  uint64_t offset, length;  // relative to the file's begin
};

enum class Sink { Device, Memory, Discard };
enum class CopyPath { Ring, Mapped };

// One ring buffer. Members are destroyed in reverse order: events, then the registration, then the memory.
struct Buf {
  HostMem host;       // posix_memalign'ed (host mode, or ring "register")
  PinnedMem pinned;   // cuMemHostAlloc'ed (ring "alloc")
  Registration reg;   // pins `host` (ring "register")
  char* p = nullptr;  // whichever of the above holds the bytes
  Event evStart, evEnd;
  bool pending = false;
  uint32_t file = 0;
};

struct LoadBaton;

// One device's (or the host's) pipeline.
struct Job {
  LoadBaton* owner = nullptr;
  int device = -1;
  std::string name;
  std::vector<uint32_t> files;
  std::vector<Chunk> chunks;
  // results
  double t0 = 0, tStart = 0, t1 = 0, setupSeconds = 0, allocSeconds = 0, ringSeconds = 0, registerSeconds = 0;
  bool pinned = false;
  uint64_t bytes = 0;
  std::vector<Interval> reads, copies;
  uint64_t checked = 0, checkedBytes = 0, mismatches = 0;
  std::string firstMismatch;
  std::string code, error;
  void Fail(Err c, const std::string& m) {
    std::lock_guard<std::mutex> g(mu);
    if (error.empty()) {
      code = ErrName(c);
      error = m;
    }
  }
  std::mutex mu;
};

struct LoadBaton : Baton {
  // inputs (all validated by GpuLoad before the baton is queued)
  bool gpu = false;
  Sink sink = Sink::Device;
  CopyPath path = CopyPath::Ring;
  std::vector<std::unique_ptr<FileSpec>> files;
  std::unique_ptr<FdPool> fds, fdsDirect;  // at most kOpenFiles each open at a time, however many files
  std::vector<Chunk> chunks;
  std::vector<Sample> samples;
  uint64_t chunkBytes = 16 << 20;
  int threads = 8, buffers = 16, streams = 4;
  bool direct = false, returnHost = false, testCorrupt = false;
  std::atomic<uint32_t> directRefused{0};  // files read through the page cache after O_DIRECT was refused
  std::atomic<bool> registerRing{false};
  int32_t* cancel = nullptr;     // SharedArrayBuffer memory, read atomically
  uint64_t* progress = nullptr;  // SharedArrayBuffer memory, added to atomically
  Napi::ObjectReference cancelRef, progressRef;
  // shared state
  std::atomic<bool> failed{false};
  // outputs
  std::vector<std::unique_ptr<Job>> jobs;
  double seconds = 0;
  std::vector<std::string> notes;
  std::mutex notesMu;

  bool Cancelled() const { return cancel && __atomic_load_n(cancel, __ATOMIC_RELAXED) != 0; }
  // The next chunk for a worker (ring reader or mapped copier) into ci; false when the plan is done, another
  // worker failed, or the load was cancelled (then the job fails with Interrupted and the others stop too).
  bool ClaimChunk(Job& job, std::atomic<size_t>& next, size_t& ci) {
    if (failed.load(std::memory_order_relaxed)) return false;
    if (Cancelled()) {
      job.Fail(Err::Interrupted, "the load was cancelled");
      failed = true;
      return false;
    }
    ci = next.fetch_add(1);
    return ci < job.chunks.size();
  }
  void Note(const std::string& n) {
    std::lock_guard<std::mutex> g(notesMu);
    if (std::find(notes.begin(), notes.end(), n) == notes.end()) notes.push_back(n);
  }
  // One note for the first file whose O_DIRECT open or read was refused (a filesystem refuses it for all of
  // them), counted; Run() adds how many files it was in all.
  void DirectRefused(const std::string& path, const std::string& why) {
    if (directRefused.fetch_add(1) == 0) Note("O_DIRECT is not supported for " + path + " (" + why + "); it was read through the page cache");
  }
  void AddDone(uint64_t n) {
    if (progress) __atomic_add_fetch(progress, n, __ATOMIC_RELAXED);
  }

  void Run() override;
  void RunJob(Job& job);
  void Reader(Job& job, const PrimaryCtx& ctx, std::vector<Buf>& bufs, std::deque<int>& freeList, std::mutex& mu,
              std::condition_variable& cv, std::atomic<size_t>& next, CUstream stream, CUevent ref, double tRef);
  void MappedWorker(Job& job, const PrimaryCtx& ctx, std::atomic<size_t>& next, CUstream stream, CUevent ref, double tRef);
  bool ReadChunk(const Chunk& c, char* dst, Job& job);
  bool AllocBuf(Job& job, Buf& x);
  void Verify(Job& job);
  Napi::Value ToJS(Napi::Env env) override;
};

// Reads c.readLen bytes (or up to EOF, as long as skip+copyLen arrive) at c.readOff into dst.
bool LoadBaton::ReadChunk(const Chunk& c, char* dst, Job& job) {
  FileSpec& f = *files[c.file];
  const uint64_t need = c.skip + c.copyLen;  // ≤ readLen ≤ chunkBytes (checked at parse)
  bool useDirect = direct && f.directOk.load();
  FdLease lease(useDirect ? *fdsDirect : *fds, c.file);
  if (!lease) {
    int e = lease.error();
    if (useDirect) {
      f.directOk = false;
      DirectRefused(f.path, Errno(e));
      return ReadChunk(c, dst, job);
    }
    job.Fail(ErrFromErrno(e), f.path + ": cannot open: " + Errno(e));
    return false;
  }
  int fd = lease.get();
  uint64_t off = useDirect ? c.readOff : c.readOff + c.skip;
  uint64_t len = useDirect ? c.readLen : c.copyLen;
  char* p = useDirect ? dst : dst + c.skip;
  uint64_t got = 0, want = useDirect ? need : c.copyLen;
  while (got < len) {
    ssize_t r = pread(fd, p + got, len - got, static_cast<off_t>(off + got));
    if (r < 0) {
      if (errno == EINTR) continue;
      if (useDirect && errno == EINVAL) {
        // The filesystem accepted O_DIRECT at open but not for this read: fall back to the page cache.
        f.directOk = false;
        DirectRefused(f.path, "EINVAL on read");
        return ReadChunk(c, dst, job);
      }
      int e = errno;
      job.Fail(ErrFromErrno(e), f.path + ": read failed at byte " + std::to_string(off + got) + ": " + Errno(e));
      return false;
    }
    if (r == 0) break;
    got += static_cast<uint64_t>(r);
    if (useDirect && got >= want && (got % kAlign) != 0) break;  // EOF inside the last block
  }
  if (got < want) {
    job.Fail(Err::CorruptFile, f.path + ": file ended at byte " + std::to_string(off + got) + " while " + std::to_string(off + want) +
                                   " were expected (was it truncated while loading?)");
    return false;
  }
  return true;
}

char* AlignedAlloc(size_t n) {
  void* p = nullptr;
  if (posix_memalign(&p, kAlign, std::max<size_t>(n, kAlign)) != 0) return nullptr;
  return static_cast<char*>(p);
}

// A ring buffer on its first use: pinned (with its two timing events) for a GPU, plain aligned memory otherwise.
bool LoadBaton::AllocBuf(Job& job, Buf& x) {
  const CudaApi& cu = Cuda();
  if (!job.pinned) {
    x.host.reset(AlignedAlloc(chunkBytes));
    x.p = x.host.get();
    if (!x.p) job.Fail(Err::Env, "could not allocate a " + std::to_string(chunkBytes) + "-byte read buffer");
    return x.p != nullptr;
  }
  CUresult r;
  if (registerRing) {
    // Transparent huge pages, faulted in, then pinned: fewer pages for the driver to pin and map.
    const uint64_t huge = 2 << 20;
    uint64_t n = 0;
    if (!RoundUpU64(chunkBytes, huge, &n)) return job.Fail(Err::BadArg, "chunk size overflows"), false;
    void* p = nullptr;
    if (posix_memalign(&p, huge, n) != 0) {
      job.Fail(Err::Env, "could not allocate a " + std::to_string(n) + "-byte read buffer");
      return false;
    }
    x.host.reset(static_cast<char*>(p));
    madvise(p, n, MADV_HUGEPAGE);
    memset(p, 0, n);
    r = cu.cuMemHostRegister(p, n, CU_MEMHOSTREGISTER_PORTABLE);
    if (r == 0) {
      x.reg.reset(p);
      x.p = x.host.get();
    } else {
      x.host.reset();
      registerRing = false;  // this platform cannot register host memory: use cuMemHostAlloc from now on
      Note("cuMemHostRegister failed (" + CuErrorText(r) + "); the ring was allocated with cuMemHostAlloc");
    }
  }
  if (!x.p) {
    r = cu.cuMemHostAlloc(x.pinned.out(), chunkBytes, CU_MEMHOSTALLOC_PORTABLE);
    if (r != 0) {
      x.pinned.release();
      job.Fail(Err::Env, "cuMemHostAlloc of a " + std::to_string(chunkBytes) + "-byte pinned buffer failed: " + CuErrorText(r));
      return false;
    }
    x.p = static_cast<char*>(x.pinned.get());
  }
  r = cu.cuEventCreate(x.evStart.out(), CU_EVENT_DEFAULT);
  if (r == 0) r = cu.cuEventCreate(x.evEnd.out(), CU_EVENT_DEFAULT);
  if (r != 0) {
    job.Fail(Err::Env, "cuEventCreate failed: " + CuErrorText(r));
    return false;
  }
  return true;
}

void LoadBaton::Reader(Job& job, const PrimaryCtx& ctx, std::vector<Buf>& bufs, std::deque<int>& freeList, std::mutex& mu,
                       std::condition_variable& cv, std::atomic<size_t>& next, CUstream stream, CUevent ref, double tRef) {
  const CudaApi& cu = Cuda();
  if (ctx.get()) ctx.Current();
  std::vector<Interval> reads, copies;
  double ringSeconds = 0;
  auto collect = [&](Buf& b) {
    // Called by the thread that takes a buffer whose copy may still be in flight.
    CUresult r = cu.cuEventSynchronize(b.evEnd.get());
    if (r != 0) {
      job.Fail(Err::Env, "copy to GPU " + std::to_string(job.device) + " failed: " + CuErrorText(r));
      failed = true;
    } else {
      float ms0 = 0, ms1 = 0;
      cu.cuEventElapsedTime(&ms0, ref, b.evStart.get());
      cu.cuEventElapsedTime(&ms1, ref, b.evEnd.get());
      copies.push_back({tRef + ms0 * 1e-3, tRef + ms1 * 1e-3, b.file});
    }
    b.pending = false;
  };
  for (size_t ci; ClaimChunk(job, next, ci);) {
    const Chunk& c = job.chunks[ci];
    int bi;
    {
      std::unique_lock<std::mutex> lk(mu);
      cv.wait(lk, [&] { return !freeList.empty(); });
      bi = freeList.front();
      freeList.pop_front();
    }
    Buf& b = bufs[static_cast<size_t>(bi)];
    if (!b.p) {
      double ta = MonotonicSeconds();
      bool ok = AllocBuf(job, b);
      ringSeconds += MonotonicSeconds() - ta;
      if (!ok) {
        failed = true;
        std::lock_guard<std::mutex> lk(mu);
        freeList.push_back(bi);
        cv.notify_one();
        break;
      }
    }
    if (b.pending) collect(b);
    bool ok = !failed.load();
    if (ok) {
      double ta = MonotonicSeconds();
      ok = ReadChunk(c, b.p, job);
      double tb = MonotonicSeconds();
      reads.push_back({ta, tb, c.file});
      if (!ok) failed = true;
    }
    if (ok) {
      FileSpec& f = *files[c.file];
      if (sink == Sink::Device) {
        b.file = c.file;
        CUresult r = cu.cuEventRecord(b.evStart.get(), stream);
        if (r == 0) r = cu.cuMemcpyHtoDAsync(f.dptr + c.dest, b.p + c.skip, c.copyLen, stream);
        if (r == 0) r = cu.cuEventRecord(b.evEnd.get(), stream);
        if (r != 0) {
          job.Fail(Err::Env, "cuMemcpyHtoDAsync to GPU " + std::to_string(job.device) + " failed: " + CuErrorText(r));
          failed = true;
        } else {
          b.pending = true;
        }
      } else if (sink == Sink::Memory) {
        double ta = MonotonicSeconds();
        memcpy(f.host.get() + c.dest, b.p + c.skip, c.copyLen);
        copies.push_back({ta, MonotonicSeconds(), c.file});
      }
      AddDone(c.copyLen);
    }
    {
      std::lock_guard<std::mutex> lk(mu);
      freeList.push_back(bi);
    }
    cv.notify_one();
  }
  std::lock_guard<std::mutex> g(job.mu);
  job.ringSeconds += ringSeconds;
  job.reads.insert(job.reads.end(), reads.begin(), reads.end());
  job.copies.insert(job.copies.end(), copies.begin(), copies.end());
}

// Path "mapped": pin a chunk of the read-only file mapping in place (this faults its page-cache pages in: the
// "read"), DMA it, and unregister it once its copy is done. Two chunks per worker stay in flight.
void LoadBaton::MappedWorker(Job& job, const PrimaryCtx& ctx, std::atomic<size_t>& next, CUstream stream, CUevent ref, double tRef) {
  const CudaApi& cu = Cuda();
  ctx.Current();
  const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  struct InFlight {
    Registration reg;  // destroyed last of the three: after the events
    Event e0, e1;
    uint32_t file = 0;
  };
  std::deque<InFlight> q;
  std::vector<Interval> reads, copies;
  double registerSeconds = 0;
  auto drainOne = [&] {
    InFlight& x = q.front();
    CUresult r = cu.cuEventSynchronize(x.e1.get());
    if (r != 0) {
      job.Fail(Err::Env, "copy to GPU " + std::to_string(job.device) + " failed: " + CuErrorText(r));
      failed = true;
      cu.cuStreamSynchronize(stream);  // nothing may still read the pages we unpin
    } else {
      float ms0 = 0, ms1 = 0;
      cu.cuEventElapsedTime(&ms0, ref, x.e0.get());
      cu.cuEventElapsedTime(&ms1, ref, x.e1.get());
      copies.push_back({tRef + ms0 * 1e-3, tRef + ms1 * 1e-3, x.file});
    }
    q.pop_front();
  };
  for (size_t ci; ClaimChunk(job, next, ci);) {
    const Chunk& c = job.chunks[ci];
    FileSpec& f = *files[c.file];
    if (c.copyLen == 0) continue;
    // begin + dest + copyLen ≤ end ≤ the mapping's size (checked at parse and open).
    const uint64_t srcOff = f.begin + c.dest;
    const uint64_t lo = srcOff / page * page;
    uint64_t hi = 0;
    if (!RoundUpU64(srcOff + c.copyLen, page, &hi)) {
      job.Fail(Err::BadArg, "chunk range overflows");
      failed = true;
      break;
    }
    InFlight x;
    x.file = c.file;
    double ta = MonotonicSeconds();
    void* base = f.map.data() + lo;
    CUresult r = cu.cuMemHostRegister(base, hi - lo, CU_MEMHOSTREGISTER_READ_ONLY);
    double tb = MonotonicSeconds();
    if (r != 0) {
      job.Fail(Err::Unsupported, "cuMemHostRegister(READ_ONLY) of " + f.path + " mapped at byte " + std::to_string(lo) +
                                     " failed: " + CuErrorText(r) + " (read-only registration needs CUDA 11.1+; use path ring)");
      failed = true;
      break;
    }
    x.reg.reset(base);
    registerSeconds += tb - ta;
    reads.push_back({ta, tb, c.file});
    r = cu.cuEventCreate(x.e0.out(), CU_EVENT_DEFAULT);
    if (r == 0) r = cu.cuEventCreate(x.e1.out(), CU_EVENT_DEFAULT);
    if (r == 0) r = cu.cuEventRecord(x.e0.get(), stream);
    if (r == 0) r = cu.cuMemcpyHtoDAsync(f.dptr + c.dest, f.map.data() + srcOff, c.copyLen, stream);
    if (r == 0) r = cu.cuEventRecord(x.e1.get(), stream);
    if (r != 0) {
      cu.cuStreamSynchronize(stream);
      job.Fail(Err::Env, "cuMemcpyHtoDAsync to GPU " + std::to_string(job.device) + " failed: " + CuErrorText(r));
      failed = true;
      break;
    }
    q.push_back(std::move(x));
    AddDone(c.copyLen);
    while (q.size() > 2) drainOne();
  }
  while (!q.empty()) drainOne();
  std::lock_guard<std::mutex> g(job.mu);
  job.registerSeconds += registerSeconds;
  job.reads.insert(job.reads.end(), reads.begin(), reads.end());
  job.copies.insert(job.copies.end(), copies.begin(), copies.end());
}

void LoadBaton::RunJob(Job& job) {
  const CudaApi& cu = Cuda();
  job.t0 = MonotonicSeconds();
  // Declaration order is release order reversed: the context outlives the device memory, which outlives the
  // ring, which outlives the streams (synchronised on destruction) and the reference event.
  PrimaryCtx ctx;
  std::vector<DeviceMem> dest;
  std::vector<Buf> bufs(static_cast<size_t>(buffers));
  std::vector<Stream> strm;
  Event ref;

  if (job.device >= 0) {
    CUresult r = ctx.Retain(job.device);
    if (r == 0) r = ctx.Current();
    if (r != 0) {
      job.Fail(Err::NoGpu, "GPU " + std::to_string(job.device) + ": could not create its context: " + CuErrorText(r));
      return;
    }
  }

  // Destination memory: one allocation per file.
  double ta0 = MonotonicSeconds();
  for (uint32_t fi : job.files) {
    FileSpec& f = *files[fi];
    uint64_t n = f.size();
    if (n == 0) continue;
    if (sink == Sink::Device) {
      DeviceMem d;
      CUresult r = cu.cuMemAlloc(d.out(), n);
      if (r != 0) {
        d.release();
        size_t fr = 0, tot = 0;
        cu.cuMemGetInfo(&fr, &tot);
        job.Fail(Err::GpuOom, "GPU " + std::to_string(job.device) + ": cuMemAlloc of " + std::to_string(n) + " bytes for " + f.path +
                                  " failed: " + CuErrorText(r) + " (" + std::to_string(fr) + " bytes free)");
        return;
      }
      f.dptr = d.get();
      dest.push_back(std::move(d));
    } else if (sink == Sink::Memory) {
      f.host.reset(AlignedAlloc(n));
      if (!f.host) {
        job.Fail(Err::Env, f.path + ": could not allocate " + std::to_string(n) + " bytes of host memory");
        return;
      }
    }
  }
  // The ring is allocated lazily by the readers (each buffer on its first use), so that pinning host memory,
  // which costs about as much as reading it, runs in parallel threads and overlaps the first reads.
  const bool pinned = job.device >= 0;
  job.pinned = pinned;
  job.allocSeconds = MonotonicSeconds() - ta0;
  int nThreads = std::max(1, std::min<int>(threads, static_cast<int>(std::max<size_t>(1, job.chunks.size()))));
  double tRef = 0;
  if (pinned) {
    int ns = std::max(1, std::min(streams, nThreads));
    for (int i = 0; i < ns; i++) {
      Stream s;
      CUresult r = cu.cuStreamCreate(s.out(), CU_STREAM_NON_BLOCKING);
      if (r != 0) {
        s.release();
        job.Fail(Err::Env, "cuStreamCreate failed: " + CuErrorText(r));
        return;
      }
      strm.push_back(std::move(s));
    }
    CUresult r = cu.cuEventCreate(ref.out(), CU_EVENT_DEFAULT);
    if (r == 0) r = cu.cuEventRecord(ref.get(), strm[0].get());
    if (r == 0) r = cu.cuEventSynchronize(ref.get());
    if (r != 0) {
      job.Fail(Err::Env, "cuEventRecord failed: " + CuErrorText(r));
      return;
    }
    tRef = MonotonicSeconds();
  }
  job.tStart = MonotonicSeconds();
  job.setupSeconds = job.tStart - job.t0;

  std::deque<int> freeList;
  for (int i = 0; i < buffers; i++) freeList.push_back(i);
  std::mutex mu;
  std::condition_variable cv;
  std::atomic<size_t> next{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < nThreads; t++) {
    CUstream s = pinned ? strm[static_cast<size_t>(t) % strm.size()].get() : nullptr;
    if (path == CopyPath::Mapped) ts.emplace_back([&, s] { MappedWorker(job, ctx, next, s, ref.get(), tRef); });
    else ts.emplace_back([&, s] { Reader(job, ctx, bufs, freeList, mu, cv, next, s, ref.get(), tRef); });
  }
  for (auto& t : ts) t.join();
  // Copies still in flight.
  if (pinned) {
    for (Buf& b : bufs) {
      if (!b.pending) continue;
      CUresult r = cu.cuEventSynchronize(b.evEnd.get());
      if (r != 0) {
        job.Fail(Err::Env, "copy to GPU " + std::to_string(job.device) + " failed: " + CuErrorText(r));
      } else {
        float ms0 = 0, ms1 = 0;
        cu.cuEventElapsedTime(&ms0, ref.get(), b.evStart.get());
        cu.cuEventElapsedTime(&ms1, ref.get(), b.evEnd.get());
        job.copies.push_back({tRef + ms0 * 1e-3, tRef + ms1 * 1e-3, b.file});
      }
      b.pending = false;
    }
    for (Stream& s : strm) cu.cuStreamSynchronize(s.get());
  }
  job.t1 = MonotonicSeconds();
  for (const Chunk& c : job.chunks) job.bytes += c.copyLen;
  auto forget = [&] {
    for (uint32_t fi : job.files) files[fi]->dptr = 0;  // `dest` frees them on return
  };
  if (!job.error.empty() || failed) return forget();

  if (testCorrupt && !job.files.empty()) {
    // Test hook: flip one loaded byte so that the verify path must see a mismatch.
    FileSpec& f = *files[job.files[0]];
    if (f.end > f.begin) {
      if (f.host) f.host.get()[0] ^= 0xff;
      if (f.dptr) {
        unsigned char x = 0;
        cu.cuMemcpyDtoH(&x, f.dptr, 1);
        x ^= 0xff;
        cu.cuMemcpyHtoD(f.dptr, &x, 1);
      }
    }
  }
  if (!samples.empty()) Verify(job);
  forget();
}

// Copies each sample back (device → host, or from the host destination) and compares with the file's bytes,
// read again through a separate buffered descriptor.
void LoadBaton::Verify(Job& job) {
  const CudaApi& cu = Cuda();
  std::vector<char> want, have;
  for (const Sample& s : samples) {
    FileSpec& f = *files[s.file];
    if (f.device != job.device || s.length == 0) continue;
    if (std::find(job.files.begin(), job.files.end(), s.file) == job.files.end()) continue;
    if (sink == Sink::Discard) continue;
    want.resize(s.length);
    have.resize(s.length);
    FdLease lease(*fds, s.file);
    if (!lease) {
      int e = lease.error();
      job.Fail(ErrFromErrno(e), f.path + ": cannot open for verification: " + Errno(e));
      return;
    }
    uint64_t got = 0;
    while (got < s.length) {
      ssize_t r = pread(lease.get(), want.data() + got, s.length - got, static_cast<off_t>(f.begin + s.offset + got));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) {
        job.Fail(Err::CorruptFile, f.path + ": could not re-read bytes for verification at " + std::to_string(f.begin + s.offset + got));
        return;
      }
      got += static_cast<uint64_t>(r);
    }
    if (sink == Sink::Device) {
      CUresult r = cu.cuMemcpyDtoH(have.data(), f.dptr + s.offset, s.length);
      if (r != 0) {
        job.Fail(Err::Env, "verify: cuMemcpyDtoH from GPU " + std::to_string(job.device) + " failed: " + CuErrorText(r));
        return;
      }
    } else {
      memcpy(have.data(), f.host.get() + s.offset, s.length);
    }
    job.checked++;
    job.checkedBytes += s.length;
    if (memcmp(want.data(), have.data(), s.length) != 0) {
      job.mismatches++;
      if (job.firstMismatch.empty()) {
        uint64_t k = 0;
        while (k < s.length && want[k] == have[k]) k++;
        job.firstMismatch = f.path + " at byte " + std::to_string(f.begin + s.offset + k);
      }
    }
  }
}

void LoadBaton::Run() {
  const CudaApi& cu = Cuda();
  // Check every file (and, when asked, map it) before anything is allocated, one descriptor at a time: the
  // reads open them again through the pools, a bounded number at once (never one descriptor per shard).
  std::vector<std::string> paths;
  for (auto& fp : files) {
    FileSpec& f = *fp;
    Fd fd(OpenToCheck(f.path.c_str()));
    if (!fd) {
      int e = errno;
      return Fail(ErrFromErrno(e), f.path + ": cannot open: " + Errno(e));
    }
    struct stat st;
    if (fstat(fd.get(), &st) != 0 || !IsRegularFile(st)) return Fail(Err::CorruptFile, f.path + ": not a regular file (changed since it was validated?)");
    if (st.st_size < 0 || static_cast<uint64_t>(st.st_size) < f.end) {
      return Fail(Err::CorruptFile, f.path + ": the file is shorter than its header says (changed since it was validated?)");
    }
    if (path == CopyPath::Mapped && !f.map.Map(fd.get(), static_cast<size_t>(st.st_size))) {
      int e = errno;
      return Fail(ErrFromErrno(e), f.path + ": mmap failed: " + Errno(e));
    }
    f.directOk = direct && path == CopyPath::Ring;  // until an O_DIRECT open or read of it is refused
    paths.push_back(f.path);
  }
  fds.reset(new FdPool(paths, O_RDONLY, kOpenFiles));
  if (direct && path == CopyPath::Ring) fdsDirect.reset(new FdPool(paths, O_RDONLY | O_DIRECT, kOpenFiles));
  // Group files and chunks per device: each file (so each byte) goes to exactly one card and is read once.
  if (!gpu)
    for (auto& f : files) f->device = -1;
  std::map<int, Job*> byDevice;
  for (uint32_t i = 0; i < files.size(); i++) {
    int d = files[i]->device;
    if (!byDevice.count(d)) {
      jobs.push_back(std::make_unique<Job>());
      jobs.back()->owner = this;
      jobs.back()->device = d;
      byDevice[d] = jobs.back().get();
    }
    byDevice[d]->files.push_back(i);
  }
  for (const Chunk& c : chunks) byDevice[files[c.file]->device]->chunks.push_back(c);

  // The contexts stay retained until the load is over, so that their creation (the cuda-init phase) is not
  // counted in the load and not repeated by the jobs.
  std::vector<std::unique_ptr<PrimaryCtx>> held;
  if (gpu) {
    CUresult r = cu.cuInit(0);
    if (r != 0) return Fail(Err::NoGpu, "cuInit failed: " + CuErrorText(r));
    int count = 0;
    cu.cuDeviceGetCount(&count);
    // Refuse before anything is allocated on any card: each card must have room for its files.
    for (auto& jp : jobs) {
      Job& j = *jp;
      if (j.device < 0 || j.device >= count) {
        return Fail(Err::BadArg, "GPU " + std::to_string(j.device) + " does not exist (" + std::to_string(count) + " visible)");
      }
      auto ctx = std::make_unique<PrimaryCtx>();
      r = ctx->Retain(j.device);
      char name[256] = {0};
      if (r == 0) cu.cuDeviceGetName(name, sizeof(name) - 1, ctx->device());
      j.name = name;
      size_t fr = 0, tot = 0;
      if (r == 0) r = ctx->Current();
      if (r == 0) r = cu.cuMemGetInfo(&fr, &tot);
      cu.cuCtxSetCurrent(nullptr);
      held.push_back(std::move(ctx));
      if (r != 0) return Fail(Err::NoGpu, "GPU " + std::to_string(j.device) + ": could not create its context: " + CuErrorText(r));
      if (sink != Sink::Device) continue;
      uint64_t need = kDevMargin;
      for (uint32_t fi : j.files) {
        uint64_t n = 0;
        if (!RoundUpU64(files[fi]->size(), kDevRound, &n) || !AddU64(need, n, &need)) return Fail(Err::BadArg, "file sizes overflow");
      }
      if (need > fr) {
        return Fail(Err::GpuOom, "GPU " + std::to_string(j.device) + " (" + j.name + ") has " + std::to_string(fr) + " bytes free but loading its " +
                                     std::to_string(j.files.size()) + " file(s) needs " + std::to_string(need) + "; nothing was allocated");
      }
    }
  }
  double t0 = MonotonicSeconds();
  auto runOne = [this](Job* j) {
    RunJob(*j);
    if (!j->error.empty()) failed = true;  // stops the other cards' readers too
  };
  if (jobs.size() == 1) {
    runOne(jobs[0].get());
  } else {
    std::vector<std::thread> ts;
    for (auto& jp : jobs) ts.emplace_back(runOne, jp.get());
    for (auto& t : ts) t.join();
  }
  seconds = MonotonicSeconds() - t0;
  if (directRefused.load() > 1) Note("O_DIRECT was refused for " + std::to_string(directRefused.load()) + " files in all; they were read through the page cache");
  for (auto& jp : jobs) {
    if (!jp->error.empty()) {
      // Prefer a real cause over the cancellations it triggered in sibling jobs.
      if (error.empty() || code == ErrName(Err::Interrupted)) {
        code = jp->code;
        error = jp->error;
      }
    }
  }
  if (error.empty() && Cancelled()) Fail(Err::Interrupted, "the load was cancelled");
}

Napi::Value LoadBaton::ToJS(Napi::Env env) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("mode", gpu ? "gpu" : "host");
  o.Set("path", path == CopyPath::Mapped ? "mapped" : "ring");
  o.Set("seconds", seconds);
  std::vector<Interval> reads, copies;
  uint64_t bytes = 0;
  double setup = 0;
  Napi::Array devs = Napi::Array::New(env, jobs.size());
  std::map<uint32_t, std::pair<double, double>> span;  // per file: first read start, last copy end
  for (size_t i = 0; i < jobs.size(); i++) {
    Job& j = *jobs[i];
    reads.insert(reads.end(), j.reads.begin(), j.reads.end());
    copies.insert(copies.end(), j.copies.begin(), j.copies.end());
    bytes += j.bytes;
    setup = std::max(setup, j.setupSeconds);
    Napi::Object d = Napi::Object::New(env);
    d.Set("index", j.device);
    if (!j.name.empty()) d.Set("name", j.name);
    d.Set("bytes", static_cast<double>(j.bytes));
    d.Set("seconds", j.t1 - j.t0);
    d.Set("setupSeconds", j.setupSeconds);
    d.Set("allocSeconds", j.allocSeconds);
    d.Set("ringSeconds", j.ringSeconds);
    d.Set("registerSeconds", j.registerSeconds);
    d.Set("readSeconds", UnionLength(j.reads));
    d.Set("copySeconds", UnionLength(j.copies));
    devs.Set(i, d);
    for (const Interval& x : j.reads) {
      auto it = span.find(x.file);
      if (it == span.end()) {
        span[x.file] = {x.a, x.b};
      } else {
        it->second.first = std::min(it->second.first, x.a);
        it->second.second = std::max(it->second.second, x.b);
      }
    }
    for (const Interval& x : j.copies) {
      auto& s = span[x.file];
      s.second = std::max(s.second, x.b);
    }
  }
  o.Set("bytes", static_cast<double>(bytes));
  o.Set("setupSeconds", setup);
  double readBusy = UnionLength(reads), copyBusy = UnionLength(copies);
  o.Set("readSeconds", readBusy);
  o.Set("copySeconds", copyBusy);
  o.Set("overlapSeconds", IntersectLength(reads, copies));
  // Sum of per-chunk read times over all threads (≥ readSeconds when reads run in parallel).
  double readThread = 0;
  for (const Interval& x : reads) readThread += x.b - x.a;
  o.Set("readThreadSeconds", readThread);
  o.Set("devices", devs);
  Napi::Array fs = Napi::Array::New(env, files.size());
  for (uint32_t i = 0; i < files.size(); i++) {
    FileSpec& f = *files[i];
    Napi::Object x = Napi::Object::New(env);
    x.Set("bytes", static_cast<double>(f.end - f.begin));
    auto it = span.find(i);
    x.Set("seconds", it == span.end() ? 0.0 : std::max(0.0, it->second.second - it->second.first));
    x.Set("direct", direct && f.directOk.load());
    if (returnHost && f.host) x.Set("data", Napi::Buffer<char>::Copy(env, f.host.get(), f.size()));
    fs.Set(i, x);
  }
  o.Set("files", fs);
  if (!samples.empty()) {
    Napi::Object v = Napi::Object::New(env);
    uint64_t checked = 0, cb = 0, mm = 0;
    std::string first;
    for (auto& jp : jobs) {
      checked += jp->checked;
      cb += jp->checkedBytes;
      mm += jp->mismatches;
      if (first.empty()) first = jp->firstMismatch;
    }
    v.Set("checked", static_cast<double>(checked));
    v.Set("checkedBytes", static_cast<double>(cb));
    v.Set("mismatches", static_cast<double>(mm));
    if (!first.empty()) v.Set("firstMismatch", first);
    o.Set("verify", v);
  }
  Napi::Array n = Napi::Array::New(env, notes.size());
  for (size_t i = 0; i < notes.size(); i++) n.Set(i, notes[i]);
  o.Set("notes", n);
  return o;
}

std::string OptString(const Napi::Object& o, const char* key, const char* dflt) {
  if (!o.Has(key) || o.Get(key).IsUndefined()) return dflt;
  Napi::Value v = o.Get(key);
  return v.IsString() ? v.As<Napi::String>().Utf8Value() : std::string("\x01");  // never a valid choice
}

// Everything from JS is checked here, on the main thread, before the baton runs: nothing is opened or
// allocated for a load whose options would be refused.
Napi::Value GpuLoad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* fn = "gpuLoad";
  if (info.Length() < 1 || !info[0].IsObject()) throw ArgError(env, fn, "options", "an object");
  Napi::Object o = info[0].As<Napi::Object>();
  std::unique_ptr<LoadBaton> b(new LoadBaton());
  std::string mode = OptString(o, "mode", "gpu");
  if (mode != "gpu" && mode != "host") throw ArgError(env, fn, "options.mode", "gpu or host");
  b->gpu = mode == "gpu";
  std::string sink = OptString(o, "sink", b->gpu ? "device" : "memory");
  if (sink == "device") b->sink = Sink::Device;
  else if (sink == "memory") b->sink = Sink::Memory;
  else if (sink == "discard") b->sink = Sink::Discard;
  else throw ArgError(env, fn, "options.sink", "device, memory or discard");
  if (b->sink == Sink::Device && !b->gpu) throw ArgError(env, fn, "options.sink", "memory or discard in host mode");
  std::string path = OptString(o, "path", "ring");
  if (path != "ring" && path != "mapped") throw ArgError(env, fn, "options.path", "ring or mapped");
  b->path = path == "mapped" ? CopyPath::Mapped : CopyPath::Ring;
  if (b->path == CopyPath::Mapped && (!b->gpu || b->sink != Sink::Device)) throw ArgError(env, fn, "options.path", "ring unless mode is gpu and sink device");
  b->chunkBytes = OptU64(env, fn, o, "chunkBytes", 16 << 20);
  if (b->chunkBytes < kAlign || b->chunkBytes % kAlign != 0 || b->chunkBytes > kMaxChunk)
    throw ArgError(env, fn, "options.chunkBytes", "a multiple of 4096 up to 1 GiB");
  b->threads = static_cast<int>(OptInt(env, fn, o, "threads", 8, 1, 256));
  b->buffers = static_cast<int>(OptInt(env, fn, o, "buffers", 16, 1, 4096));
  b->streams = static_cast<int>(OptInt(env, fn, o, "streams", 4, 1, 64));
  uint64_t ring = 0;
  if (!MulU64(b->chunkBytes, static_cast<uint64_t>(b->buffers), &ring) || ring > kMaxRing)
    throw ArgError(env, fn, "options.buffers × options.chunkBytes", "at most 64 GiB of ring");
  b->direct = OptBool(o, "direct", false);
  std::string ringKind = OptString(o, "ring", "alloc");
  if (ringKind != "alloc" && ringKind != "register") throw ArgError(env, fn, "options.ring", "alloc or register");
  b->registerRing = ringKind == "register";
  b->returnHost = OptBool(o, "returnHost", false);
  b->testCorrupt = OptBool(o, "testCorrupt", false);

  if (!o.Get("files").IsArray()) throw ArgError(env, fn, "options.files", "an array");
  Napi::Array fa = o.Get("files").As<Napi::Array>();
  if (fa.Length() > 1000000) throw ArgError(env, fn, "options.files", "at most 1,000,000 files");
  for (uint32_t i = 0; i < fa.Length(); i++) {
    Napi::Value v = fa.Get(i);
    const std::string at = "options.files[" + std::to_string(i) + "]";
    if (!v.IsObject()) throw ArgError(env, fn, at, "{path, begin, end, device}");
    Napi::Object f = v.As<Napi::Object>();
    if (!f.Get("path").IsString()) throw ArgError(env, fn, at + ".path", "a string");
    auto fs = std::make_unique<FileSpec>();
    fs->path = f.Get("path").As<Napi::String>().Utf8Value();
    fs->begin = ArgU64(env, fn, at + ".begin", f.Get("begin"));
    fs->end = ArgU64(env, fn, at + ".end", f.Get("end"));
    fs->device = f.Has("device") && !f.Get("device").IsUndefined() ? static_cast<int>(ArgInt(env, fn, at + ".device", f.Get("device"), -1, 1023)) : 0;
    if (fs->end < fs->begin) throw ArgError(env, fn, at + ".end", ">= begin");
    b->files.push_back(std::move(fs));
  }
  // plan: Float64Array of 6 numbers per chunk: file, readOff, readLen, skip, copyLen, dest.
  Napi::Float64Array plan;
  if (!OptTyped(env, fn, o, "plan", napi_float64_array, "a Float64Array", &plan)) throw ArgError(env, fn, "options.plan", "a Float64Array");
  if (plan.ElementLength() % 6 != 0) throw ArgError(env, fn, "options.plan", "6 numbers per chunk");
  for (size_t i = 0; i < plan.ElementLength(); i += 6) {
    const std::string at = "options.plan[" + std::to_string(i / 6) + "]";
    int64_t file = 0;
    if (!DoubleToInt(plan[i], 0, static_cast<int64_t>(b->files.size()) - 1, &file)) throw ArgError(env, fn, at + ".file", "a valid file index");
    Chunk c{static_cast<uint32_t>(file), ArgU64(env, fn, at + ".readOffset", plan[i + 1]), ArgU64(env, fn, at + ".readLength", plan[i + 2]),
            ArgU64(env, fn, at + ".skip", plan[i + 3]), ArgU64(env, fn, at + ".copyLength", plan[i + 4]), ArgU64(env, fn, at + ".dest", plan[i + 5])};
    const FileSpec& f = *b->files[c.file];
    // The plan is trusted only as far as it stays inside the file's range and the ring buffer; every sum is
    // checked, so a wrapped value cannot pass a bound.
    uint64_t need = 0, destEnd = 0, src = 0, fileAt = 0;
    if (c.readLen > b->chunkBytes || !AddU64(c.skip, c.copyLen, &need) || need > c.readLen || !AddU64(c.dest, c.copyLen, &destEnd) ||
        destEnd > f.size() || !AddU64(c.readOff, c.skip, &src) || !AddU64(f.begin, c.dest, &fileAt) || src != fileAt)
      throw ArgError(env, fn, at, "a chunk inside its file and the chunk size");
    b->chunks.push_back(c);
  }
  Napi::Float64Array s;
  if (OptTyped(env, fn, o, "samples", napi_float64_array, "a Float64Array", &s)) {
    if (s.ElementLength() % 3 != 0) throw ArgError(env, fn, "options.samples", "3 numbers per sample");
    for (size_t i = 0; i < s.ElementLength(); i += 3) {
      const std::string at = "options.samples[" + std::to_string(i / 3) + "]";
      int64_t file = 0;
      if (!DoubleToInt(s[i], 0, static_cast<int64_t>(b->files.size()) - 1, &file)) throw ArgError(env, fn, at + ".file", "a valid file index");
      Sample x{static_cast<uint32_t>(file), ArgU64(env, fn, at + ".offset", s[i + 1]), ArgU64(env, fn, at + ".length", s[i + 2])};
      uint64_t e = 0;
      if (x.length > kMaxSample || !AddU64(x.offset, x.length, &e) || e > b->files[x.file]->size())
        throw ArgError(env, fn, at, "a range of at most 64 MiB inside its file");
      b->samples.push_back(x);
    }
  }
  OptSharedFlags(env, fn, o, b.get());
  if (b->gpu && !Cuda().loaded) {
    Napi::Error e = Napi::Error::New(env, "gpuLoad: no CUDA driver: " + Cuda().loadError);
    e.Set("code", Napi::String::New(env, ErrName(Err::NoGpu)));
    throw e;
  }
  return Queue(env, b.release());
}

}  // namespace

void InitLoader(Napi::Env env, Napi::Object exports) {
  exports.Set("gpuLoad", Napi::Function::New(env, GpuLoad, "gpuLoad"));
  InitPageCache(env, exports);
  InitLimits(env, exports);
}

}  // namespace coldstart
