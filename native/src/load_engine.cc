// The gpu-load engine (load_engine.h): checks the files, groups them per device, and runs each device's pipeline
// (ring or mapped, loader.cc's head comment), then verifies samples. No N-API here.
#include "load_engine.h"
#include "residency.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <thread>

namespace coldstart {

std::string Errno(int e) { return std::string(strerror(e)) + " (errno " + std::to_string(e) + ")"; }

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
static std::vector<Interval> Merge(std::vector<Interval> v) {
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

// pread until `want` bytes of [off, off + len) are in p, or the file ends; O_DIRECT stops at the short block of EOF.
// Returns 0, or the errno of the failed read.
static int PreadAll(int fd, char* p, uint64_t off, uint64_t len, uint64_t want, bool direct, uint64_t* got) {
  *got = 0;
  while (*got < len) {
    ssize_t r = pread(fd, p + *got, len - *got, static_cast<off_t>(off + *got));
    if (r < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (r == 0) break;
    *got += static_cast<uint64_t>(r);
    if (direct && *got >= want && (*got % kAlign) != 0) break;  // EOF inside the last block
  }
  return 0;
}

bool LoadEngine::ReadChunk(const Chunk& c, char* dst, Job& job) {
  FileSpec& f = *files[c.file];
  const uint64_t need = c.skip + c.copyLen;  // ≤ readLen ≤ chunkBytes (checked at parse)
  bool useDirect = direct && f.directOk.load();
  // A load that watches its cold reads (cs_load's) asks the page cache first: a chunk it does not hold whole comes
  // from the disk through the gate (diskStreams at a time, in file order); with coldDirect it is read around the
  // page cache (O_DIRECT, straight into the ring). O_DIRECT loads all go to the disk. (Counted before: CountCold.)
  DiskGate::Pass pass;
  if (watchCold && !useDirect && c.copyLen > 0) {
    FdLease q(*fds, c.file);
    if (!q) return job.Fail(ErrFromErrno(q.error()), f.path + ": cannot open: " + Errno(q.error())), false;
    uint64_t res = 0, pages = 0;
    if (!ResidentPages(q.get(), c.readOff + c.skip, c.copyLen, &res, &pages)) {
      coldUnknown = true;
    } else if (res < pages) {
      // Unbounded (0), the gate only counts the readers at the disk at once (every one enters at once).
      pass = diskGate.Enter(diskStreams > 0 ? diskStreams : kMaxThreads, {c.file, c.readOff});
      if (failed.load()) return false;  // another reader failed while this one waited: read nothing more
      useDirect = coldDirect && f.directOk.load();
    }
  }
  for (;;) {
    FdLease lease(useDirect ? *fdsDirect : *fds, c.file);
    if (!lease) {
      int e = lease.error();
      if (useDirect) {
        if (f.directOk.exchange(false)) DirectRefused(f.path, Errno(e));  // counted once per file
        useDirect = false;
        continue;
      }
      job.Fail(ErrFromErrno(e), f.path + ": cannot open: " + Errno(e));
      return false;
    }
    const uint64_t off = useDirect ? c.readOff : c.readOff + c.skip;
    const uint64_t len = useDirect ? c.readLen : c.copyLen;
    const uint64_t want = useDirect ? need : c.copyLen;
    uint64_t got = 0;
    int e = PreadAll(lease.get(), useDirect ? dst : dst + c.skip, off, len, want, useDirect, &got);
    if (e == EINVAL && useDirect) {
      // The filesystem accepted O_DIRECT at open but not for this read: the page cache from now on.
      if (f.directOk.exchange(false)) DirectRefused(f.path, "EINVAL on read");
      useDirect = false;
      continue;
    }
    if (e != 0) {
      job.Fail(ErrFromErrno(e), f.path + ": read failed at byte " + std::to_string(off + got) + ": " + Errno(e));
      return false;
    }
    if (got < want) {
      job.Fail(Err::CorruptFile, f.path + ": file ended at byte " + std::to_string(off + got) + " while " + std::to_string(off + want) +
                                     " were expected (was it truncated while loading?)");
      return false;
    }
    return true;
  }
}

static char* AlignedAlloc(size_t n) {
  void* p = nullptr;
  if (posix_memalign(&p, kAlign, std::max<size_t>(n, kAlign)) != 0) return nullptr;
  return static_cast<char*>(p);
}

// A ring buffer on its first use: pinned (with its two timing events) for a GPU, plain aligned memory otherwise.
bool LoadEngine::AllocBuf(Job& job, Buf& x) {
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

void LoadEngine::Reader(Job& job, const PrimaryCtx& ctx, std::vector<Buf>& bufs, FreeList& ring, std::atomic<size_t>& next, CUstream stream, CUevent ref, double tRef) {
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
    const int bi = ring.Take();
    Buf& b = bufs[static_cast<size_t>(bi)];
    if (!b.p) {
      double ta = MonotonicSeconds();
      bool ok = AllocBuf(job, b);
      ringSeconds += MonotonicSeconds() - ta;
      if (!ok) {
        failed = true;
        ring.Give(bi);
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
        memcpy(f.hostDst + c.dest, b.p + c.skip, c.copyLen);
        copies.push_back({ta, MonotonicSeconds(), c.file});
      }
      AddDone(c.copyLen);
    }
    ring.Give(bi);
  }
  job.Merge(ringSeconds, 0, reads, copies);
}

// Path "mapped": pin a chunk of the read-only file mapping in place (this faults its page-cache pages in: the
// "read"), DMA it, and unregister it once its copy is done. Two chunks per worker stay in flight.
void LoadEngine::MappedWorker(Job& job, const PrimaryCtx& ctx, std::atomic<size_t>& next, CUstream stream, CUevent ref, double tRef) {
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
  job.Merge(0, registerSeconds, reads, copies);
}

void LoadEngine::RunJob(Job& job) {
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

  // Destination memory: one allocation per file, unless the caller gave the destination.
  double ta0 = MonotonicSeconds();
  for (uint32_t fi : job.files) {
    FileSpec& f = *files[fi];
    uint64_t n = f.size();
    if (n == 0) continue;
    if (f.Given()) {
      f.dptr = f.givenDptr;
      f.hostDst = f.givenHost;
    } else if (sink == Sink::Device) {
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
      f.hostDst = f.host.get();
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

  FreeList ring(buffers);
  std::atomic<size_t> next{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < nThreads; t++) {
    CUstream s = pinned ? strm[static_cast<size_t>(t) % strm.size()].get() : nullptr;
    if (path == CopyPath::Mapped) ts.emplace_back([&, s] { MappedWorker(job, ctx, next, s, ref.get(), tRef); });
    else ts.emplace_back([&, s] { Reader(job, ctx, bufs, ring, next, s, ref.get(), tRef); });
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
    for (uint32_t fi : job.files) files[fi]->dptr = 0;  // `dest` frees them on return (given ones are the caller's)
  };
  if (!job.error.empty() || failed) return forget();

  if (testCorrupt && !job.files.empty()) {
    // Test hook: flip one loaded byte so that the verify path must see a mismatch.
    FileSpec& f = *files[job.files[0]];
    if (f.end > f.begin) {
      if (f.hostDst) f.hostDst[0] ^= 0xff;
      if (f.dptr) {
        unsigned char x = 0;
        cu.cuMemcpyDtoH(&x, f.dptr, 1);
        x ^= 0xff;
        cu.cuMemcpyHtoD(f.dptr, &x, 1);
      }
    }
  }
  if (!samples.empty()) Verify(job);
  if (keep && job.error.empty() && !failed) Keep(job, dest);
  forget();
}

// keep: each file's allocation gets a CUDA IPC handle and moves, with a reference on the context, into job.kept, so
// that it outlives this job for the process that opens the handles (restore --stage; capi.cc cs_copy_staged).
void LoadEngine::Keep(Job& job, std::vector<DeviceMem>& dest) {
  const CudaApi& cu = Cuda();
  if (!cu.cuIpcGetMemHandle) {
    job.Fail(Err::Unsupported, "this CUDA driver has no cuIpcGetMemHandle: the loaded files cannot be handed to another process");
    return;
  }
  for (uint32_t fi : job.files) {
    FileSpec& f = *files[fi];
    if (!f.dptr || f.Given()) continue;
    CUipcMemHandle h;
    CUresult r = cu.cuIpcGetMemHandle(&h, f.dptr);
    if (r != 0) {
      job.Fail(Err::Unsupported, "cuIpcGetMemHandle for " + f.path + " failed: " + CuErrorText(r));
      return;
    }
    static const char* hex = "0123456789abcdef";
    f.ipcHex.clear();
    for (unsigned char c : h.reserved) {
      f.ipcHex.push_back(hex[c >> 4]);
      f.ipcHex.push_back(hex[c & 15]);
    }
  }
  auto k = std::make_unique<Kept>();
  CUresult r = k->ctx.Retain(job.device);
  if (r != 0) {
    job.Fail(Err::Env, "GPU " + std::to_string(job.device) + ": could not keep its context: " + CuErrorText(r));
    return;
  }
  for (DeviceMem& d : dest) k->mems.push_back(std::move(d));
  dest.clear();
  for (uint32_t fi : job.files) k->bytes += files[fi]->Given() ? 0 : files[fi]->size();
  job.kept = std::move(k);
}

// Copies each sample back (device → host, or from the host destination) and compares with the file's bytes,
// read again through a separate buffered descriptor.
void LoadEngine::Verify(Job& job) {
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
      memcpy(have.data(), f.hostDst + s.offset, s.length);
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

// What the page cache lacks of each range before the first read (coldBytes; coldUnknown when it cannot be told): the
// bytes this load gets from the disk, one query per range. Counted at each chunk's read instead, pages the kernel's
// readahead had put in flight by then (brought in by the reads before it, through the page cache) would count as
// cached.
void LoadEngine::CountCold() {
  for (uint32_t i = 0; i < files.size(); i++) {
    const FileSpec& f = *files[i];
    if (f.size() == 0) continue;
    FdLease q(*fds, i);
    uint64_t res = 0, pages = 0;
    if (!q || !ResidentPages(q.get(), f.begin, f.size(), &res, &pages)) {
      coldUnknown = true;  // the read itself reports a file that cannot be opened
      continue;
    }
    if (res < pages) coldBytes += std::min(f.size(), (pages - res) * PageBytes());
  }
}

// Checks every file (and, when asked, maps it) before anything is allocated, one descriptor at a time, and opens
// the pools the reads use (a bounded number of descriptors at once, never one per shard). False: Fail was called.
bool LoadEngine::CheckFiles() {
  std::vector<std::string> paths;
  for (auto& fp : files) {
    FileSpec& f = *fp;
    Fd fd(OpenToCheck(f.path.c_str()));
    if (!fd) {
      int e = errno;
      return Fail(ErrFromErrno(e), f.path + ": cannot open: " + Errno(e)), false;
    }
    struct stat st;
    if (fstat(fd.get(), &st) != 0 || !IsRegularFile(st)) return Fail(Err::CorruptFile, f.path + ": not a regular file (a FIFO, device or folder is never loaded)"), false;
    if (st.st_size < 0 || static_cast<uint64_t>(st.st_size) < f.end) {
      return Fail(Err::CorruptFile, f.path + ": the file has " + std::to_string(st.st_size) + " bytes but the load reads up to byte " + std::to_string(f.end) +
                                        " (truncated, or changed since its header was read?)"), false;
    }
    if (path == CopyPath::Mapped && !f.map.Map(fd.get(), static_cast<size_t>(st.st_size))) {
      int e = errno;
      return Fail(ErrFromErrno(e), f.path + ": mmap failed: " + Errno(e)), false;
    }
    f.directOk = (direct || coldDirect) && path == CopyPath::Ring;  // until an O_DIRECT open or read of it is refused
    paths.push_back(f.path);
  }
  // Buffered reads advised sequential, as the prefetch's: a cold file then reads by the same readahead window.
  fds.reset(new FdPool(paths, O_RDONLY, kOpenFiles, AdviseSequential));
  if ((direct || coldDirect) && path == CopyPath::Ring) fdsDirect.reset(new FdPool(paths, O_RDONLY | O_DIRECT, kOpenFiles));
  return true;
}

void LoadEngine::Run() {
  const CudaApi& cu = Cuda();
  if (!CheckFiles()) return;
  if (!tpRanks.empty()) return RunTp();
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
      uint64_t need = 0;
      for (uint32_t fi : j.files) {
        if (files[fi]->Given()) continue;  // the caller's memory, already allocated (a full card is no refusal then)
        uint64_t n = 0;
        if (!RoundUpU64(files[fi]->size(), kDevRound, &n) || !AddU64(need, n, &need)) return Fail(Err::BadArg, "file sizes overflow");
      }
      if (need > 0 && !AddU64(need, kDevMargin, &need)) return Fail(Err::BadArg, "file sizes overflow");
      if (need > fr) {
        return Fail(Err::GpuOom, "GPU " + std::to_string(j.device) + " (" + j.name + ") has " + std::to_string(fr) + " bytes free but loading its " +
                                     std::to_string(j.files.size()) + " file(s) needs " + std::to_string(need) + "; nothing was allocated");
      }
    }
  }
  if (watchCold) CountCold();
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

}  // namespace coldstart
