// gpu-load engine (issue 4): puts byte ranges of files (the data sections of safetensors files, validated in
// TypeScript first) into GPU memory through the dlopen'd driver API, timed.
//
//   reader threads ──pread (optionally O_DIRECT)──▶ ring of pinned host buffers ──cuMemcpyHtoDAsync (N streams)──▶
//   one device allocation per file
//
// A buffer goes back to the ring as soon as its copy is enqueued; the next reader that takes it waits on the
// buffer's end event first, so reads of chunk k+1.. overlap the DMA of chunk k. Every chunk's read is timed on the
// host clock and every copy with a pair of CUDA events placed on a common timeline, which gives read-busy,
// copy-busy and overlap time. The chunk plan (which bytes go where) is computed in TypeScript (planChunks) and
// handed over as a Float64Array, so it is unit-tested there.
//
// With no driver the same engine runs with plain aligned host buffers and the "copy" is a memcpy into host
// memory (sink "memory") or nothing at all (sink "discard", used for read-bandwidth limits and cache warming).
//
// Exports: gpuLoad(options), pageCache({paths, action}), transferLimits({device, bytes, iterations}),
// deviceMemInfo(device).
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
#include <mutex>
#include <thread>
#include <vector>

#include "common.h"
#include "cuda_api.h"

namespace coldstart {
namespace {

constexpr uint64_t kAlign = 4096;      // O_DIRECT offset/length/address alignment
constexpr uint64_t kDevRound = 2 << 20;  // the driver hands out device memory in 2 MiB pages
constexpr uint64_t kDevMargin = 64ull << 20;  // left free on the card besides the allocations

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
  // runtime
  int fd = -1, fdDirect = -1;
  std::atomic<bool> directOk{false};
  CUdeviceptr dptr = 0;
  char* host = nullptr;  // sink "memory"
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

struct Buf {
  char* p = nullptr;
  bool registered = false;  // malloc'd + cuMemHostRegister'ed (ring "register") rather than cuMemHostAlloc'ed
  CUevent evStart = nullptr, evEnd = nullptr;
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
  double t0 = 0, tStart = 0, t1 = 0, setupSeconds = 0, allocSeconds = 0, ringSeconds = 0;
  bool pinned = false;
  uint64_t bytes = 0;
  std::vector<Interval> reads, copies;
  uint64_t checked = 0, checkedBytes = 0, mismatches = 0;
  std::string firstMismatch;
  std::string code, error;
  void Fail(const std::string& c, const std::string& m) {
    std::lock_guard<std::mutex> g(mu);
    if (error.empty()) {
      code = c;
      error = m;
    }
  }
  std::mutex mu;
};

struct LoadBaton : Baton {
  // inputs
  bool gpu = false;
  Sink sink = Sink::Device;
  std::vector<std::unique_ptr<FileSpec>> files;
  std::vector<Chunk> chunks;
  std::vector<Sample> samples;
  uint64_t chunkBytes = 16 << 20;
  int threads = 8, buffers = 16, streams = 4;
  bool direct = false, returnHost = false, testCorrupt = false;
  std::atomic<bool> registerRing{false};
  volatile int32_t* cancel = nullptr;
  volatile double* progress = nullptr;
  Napi::ObjectReference cancelRef, progressRef;
  // shared state
  std::atomic<bool> failed{false};
  std::atomic<uint64_t> done{0};
  // outputs
  std::vector<std::unique_ptr<Job>> jobs;
  double seconds = 0;
  std::vector<std::string> notes;
  std::mutex notesMu;

  bool Cancelled() const { return cancel && __atomic_load_n(const_cast<int32_t*>(cancel), __ATOMIC_RELAXED) != 0; }
  void Note(const std::string& n) {
    std::lock_guard<std::mutex> g(notesMu);
    if (std::find(notes.begin(), notes.end(), n) == notes.end()) notes.push_back(n);
  }
  void AddDone(uint64_t n) {
    uint64_t v = done.fetch_add(n) + n;
    if (progress) progress[0] = static_cast<double>(v);
  }

  ~LoadBaton() override {
    for (auto& f : files) {
      if (f->fd >= 0) close(f->fd);
      if (f->fdDirect >= 0) close(f->fdDirect);
      free(f->host);
    }
  }

  void Run() override;
  void RunJob(Job& job);
  void Reader(Job& job, std::vector<Buf>& bufs, std::deque<int>& freeList, std::mutex& mu, std::condition_variable& cv,
              std::atomic<size_t>& next, CUstream stream, CUevent ref, double tRef);
  bool ReadChunk(const Chunk& c, char* dst, Job& job);
  bool AllocBuf(Job& job, Buf& x);
  void Verify(Job& job);
  Napi::Value ToJS(Napi::Env env) override;
};

// Reads c.readLen bytes (or up to EOF, as long as skip+copyLen arrive) at c.readOff into dst.
bool LoadBaton::ReadChunk(const Chunk& c, char* dst, Job& job) {
  FileSpec& f = *files[c.file];
  const uint64_t need = c.skip + c.copyLen;
  bool useDirect = direct && f.directOk.load();
  int fd = useDirect ? f.fdDirect : f.fd;
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
        Note("O_DIRECT reads were refused (EINVAL) for " + f.path + "; it was read through the page cache");
        return ReadChunk(c, dst, job);
      }
      job.Fail("ENV", f.path + ": read failed at byte " + std::to_string(off + got) + ": " + Errno(errno));
      return false;
    }
    if (r == 0) break;
    got += static_cast<uint64_t>(r);
    if (useDirect && got >= want && (got % kAlign) != 0) break;  // EOF inside the last block
  }
  if (got < want) {
    job.Fail("CORRUPT_FILE", f.path + ": file ended at byte " + std::to_string(off + got) + " while " + std::to_string(off + want) +
                                 " were expected (was it truncated while loading?)");
    return false;
  }
  return true;
}

void* AlignedAlloc(size_t n);

// A ring buffer on its first use: pinned (with its two timing events) for a GPU, plain aligned memory otherwise.
bool LoadBaton::AllocBuf(Job& job, Buf& x) {
  const CudaApi& cu = Cuda();
  if (job.pinned) {
    void* p = nullptr;
    CUresult r;
    if (registerRing) {
      // Transparent huge pages, faulted in, then pinned: fewer pages for the driver to pin and map.
      const size_t huge = 2 << 20;
      size_t n = (chunkBytes + huge - 1) / huge * huge;
      if (posix_memalign(&p, huge, n) != 0) {
        job.Fail("ENV", "could not allocate a " + std::to_string(n) + "-byte read buffer");
        return false;
      }
      madvise(p, n, MADV_HUGEPAGE);
      memset(p, 0, n);
      r = cu.cuMemHostRegister(p, n, CU_MEMHOSTREGISTER_PORTABLE);
      if (r == 0) {
        x.registered = true;
      } else {
        free(p);
        p = nullptr;
        registerRing = false;  // this platform cannot register host memory: use cuMemHostAlloc from now on
        Note("cuMemHostRegister failed (" + CuErrorText(r) + "); the ring was allocated with cuMemHostAlloc");
      }
    }
    if (!p) {
      r = cu.cuMemHostAlloc(&p, chunkBytes, CU_MEMHOSTALLOC_PORTABLE);
      if (r != 0) {
        job.Fail("ENV", "cuMemHostAlloc of a " + std::to_string(chunkBytes) + "-byte pinned buffer failed: " + CuErrorText(r));
        return false;
      }
    }
    x.p = static_cast<char*>(p);
    r = cu.cuEventCreate(&x.evStart, CU_EVENT_DEFAULT);
    if (r == 0) r = cu.cuEventCreate(&x.evEnd, CU_EVENT_DEFAULT);
    if (r != 0) {
      job.Fail("ENV", "cuEventCreate failed: " + CuErrorText(r));
      return false;
    }
    return true;
  }
  x.p = static_cast<char*>(AlignedAlloc(chunkBytes));
  if (!x.p) job.Fail("ENV", "could not allocate a " + std::to_string(chunkBytes) + "-byte read buffer");
  return x.p != nullptr;
}

void LoadBaton::Reader(Job& job, std::vector<Buf>& bufs, std::deque<int>& freeList, std::mutex& mu, std::condition_variable& cv,
                       std::atomic<size_t>& next, CUstream stream, CUevent ref, double tRef) {
  const CudaApi& cu = Cuda();
  if (job.device >= 0) {
    CUcontext ctx = nullptr;
    CUdevice dev;
    cu.cuDeviceGet(&dev, job.device);
    cu.cuDevicePrimaryCtxRetain(&ctx, dev);  // already retained by RunJob; this only fetches the handle
    cu.cuCtxSetCurrent(ctx);
    cu.cuDevicePrimaryCtxRelease(dev);
  }
  std::vector<Interval> reads, copies;
  double ringSeconds = 0;
  auto collect = [&](Buf& b) {
    // Called by the thread that takes a buffer whose copy may still be in flight.
    CUresult r = cu.cuEventSynchronize(b.evEnd);
    if (r != 0) {
      job.Fail("ENV", "copy to GPU " + std::to_string(job.device) + " failed: " + CuErrorText(r));
      failed = true;
    } else {
      float ms0 = 0, ms1 = 0;
      cu.cuEventElapsedTime(&ms0, ref, b.evStart);
      cu.cuEventElapsedTime(&ms1, ref, b.evEnd);
      copies.push_back({tRef + ms0 * 1e-3, tRef + ms1 * 1e-3, b.file});
    }
    b.pending = false;
  };
  while (!failed.load(std::memory_order_relaxed)) {
    if (Cancelled()) {
      job.Fail("INTERRUPTED", "the load was cancelled");
      failed = true;
      break;
    }
    size_t ci = next.fetch_add(1);
    if (ci >= job.chunks.size()) break;
    const Chunk& c = job.chunks[ci];
    int bi;
    {
      std::unique_lock<std::mutex> lk(mu);
      cv.wait(lk, [&] { return !freeList.empty(); });
      bi = freeList.front();
      freeList.pop_front();
    }
    Buf& b = bufs[bi];
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
        CUresult r = cu.cuEventRecord(b.evStart, stream);
        if (r == 0) r = cu.cuMemcpyHtoDAsync(f.dptr + c.dest, b.p + c.skip, c.copyLen, stream);
        if (r == 0) r = cu.cuEventRecord(b.evEnd, stream);
        if (r != 0) {
          job.Fail("ENV", "cuMemcpyHtoDAsync to GPU " + std::to_string(job.device) + " failed: " + CuErrorText(r));
          failed = true;
        } else {
          b.pending = true;
        }
      } else if (sink == Sink::Memory) {
        double ta = MonotonicSeconds();
        memcpy(f.host + c.dest, b.p + c.skip, c.copyLen);
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

void* AlignedAlloc(size_t n) {
  void* p = nullptr;
  if (posix_memalign(&p, kAlign, std::max<size_t>(n, kAlign)) != 0) return nullptr;
  return p;
}

void LoadBaton::RunJob(Job& job) {
  const CudaApi& cu = Cuda();
  job.t0 = MonotonicSeconds();
  CUdevice dev = 0;
  CUcontext ctx = nullptr;
  std::vector<Buf> bufs(static_cast<size_t>(buffers));
  std::vector<CUstream> strm;
  CUevent ref = nullptr;
  bool pinned = false;

  // Everything acquired below is released by this guard, on success, error or cancellation alike.
  struct Cleanup {
    LoadBaton* b;
    Job& job;
    std::vector<Buf>& bufs;
    std::vector<CUstream>& strm;
    CUevent& ref;
    bool& pinned;
    CUcontext& ctx;
    CUdevice dev;
    ~Cleanup() {
      const CudaApi& cu = Cuda();
      if (ctx) cu.cuCtxSetCurrent(ctx);
      for (CUstream s : strm) {
        cu.cuStreamSynchronize(s);
        cu.cuStreamDestroy(s);
      }
      for (Buf& x : bufs) {
        if (x.evStart) cu.cuEventDestroy(x.evStart);
        if (x.evEnd) cu.cuEventDestroy(x.evEnd);
        if (x.p) {
          if (x.registered) {
            cu.cuMemHostUnregister(x.p);
            free(x.p);
          } else if (pinned) {
            cu.cuMemFreeHost(x.p);
          } else {
            free(x.p);
          }
        }
      }
      if (ref) cu.cuEventDestroy(ref);
      for (uint32_t fi : job.files) {
        FileSpec& f = *b->files[fi];
        if (f.dptr) {
          cu.cuMemFree(f.dptr);
          f.dptr = 0;
        }
      }
      if (ctx) {
        cu.cuCtxSetCurrent(nullptr);
        cu.cuDevicePrimaryCtxRelease(dev);
      }
    }
  };

  if (job.device >= 0) {
    CUresult r = cu.cuDeviceGet(&dev, job.device);
    if (r == 0) r = cu.cuDevicePrimaryCtxRetain(&ctx, dev);
    if (r != 0) {
      job.Fail("NO_GPU", "GPU " + std::to_string(job.device) + ": could not create its context: " + CuErrorText(r));
      return;
    }
  }
  Cleanup guard{this, job, bufs, strm, ref, pinned, ctx, dev};
  if (ctx) cu.cuCtxSetCurrent(ctx);

  // Destination memory: one allocation per file.
  double ta0 = MonotonicSeconds();
  for (uint32_t fi : job.files) {
    FileSpec& f = *files[fi];
    uint64_t n = f.end - f.begin;
    if (n == 0) continue;
    if (sink == Sink::Device) {
      CUresult r = cu.cuMemAlloc(&f.dptr, n);
      if (r != 0) {
        f.dptr = 0;
        size_t fr = 0, tot = 0;
        cu.cuMemGetInfo(&fr, &tot);
        job.Fail("GPU_OOM", "GPU " + std::to_string(job.device) + ": cuMemAlloc of " + std::to_string(n) + " bytes for " + f.path +
                                " failed: " + CuErrorText(r) + " (" + std::to_string(fr) + " bytes free)");
        return;
      }
    } else if (sink == Sink::Memory) {
      f.host = static_cast<char*>(AlignedAlloc(n));
      if (!f.host) {
        job.Fail("ENV", f.path + ": could not allocate " + std::to_string(n) + " bytes of host memory");
        return;
      }
    }
  }
  // The ring is allocated lazily by the readers (each buffer on its first use), so that pinning host memory,
  // which costs about as much as reading it, runs in parallel threads and overlaps the first reads.
  pinned = job.device >= 0;
  job.pinned = pinned;
  job.allocSeconds = MonotonicSeconds() - ta0;
  int nThreads = std::max(1, std::min<int>(threads, static_cast<int>(std::max<size_t>(1, job.chunks.size()))));
  double tRef = 0;
  if (pinned) {
    int ns = std::max(1, std::min(streams, nThreads));
    for (int i = 0; i < ns; i++) {
      CUstream s = nullptr;
      CUresult r = cu.cuStreamCreate(&s, CU_STREAM_NON_BLOCKING);
      if (r != 0) {
        job.Fail("ENV", "cuStreamCreate failed: " + CuErrorText(r));
        return;
      }
      strm.push_back(s);
    }
    CUresult r = cu.cuEventCreate(&ref, CU_EVENT_DEFAULT);
    if (r == 0) r = cu.cuEventRecord(ref, strm[0]);
    if (r == 0) r = cu.cuEventSynchronize(ref);
    if (r != 0) {
      job.Fail("ENV", "cuEventRecord failed: " + CuErrorText(r));
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
    CUstream s = pinned ? strm[static_cast<size_t>(t) % strm.size()] : nullptr;
    ts.emplace_back([&, s] { Reader(job, bufs, freeList, mu, cv, next, s, ref, tRef); });
  }
  for (auto& t : ts) t.join();
  // Copies still in flight.
  if (pinned) {
    for (Buf& b : bufs) {
      if (!b.pending) continue;
      CUresult r = cu.cuEventSynchronize(b.evEnd);
      if (r != 0) {
        job.Fail("ENV", "copy to GPU " + std::to_string(job.device) + " failed: " + CuErrorText(r));
      } else {
        float ms0 = 0, ms1 = 0;
        cu.cuEventElapsedTime(&ms0, ref, b.evStart);
        cu.cuEventElapsedTime(&ms1, ref, b.evEnd);
        job.copies.push_back({tRef + ms0 * 1e-3, tRef + ms1 * 1e-3, b.file});
      }
      b.pending = false;
    }
    for (CUstream s : strm) cu.cuStreamSynchronize(s);
  }
  job.t1 = MonotonicSeconds();
  for (const Chunk& c : job.chunks) job.bytes += c.copyLen;
  if (!job.error.empty() || failed) return;

  if (testCorrupt && !job.files.empty()) {
    // Test hook: flip one loaded byte so that the verify path must see a mismatch.
    FileSpec& f = *files[job.files[0]];
    if (f.end > f.begin) {
      if (f.host) f.host[0] ^= 0xff;
      if (f.dptr) {
        unsigned char x = 0;
        cu.cuMemcpyDtoH(&x, f.dptr, 1);
        x ^= 0xff;
        cu.cuMemcpyHtoD(f.dptr, &x, 1);
      }
    }
  }
  if (!samples.empty()) Verify(job);
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
    uint64_t got = 0;
    while (got < s.length) {
      ssize_t r = pread(f.fd, want.data() + got, s.length - got, static_cast<off_t>(f.begin + s.offset + got));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) {
        job.Fail("CORRUPT_FILE", f.path + ": could not re-read bytes for verification at " + std::to_string(f.begin + s.offset + got));
        return;
      }
      got += static_cast<uint64_t>(r);
    }
    if (sink == Sink::Device) {
      CUresult r = cu.cuMemcpyDtoH(have.data(), f.dptr + s.offset, s.length);
      if (r != 0) {
        job.Fail("ENV", "verify: cuMemcpyDtoH from GPU " + std::to_string(job.device) + " failed: " + CuErrorText(r));
        return;
      }
    } else {
      memcpy(have.data(), f.host + s.offset, s.length);
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
  // Open every file (and, when asked, an O_DIRECT descriptor) before anything is allocated.
  for (auto& fp : files) {
    FileSpec& f = *fp;
    f.fd = open(f.path.c_str(), O_RDONLY | O_CLOEXEC);
    if (f.fd < 0) {
      int e = errno;
      Fail(e == ENOENT ? "NOT_FOUND" : e == EACCES ? "PERMISSION" : "ENV", f.path + ": cannot open: " + Errno(e));
      return;
    }
    struct stat st;
    if (fstat(f.fd, &st) != 0 || static_cast<uint64_t>(st.st_size) < f.end) {
      Fail("CORRUPT_FILE", f.path + ": the file is shorter than its header says (changed since it was validated?)");
      return;
    }
    if (direct) {
      f.fdDirect = open(f.path.c_str(), O_RDONLY | O_CLOEXEC | O_DIRECT);
      if (f.fdDirect >= 0) f.directOk = true;
      else Note("O_DIRECT is not supported for " + f.path + " (" + Errno(errno) + "); it was read through the page cache");
    }
  }
  // Group files and chunks per device.
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

  struct Held {
    std::vector<CUdevice> devs;
    void push_back(CUdevice d) { devs.push_back(d); }
    ~Held() {
      for (CUdevice d : devs) Cuda().cuDevicePrimaryCtxRelease(d);
    }
  } held;
  if (gpu) {
    CUresult r = cu.cuInit(0);
    if (r != 0) {
      Fail("NO_GPU", "cuInit failed: " + CuErrorText(r));
      return;
    }
    int count = 0;
    cu.cuDeviceGetCount(&count);
    // Refuse before anything is allocated on any card: each card must have room for its files.
    for (auto& jp : jobs) {
      Job& j = *jp;
      if (j.device < 0 || j.device >= count) {
        Fail("BAD_FLAG", "GPU " + std::to_string(j.device) + " does not exist (" + std::to_string(count) + " visible)");
        return;
      }
      CUdevice dev;
      cu.cuDeviceGet(&dev, j.device);
      char name[256] = {0};
      cu.cuDeviceGetName(name, sizeof(name) - 1, dev);
      j.name = name;
      // The context stays retained until the load is over, so that its creation (the cuda-init phase) is not
      // counted in the load and not repeated by the job.
      CUcontext ctx = nullptr;
      r = cu.cuDevicePrimaryCtxRetain(&ctx, dev);
      if (r == 0) held.push_back(dev);
      size_t fr = 0, tot = 0;
      if (r == 0) r = cu.cuCtxSetCurrent(ctx);
      if (r == 0) r = cu.cuMemGetInfo(&fr, &tot);
      cu.cuCtxSetCurrent(nullptr);
      if (r != 0) {
        Fail("NO_GPU", "GPU " + std::to_string(j.device) + ": could not create its context: " + CuErrorText(r));
        return;
      }
      if (sink != Sink::Device) continue;
      uint64_t need = kDevMargin;
      for (uint32_t fi : j.files) need += (files[fi]->end - files[fi]->begin + kDevRound - 1) / kDevRound * kDevRound;
      if (need > fr) {
        code = "GPU_OOM";
        error = "GPU " + std::to_string(j.device) + " (" + j.name + ") has " + std::to_string(fr) + " bytes free but loading its " +
                std::to_string(j.files.size()) + " file(s) needs " + std::to_string(need) + "; nothing was allocated";
        return;
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
  for (auto& jp : jobs) {
    if (!jp->error.empty()) {
      // Prefer a real cause over the cancellations it triggered in sibling jobs.
      if (error.empty() || code == "INTERRUPTED") {
        code = jp->code;
        error = jp->error;
      }
    }
  }
  if (error.empty() && Cancelled()) Fail("INTERRUPTED", "the load was cancelled");
}

Napi::Value LoadBaton::ToJS(Napi::Env env) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("mode", gpu ? "gpu" : "host");
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
    if (returnHost && f.host) x.Set("data", Napi::Buffer<char>::Copy(env, f.host, f.end - f.begin));
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

uint64_t U64(const Napi::Value& v) {
  double d = v.As<Napi::Number>().DoubleValue();
  return d <= 0 ? 0 : static_cast<uint64_t>(d);
}

Napi::Value GpuLoad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) throw ArgError(env, "gpuLoad", "options", "an object");
  Napi::Object o = info[0].As<Napi::Object>();
  std::unique_ptr<LoadBaton> b(new LoadBaton());
  std::string mode = o.Has("mode") && o.Get("mode").IsString() ? o.Get("mode").As<Napi::String>().Utf8Value() : "gpu";
  b->gpu = mode == "gpu";
  std::string sink = o.Has("sink") && o.Get("sink").IsString() ? o.Get("sink").As<Napi::String>().Utf8Value() : (b->gpu ? "device" : "memory");
  if (sink == "device") b->sink = Sink::Device;
  else if (sink == "memory") b->sink = Sink::Memory;
  else if (sink == "discard") b->sink = Sink::Discard;
  else throw ArgError(env, "gpuLoad", "options.sink", "device, memory or discard");
  if (b->sink == Sink::Device && !b->gpu) throw ArgError(env, "gpuLoad", "options.sink", "memory or discard in host mode");
  if (b->gpu && !Cuda().loaded) throw Napi::Error::New(env, "gpuLoad: no CUDA driver: " + Cuda().loadError);
  b->chunkBytes = static_cast<uint64_t>(OptNumber(o, "chunkBytes", 16 << 20));
  if (b->chunkBytes < kAlign || b->chunkBytes % kAlign != 0) throw ArgError(env, "gpuLoad", "options.chunkBytes", "a multiple of 4096");
  b->threads = static_cast<int>(OptNumber(o, "threads", 8));
  b->buffers = static_cast<int>(OptNumber(o, "buffers", 16));
  b->streams = static_cast<int>(OptNumber(o, "streams", 4));
  if (b->threads < 1 || b->threads > 256 || b->buffers < 1 || b->buffers > 4096 || b->streams < 1 || b->streams > 64)
    throw ArgError(env, "gpuLoad", "threads/buffers/streams", "1..256, 1..4096, 1..64");
  b->direct = OptBool(o, "direct", false);
  std::string ring = o.Has("ring") && o.Get("ring").IsString() ? o.Get("ring").As<Napi::String>().Utf8Value() : "alloc";
  if (ring != "alloc" && ring != "register") throw ArgError(env, "gpuLoad", "options.ring", "alloc or register");
  b->registerRing = ring == "register";
  b->returnHost = OptBool(o, "returnHost", false);
  b->testCorrupt = OptBool(o, "testCorrupt", false);

  if (!o.Get("files").IsArray()) throw ArgError(env, "gpuLoad", "options.files", "an array");
  Napi::Array fa = o.Get("files").As<Napi::Array>();
  for (uint32_t i = 0; i < fa.Length(); i++) {
    Napi::Value v = fa.Get(i);
    if (!v.IsObject()) throw ArgError(env, "gpuLoad", "options.files[]", "{path, begin, end, device}");
    Napi::Object f = v.As<Napi::Object>();
    if (!f.Get("path").IsString() || !f.Get("begin").IsNumber() || !f.Get("end").IsNumber())
      throw ArgError(env, "gpuLoad", "options.files[]", "{path, begin, end, device}");
    auto fs = std::make_unique<FileSpec>();
    fs->path = f.Get("path").As<Napi::String>().Utf8Value();
    fs->begin = U64(f.Get("begin"));
    fs->end = U64(f.Get("end"));
    fs->device = static_cast<int>(OptNumber(f, "device", 0));
    if (fs->end < fs->begin) throw ArgError(env, "gpuLoad", "options.files[].end", ">= begin");
    b->files.push_back(std::move(fs));
  }
  // plan: Float64Array of 6 numbers per chunk: file, readOff, readLen, skip, copyLen, dest.
  Napi::Value pv = o.Get("plan");
  if (!pv.IsTypedArray() || pv.As<Napi::TypedArray>().TypedArrayType() != napi_float64_array)
    throw ArgError(env, "gpuLoad", "options.plan", "a Float64Array");
  Napi::Float64Array plan = pv.As<Napi::Float64Array>();
  if (plan.ElementLength() % 6 != 0) throw ArgError(env, "gpuLoad", "options.plan", "6 numbers per chunk");
  for (size_t i = 0; i < plan.ElementLength(); i += 6) {
    Chunk c{static_cast<uint32_t>(plan[i]), static_cast<uint64_t>(plan[i + 1]), static_cast<uint64_t>(plan[i + 2]),
            static_cast<uint64_t>(plan[i + 3]), static_cast<uint64_t>(plan[i + 4]), static_cast<uint64_t>(plan[i + 5])};
    if (c.file >= b->files.size()) throw ArgError(env, "gpuLoad", "options.plan", "valid file indexes");
    const FileSpec& f = *b->files[c.file];
    // The plan is trusted only as far as it stays inside the file's range and the ring buffer.
    if (c.readLen > b->chunkBytes || c.skip + c.copyLen > c.readLen || c.dest + c.copyLen > f.end - f.begin ||
        c.readOff + c.skip != f.begin + c.dest)
      throw ArgError(env, "gpuLoad", "options.plan", "chunks inside their file and the chunk size");
    b->chunks.push_back(c);
  }
  Napi::Value sv = o.Get("samples");
  if (sv.IsTypedArray() && sv.As<Napi::TypedArray>().TypedArrayType() == napi_float64_array) {
    Napi::Float64Array s = sv.As<Napi::Float64Array>();
    if (s.ElementLength() % 3 != 0) throw ArgError(env, "gpuLoad", "options.samples", "3 numbers per sample");
    for (size_t i = 0; i < s.ElementLength(); i += 3) {
      Sample x{static_cast<uint32_t>(s[i]), static_cast<uint64_t>(s[i + 1]), static_cast<uint64_t>(s[i + 2])};
      if (x.file >= b->files.size() || x.offset + x.length > b->files[x.file]->end - b->files[x.file]->begin)
        throw ArgError(env, "gpuLoad", "options.samples", "ranges inside their file");
      b->samples.push_back(x);
    }
  }
  Napi::Value cv = o.Get("cancel");
  if (cv.IsTypedArray() && cv.As<Napi::TypedArray>().TypedArrayType() == napi_int32_array) {
    Napi::Int32Array a = cv.As<Napi::Int32Array>();
    if (a.ElementLength() >= 1) {
      b->cancel = a.Data();
      b->cancelRef = Napi::Persistent(a.As<Napi::Object>());
    }
  }
  Napi::Value gv = o.Get("progress");
  if (gv.IsTypedArray() && gv.As<Napi::TypedArray>().TypedArrayType() == napi_float64_array) {
    Napi::Float64Array a = gv.As<Napi::Float64Array>();
    if (a.ElementLength() >= 1) {
      b->progress = a.Data();
      b->progressRef = Napi::Persistent(a.As<Napi::Object>());
    }
  }
  return Queue(env, b.release());
}

// ------------------------------------------------------------------------------------------- page cache
struct CacheBaton : Baton {
  std::vector<std::string> paths;
  std::string action;  // query | evict
  struct R {
    double bytes = 0, resident = 0;
    std::string note;
  };
  std::vector<R> out;

  static bool Resident(int fd, uint64_t size, double& resident) {
    if (size == 0) return true;
    void* m = mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED) return false;
    long ps = sysconf(_SC_PAGESIZE);
    size_t pages = (size + ps - 1) / ps;
    std::vector<unsigned char> vec(pages);
    bool ok = mincore(m, size, vec.data()) == 0;
    if (ok) {
      uint64_t n = 0;
      for (unsigned char c : vec) n += c & 1;
      resident = std::min<double>(static_cast<double>(size), static_cast<double>(n) * ps);
    }
    munmap(m, size);
    return ok;
  }

  void Run() override {
    for (const std::string& p : paths) {
      R r;
      int fd = open(p.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) {
        int e = errno;
        Fail(e == ENOENT ? "NOT_FOUND" : e == EACCES ? "PERMISSION" : "ENV", p + ": cannot open: " + Errno(e));
        return;
      }
      struct stat st;
      fstat(fd, &st);
      r.bytes = static_cast<double>(st.st_size);
      if (action == "evict") {
        // Dirty pages cannot be dropped: write them back first (this does not change the file's contents).
        fdatasync(fd);
        int e = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
        if (e != 0) r.note = "posix_fadvise(DONTNEED) failed: " + Errno(e);
      }
      if (!Resident(fd, static_cast<uint64_t>(st.st_size), r.resident)) {
        r.resident = -1;
        if (r.note.empty()) r.note = "mincore is not available for this file: " + Errno(errno);
      }
      close(fd);
      out.push_back(r);
    }
  }
  Napi::Value ToJS(Napi::Env env) override {
    Napi::Array a = Napi::Array::New(env, out.size());
    for (size_t i = 0; i < out.size(); i++) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("path", paths[i]);
      o.Set("bytes", out[i].bytes);
      if (out[i].resident >= 0) o.Set("residentBytes", out[i].resident);
      else o.Set("residentBytes", env.Null());
      if (!out[i].note.empty()) o.Set("note", out[i].note);
      a.Set(i, o);
    }
    return a;
  }
};

Napi::Value PageCache(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) throw ArgError(env, "pageCache", "options", "{paths, action}");
  Napi::Object o = info[0].As<Napi::Object>();
  auto* b = new CacheBaton();
  b->action = o.Get("action").IsString() ? o.Get("action").As<Napi::String>().Utf8Value() : "query";
  if (b->action != "query" && b->action != "evict") {
    delete b;
    throw ArgError(env, "pageCache", "options.action", "query or evict");
  }
  if (!o.Get("paths").IsArray()) {
    delete b;
    throw ArgError(env, "pageCache", "options.paths", "an array of strings");
  }
  Napi::Array a = o.Get("paths").As<Napi::Array>();
  for (uint32_t i = 0; i < a.Length(); i++) {
    if (!a.Get(i).IsString()) {
      delete b;
      throw ArgError(env, "pageCache", "options.paths[]", "a string");
    }
    b->paths.push_back(a.Get(i).As<Napi::String>().Utf8Value());
  }
  return Queue(env, b);
}

// ------------------------------------------------------------------------------------------- transfer limits
// Pinned host ↔ device bandwidth with large copies, timed with events: the PCIe ceiling the loader is held to.
struct LimitsBaton : Baton {
  int device = 0;
  uint64_t bytes = 256ull << 20;
  int iterations = 8;
  double h2d = 0, d2h = 0;
  std::string name;

  void Run() override {
    const CudaApi& cu = Cuda();
    if (!cu.loaded) return Fail("NO_GPU", cu.loadError);
    CUresult r = cu.cuInit(0);
    if (r != 0) return Fail("NO_GPU", "cuInit failed: " + CuErrorText(r));
    CUdevice dev;
    if ((r = cu.cuDeviceGet(&dev, device)) != 0) return Fail("BAD_FLAG", "GPU " + std::to_string(device) + ": " + CuErrorText(r));
    char nm[256] = {0};
    cu.cuDeviceGetName(nm, sizeof(nm) - 1, dev);
    name = nm;
    CUcontext ctx = nullptr;
    if ((r = cu.cuDevicePrimaryCtxRetain(&ctx, dev)) != 0) return Fail("NO_GPU", "context: " + CuErrorText(r));
    cu.cuCtxSetCurrent(ctx);
    void* host = nullptr;
    CUdeviceptr d = 0;
    CUstream s = nullptr;
    CUevent e0 = nullptr, e1 = nullptr;
    do {
      if ((r = cu.cuMemHostAlloc(&host, bytes, CU_MEMHOSTALLOC_PORTABLE)) != 0) break;
      memset(host, 0x5a, bytes);
      if ((r = cu.cuMemAlloc(&d, bytes)) != 0) break;
      if ((r = cu.cuStreamCreate(&s, CU_STREAM_NON_BLOCKING)) != 0) break;
      if ((r = cu.cuEventCreate(&e0, CU_EVENT_DEFAULT)) != 0) break;
      if ((r = cu.cuEventCreate(&e1, CU_EVENT_DEFAULT)) != 0) break;
      for (int dir = 0; dir < 2 && r == 0; dir++) {
        auto copy = [&]() { return dir == 0 ? cu.cuMemcpyHtoDAsync(d, host, bytes, s) : cu.cuMemcpyDtoHAsync(host, d, bytes, s); };
        if ((r = copy()) != 0) break;  // warm-up
        if ((r = cu.cuStreamSynchronize(s)) != 0) break;
        cu.cuEventRecord(e0, s);
        for (int i = 0; i < iterations && r == 0; i++) r = copy();
        cu.cuEventRecord(e1, s);
        if (r == 0) r = cu.cuEventSynchronize(e1);
        float ms = 0;
        if (r == 0) r = cu.cuEventElapsedTime(&ms, e0, e1);
        double bps = ms > 0 ? static_cast<double>(bytes) * iterations / (ms * 1e-3) : 0;
        (dir == 0 ? h2d : d2h) = bps;
      }
    } while (false);
    if (r != 0) Fail(r == 2 ? "GPU_OOM" : "ENV", "transfer limits on GPU " + std::to_string(device) + ": " + CuErrorText(r));
    if (e0) cu.cuEventDestroy(e0);
    if (e1) cu.cuEventDestroy(e1);
    if (s) cu.cuStreamDestroy(s);
    if (d) cu.cuMemFree(d);
    if (host) cu.cuMemFreeHost(host);
    cu.cuCtxSetCurrent(nullptr);
    cu.cuDevicePrimaryCtxRelease(dev);
  }
  Napi::Value ToJS(Napi::Env env) override {
    Napi::Object o = Napi::Object::New(env);
    o.Set("device", device);
    o.Set("name", name);
    o.Set("bytes", static_cast<double>(bytes) * iterations);
    o.Set("h2dBytesPerSecond", h2d);
    o.Set("d2hBytesPerSecond", d2h);
    return o;
  }
};

Napi::Value TransferLimits(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto* b = new LimitsBaton();
  if (info.Length() > 0 && info[0].IsObject()) {
    Napi::Object o = info[0].As<Napi::Object>();
    b->device = static_cast<int>(OptNumber(o, "device", 0));
    b->bytes = static_cast<uint64_t>(OptNumber(o, "bytes", 256 << 20));
    b->iterations = static_cast<int>(OptNumber(o, "iterations", 8));
  }
  if (b->bytes < 1 || b->iterations < 1) {
    delete b;
    throw ArgError(env, "transferLimits", "bytes/iterations", "positive numbers");
  }
  return Queue(env, b);
}

// ------------------------------------------------------------------------------------------- device memory
struct MemInfoBaton : Baton {
  int device = 0;
  size_t fr = 0, tot = 0;
  void Run() override {
    const CudaApi& cu = Cuda();
    if (!cu.loaded) return Fail("NO_GPU", cu.loadError);
    CUresult r = cu.cuInit(0);
    CUdevice dev;
    if (r == 0) r = cu.cuDeviceGet(&dev, device);
    if (r != 0) return Fail("NO_GPU", CuErrorText(r));
    CUcontext ctx = nullptr;
    if ((r = cu.cuDevicePrimaryCtxRetain(&ctx, dev)) != 0) return Fail("NO_GPU", CuErrorText(r));
    cu.cuCtxSetCurrent(ctx);
    r = cu.cuMemGetInfo(&fr, &tot);
    cu.cuCtxSetCurrent(nullptr);
    cu.cuDevicePrimaryCtxRelease(dev);
    if (r != 0) Fail("ENV", CuErrorText(r));
  }
  Napi::Value ToJS(Napi::Env env) override {
    Napi::Object o = Napi::Object::New(env);
    o.Set("free", static_cast<double>(fr));
    o.Set("total", static_cast<double>(tot));
    return o;
  }
};

Napi::Value DeviceMemInfo(const Napi::CallbackInfo& info) {
  auto* b = new MemInfoBaton();
  if (info.Length() > 0 && info[0].IsNumber()) b->device = info[0].As<Napi::Number>().Int32Value();
  return Queue(info.Env(), b);
}

}  // namespace

void InitLoader(Napi::Env env, Napi::Object exports) {
  exports.Set("gpuLoad", Napi::Function::New(env, GpuLoad, "gpuLoad"));
  exports.Set("pageCache", Napi::Function::New(env, PageCache, "pageCache"));
  exports.Set("transferLimits", Napi::Function::New(env, TransferLimits, "transferLimits"));
  exports.Set("deviceMemInfo", Napi::Function::New(env, DeviceMemInfo, "deviceMemInfo"));
}

}  // namespace coldstart
