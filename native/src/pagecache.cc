// Page-cache control (issues 4, 15): what part of a file is resident (mincore), eviction (posix_fadvise
// DONTNEED, the control the gpu-load --cache cold measurement and the prefetch tests use), and prefetch: reading
// files into the page cache in parallel at the disk's rate, so that any stack that opens them later reads memory.
//
// Prefetch strategies (options.strategy):
//   pread      each worker reads 8 MiB chunks into one reused buffer (the data lands in the page cache on the way)
//   readahead  readahead(2) per chunk: the kernel reads without copying to user space
//   fadvise    posix_fadvise(WILLNEED) per chunk: asynchronous; then wait until mincore reports the files resident
// readahead and fadvise are issued in calls no larger than the kernel reads per call (AdviseLimit) and may still stop
// short (memory pressure); completion is checked with mincore and any chunk still missing is read with pread, so
// every strategy ends with the bytes resident when memory allows.
// Files of a memory filesystem (tmpfs, ramfs, hugetlbfs: /dev/shm, a server's memory-backed files) are not waited
// for: no disk is behind them, and a hole in one reads as zeros without ever becoming resident (the wait sat out its
// 0.5 s of no progress for such a hole, then "read" it with pread: test/native.test.ts).
//
// options.ranges (one list per path of byte offset, length, offset, length…) reads only those parts of each file:
// restore's read of the pages a snapshot's server had mapped from its libraries (src/snapshot/working-set.ts).
//
// Exports: pageCache({paths, action}), prefetch({paths, ranges, strategy, threads, chunkBytes, progress, cancel}),
// holdResident({paths}) / releaseResident(hold) (prefetch --hold: the files locked in memory).
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

#include "checked.h"
#include "common.h"
#include "handles.h"
#include "residency.h"

namespace coldstart {
namespace {

std::string Errno(int e) { return std::string(strerror(e)) + " (errno " + std::to_string(e) + ")"; }

constexpr size_t kOpenFiles = 32;  // prefetch's descriptors open at once, however many files

// fn on `n` threads at once, the calling one among them (each takes its work from a shared counter); a thread that
// cannot be had (the process's limit) leaves its share to the others.
template <typename Fn>
void OnThreads(int n, const Fn& fn) {
  std::vector<std::thread> ts;
  for (int k = 1; k < n; k++) {
    try {
      ts.emplace_back(fn);
    } catch (const std::system_error&) {
      break;
    }
  }
  fn();
  for (auto& t : ts) t.join();
}

// Whether fd's file lives on a memory filesystem (tmpfs, ramfs, hugetlbfs): its pages come from no disk, and a hole
// in it reads as zeros without becoming resident, so mincore never reports it however often it is read.
bool MemoryFilesystem(int fd) {
  constexpr long kTmpfs = 0x01021994, kRamfs = 0x858458f6, kHugetlbfs = 0x958458f6;
  struct statfs fs;
  if (fstatfs(fd, &fs) != 0) return false;
  const long t = static_cast<long>(fs.f_type);
  return t == kTmpfs || t == kRamfs || t == kHugetlbfs;
}

// The most one posix_fadvise(WILLNEED) or readahead(2) call reads of a file: the kernel cuts each call to the larger
// of its device's largest request (queue/max_sectors_kb) and its readahead window (read_ahead_kb) and drops the rest
// without a word (mm/readahead.c, force_page_cache_ra). On a disk with the common 128 KiB window an 8 MiB call read
// 1/16 of its bytes and the rest waited for Complete()'s pread. Read from sysfs for st_dev's disk (a partition's
// queue is its parent's); a file on no block device (overlayfs, a btrfs subvolume, a network filesystem) takes its
// backing device's window, and when none is found, the kernel's default window, 128 KiB. A multiple of the page size.
uint64_t AdviseLimit(dev_t device) {
  auto kib = [](const std::string& path) -> uint64_t {
    std::ifstream in(path);
    unsigned long long v = 0;
    return in >> v ? static_cast<uint64_t>(v) : 0;
  };
  const std::string dev = std::to_string(major(device)) + ":" + std::to_string(minor(device));
  uint64_t k = 0;
  for (const char* up : {"", "/.."}) {
    const std::string q = "/sys/dev/block/" + dev + up + "/queue/";
    k = std::max(kib(q + "read_ahead_kb"), kib(q + "max_sectors_kb"));
    if (k) break;
  }
  if (!k) k = kib("/sys/class/bdi/" + dev + "/read_ahead_kb");
  if (!k) k = 128;
  const uint64_t ps = PageBytes();
  k = std::min<uint64_t>(k, 1 << 20);  // 1 GiB: far above any device's, and k * 1024 cannot overflow
  return std::max(ps, k * 1024 / ps * ps);
}

// Resident bytes of [0, size) of fd (residency.h's mincore page vector); false when it cannot tell.
// `vec` receives one byte per page when given.
bool Resident(int fd, uint64_t size, uint64_t* resident, std::vector<unsigned char>* vecOut = nullptr) {
  *resident = 0;
  std::vector<unsigned char> vec;
  if (!PageVector(fd, 0, size, &vec)) return false;
  uint64_t n = 0;
  for (unsigned char c : vec) n += c & 1;
  *resident = std::min<uint64_t>(size, n * PageBytes());
  if (vecOut) *vecOut = std::move(vec);
  return true;
}

std::vector<std::string> Paths(Napi::Env env, const char* fn, const Napi::Object& o) {
  if (!o.Get("paths").IsArray()) throw ArgError(env, fn, "options.paths", "an array of strings");
  Napi::Array a = o.Get("paths").As<Napi::Array>();
  std::vector<std::string> out;
  for (uint32_t i = 0; i < a.Length(); i++) {
    if (!a.Get(i).IsString()) throw ArgError(env, fn, "options.paths[]", "a string");
    out.push_back(a.Get(i).As<Napi::String>().Utf8Value());
  }
  return out;
}

// Opens `p` to read (O_NONBLOCK: a FIFO never blocks the open) and checks that it is a regular file; false, with
// the baton failed in the one wording of these refusals, otherwise.
bool OpenRegularFile(const std::string& p, Fd* fd, struct stat* st, Baton* b) {
  *fd = Fd(OpenToCheck(p.c_str()));
  if (!*fd) {
    int e = errno;
    b->Fail(ErrFromErrno(e), p + ": cannot open: " + Errno(e));
    return false;
  }
  if (fstat(fd->get(), st) != 0) {
    int e = errno;
    b->Fail(ErrFromErrno(e), p + ": cannot stat: " + Errno(e));
    return false;
  }
  if (!IsRegularFile(*st)) {
    b->Fail(Err::CorruptFile, p + ": not a regular file (a FIFO or device is never read)");
    return false;
  }
  return true;
}

// ------------------------------------------------------------------------------------------- query / evict
struct CacheBaton : Baton {
  std::vector<std::string> paths;
  std::string action;  // query | evict
  struct R {
    double bytes = 0, resident = 0;
    std::string note;
  };
  std::vector<R> out;

  void Run() override {
    for (const std::string& p : paths) {
      R r;
      Fd fd;
      struct stat st;
      if (!OpenRegularFile(p, &fd, &st, this)) return;
      r.bytes = static_cast<double>(st.st_size);
      if (action == "evict") {
        // Dirty pages cannot be dropped: write them back first (this does not change the file's contents).
        fdatasync(fd.get());
        int e = posix_fadvise(fd.get(), 0, 0, POSIX_FADV_DONTNEED);
        if (e != 0) r.note = "posix_fadvise(DONTNEED) failed: " + Errno(e);
      }
      uint64_t res = 0;
      if (!Resident(fd.get(), static_cast<uint64_t>(st.st_size), &res)) {
        r.resident = -1;
        if (r.note.empty()) r.note = "mincore is not available for this file: " + Errno(errno);
      } else {
        r.resident = static_cast<double>(res);
      }
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
  std::unique_ptr<CacheBaton> b(new CacheBaton());
  b->action = o.Get("action").IsString() ? o.Get("action").As<Napi::String>().Utf8Value() : "query";
  if (b->action != "query" && b->action != "evict") throw ArgError(env, "pageCache", "options.action", "query or evict");
  b->paths = Paths(env, "pageCache", o);
  return Queue(env, b.release());
}

// ------------------------------------------------------------------------------------------- prefetch
enum class Strategy { Pread, Readahead, Fadvise };
// Tests only (options.testDropAdvice): advice the kernel "drops", as it does when a readahead page allocation fails
// (OddPieces: the first pass leaves out every other piece) or on a squashfs file's fragment tail (All: nothing
// advised is ever read ahead), so that Complete()'s advising again and its pread fallback are checked on any disk.
enum class DropAdvice { None, OddPieces, All };

struct PrefetchBaton : Baton {
  std::vector<std::string> paths;
  Strategy strategy = Strategy::Pread;
  DropAdvice dropAdvice = DropAdvice::None;
  int threads = 8;
  uint64_t chunkBytes = 8 << 20;
  int32_t* cancel = nullptr;
  uint64_t* progress = nullptr;
  Napi::ObjectReference cancelRef, progressRef;

  // Per path: byte offset, length, offset, length… to read (options.ranges); empty when whole files are read.
  std::vector<std::vector<uint64_t>> ranges;

  struct File {
    uint64_t size = 0, want = 0;  // want: the bytes of its spans
    bool memory = false;          // on a memory filesystem: nothing to wait for (MemoryFilesystem)
    uint64_t adviseLimit = 0;     // the most one readahead/fadvise call of it reads (AdviseLimit); 0 for pread
    std::vector<std::pair<uint64_t, uint64_t>> spans;  // [offset, offset + length) parts read, within the file
    double firstStart = -1, lastEnd = 0;
    std::mutex mu;
  };
  std::vector<std::unique_ptr<File>> files;
  std::unique_ptr<FdPool> fds;  // at most kOpenFiles open at a time, opened when a piece of the file is read
  struct Piece {
    uint32_t file;
    uint64_t off, len;
  };
  std::vector<Piece> pieces;
  double seconds = 0, issueSeconds = 0;
  double residentBefore = -1;  // ranges only: bytes of them resident before (-1: not measured)
  uint64_t bytes = 0, fallbackBytes = 0, readvisedBytes = 0;  // readvised: advised again by Complete()
  std::atomic<bool> failed{false};
  std::mutex mu;
  std::vector<std::string> notes;

  bool Cancelled() const { return cancel && __atomic_load_n(cancel, __ATOMIC_RELAXED) != 0; }
  void Progress(uint64_t n) {
    if (progress) __atomic_add_fetch(progress, n, __ATOMIC_RELAXED);
  }
  void FailOnce(Err c, const std::string& m) {
    std::lock_guard<std::mutex> g(mu);
    if (error.empty()) Fail(c, m);
    failed = true;
  }

  // A pooled descriptor of file fi; a failed open fails the prefetch.
  bool Open(uint32_t fi, const FdLease& lease) {
    if (lease) return true;
    FailOnce(ErrFromErrno(lease.error()), paths[fi] + ": cannot open: " + Errno(lease.error()));
    return false;
  }

  // Reads [off, off+len) of file fi (open as fd) through the page cache into buf (reused).
  bool ReadPiece(uint32_t fi, int fd, uint64_t off, uint64_t len, char* buf) {
    uint64_t got = 0;
    while (got < len) {
      uint64_t want = std::min<uint64_t>(len - got, chunkBytes);
      ssize_t r = pread(fd, buf, want, static_cast<off_t>(off + got));
      if (r < 0) {
        if (errno == EINTR) continue;
        int e = errno;
        FailOnce(ErrFromErrno(e), paths[fi] + ": read failed at byte " + std::to_string(off + got) + ": " + Errno(e));
        return false;
      }
      if (r == 0) break;  // the file shrank: read what is there
      got += static_cast<uint64_t>(r);
    }
    return true;
  }

  // readahead/fadvise of [off, off + len) of file fi, in calls of at most the file's advise limit, each starting on a
  // page (the kernel counts whole pages from the call's first one: an unaligned call of the limit's length would
  // spill one page past it).
  bool Advise(uint32_t fi, int fd, uint64_t off, uint64_t len) {
    if (dropAdvice == DropAdvice::All) return true;
    const uint64_t ps = PageBytes(), end = off + len;
    for (uint64_t s = off; s < end;) {
      const uint64_t e = std::min(end, s / ps * ps + files[fi]->adviseLimit);
      if (strategy == Strategy::Readahead) {
        if (readahead(fd, static_cast<off64_t>(s), e - s) != 0) {
          int err = errno;
          return FailOnce(ErrFromErrno(err), paths[fi] + ": readahead failed: " + Errno(err)), false;
        }
      } else {
        int err = posix_fadvise(fd, static_cast<off_t>(s), static_cast<off_t>(e - s), POSIX_FADV_WILLNEED);
        if (err != 0) return FailOnce(ErrFromErrno(err), paths[fi] + ": posix_fadvise(WILLNEED) failed: " + Errno(err)), false;
      }
      s = e;
    }
    return true;
  }

  // Tests only: whether the first pass leaves piece i unadvised (DropAdvice::OddPieces; All is Advise's own).
  bool DroppedOnFirstPass(size_t i) const { return dropAdvice == DropAdvice::OddPieces && i % 2 == 1; }

  // Each run of file i's spans that the page vector shows missing, at most `most` bytes long: fn(off, len), which
  // returns false to stop (and this returns false).
  template <typename Fn>
  bool MissingRuns(uint32_t i, const std::vector<unsigned char>& vec, uint64_t most, const Fn& fn) const {
    const uint64_t ps = PageBytes();
    for (const auto& sp : files[i]->spans) {
      for (uint64_t pg = sp.first / ps; pg < vec.size() && pg * ps < sp.second;) {
        if (vec[pg] & 1) {
          pg++;
          continue;
        }
        uint64_t end = pg;
        while (end < vec.size() && end * ps < sp.second && !(vec[end] & 1) && (end - pg) * ps < most) end++;
        const uint64_t off = std::max(sp.first, pg * ps), len = std::min(sp.second, end * ps) - off;
        if (!fn(off, len)) return false;
        pg = end;
      }
    }
    return true;
  }

  void Worker(std::atomic<size_t>& next) {
    HostMem buf;
    if (strategy == Strategy::Pread) {
      void* p = nullptr;
      if (posix_memalign(&p, 4096, chunkBytes) != 0) return FailOnce(Err::Env, "could not allocate a read buffer");
      buf.reset(static_cast<char*>(p));
    }
    while (!failed.load(std::memory_order_relaxed)) {
      if (Cancelled()) return FailOnce(Err::Interrupted, "prefetch was cancelled");
      size_t i = next.fetch_add(1);
      if (i >= pieces.size()) break;
      const Piece& pc = pieces[i];
      File& f = *files[pc.file];
      double ta = MonotonicSeconds();
      FdLease lease(*fds, pc.file);
      if (!Open(pc.file, lease)) return;
      if (strategy == Strategy::Pread) {
        if (!ReadPiece(pc.file, lease.get(), pc.off, pc.len, buf.get())) return;
      } else if (!DroppedOnFirstPass(i) && !Advise(pc.file, lease.get(), pc.off, pc.len)) {
        return;
      }
      double tb = MonotonicSeconds();
      {
        std::lock_guard<std::mutex> g(f.mu);
        if (f.firstStart < 0 || ta < f.firstStart) f.firstStart = ta;
        f.lastEnd = std::max(f.lastEnd, tb);
      }
      if (strategy == Strategy::Pread) Progress(pc.len);
    }
  }

  // Resident bytes of file i's spans, from mincore's page vector of the whole file; `whole`: what Resident counted for
  // the whole file, which is the answer when the one span is the whole file.
  uint64_t SpanResident(size_t i, const std::vector<unsigned char>& vec, uint64_t whole) const {
    const File& f = *files[i];
    if (f.spans.size() == 1 && f.spans[0].first == 0 && f.spans[0].second == f.size) return whole;
    const uint64_t ps = PageBytes();
    uint64_t n = 0;
    for (const auto& sp : f.spans)
      for (uint64_t pg = sp.first / ps; pg * ps < sp.second && pg < vec.size(); pg++)
        if (vec[pg] & 1) n += std::min(sp.second, (pg + 1) * ps) - std::max(sp.first, pg * ps);
    return n;
  }

  // readahead/fadvise: wait until mincore says the spans are resident. When nothing arrives for a moment, the runs
  // still missing are advised again (the kernel skips pages already under read and queues any it dropped: a
  // readahead page allocation may fail without a word, and left the whole wait to sit out its 0.5 s for a few
  // pages); pieces still missing 0.15 s after the last growth are read with pread (fallbackBytes).
  void Complete() {
    // Give up 0.1 s after advising again: a squashfs file's tail (packed in a fragment block) is never read ahead
    // however often it is advised (H100 Q2: libnvidia-ml.so's last 3 pages, 0.5 s of wait on every first pass).
    constexpr double kReadviseAfter = 0.05, kGiveUpAfter = 0.15;
    uint64_t lastTotal = 0;
    double lastGrowth = MonotonicSeconds();
    bool readvised = false;  // since the last growth
    std::vector<uint64_t> resident(files.size(), 0);
    std::vector<std::vector<unsigned char>> vecs(files.size());
    for (;;) {
      if (Cancelled()) return FailOnce(Err::Interrupted, "prefetch was cancelled");
      uint64_t total = 0, want = 0;
      for (size_t i = 0; i < files.size(); i++) {
        if (files[i]->memory) continue;
        uint64_t r = 0;
        FdLease lease(*fds, i);
        if (!lease || !Resident(lease.get(), files[i]->size, &r, &vecs[i])) r = files[i]->want, vecs[i].clear();  // cannot tell: trust the kernel
        else r = SpanResident(i, vecs[i], r);
        total += r;
        want += files[i]->want;
        if (r > resident[i]) Progress(r - resident[i]);
        resident[i] = r;
      }
      if (total >= want) return;
      double now = MonotonicSeconds();
      if (total > lastTotal) {
        lastTotal = total;
        lastGrowth = now;
        readvised = false;
      } else if (now - lastGrowth > kGiveUpAfter) {
        break;  // the kernel stopped: read the rest
      } else if (!readvised && now - lastGrowth > kReadviseAfter) {
        readvised = true;
        for (uint32_t i = 0; i < files.size(); i++) {
          if (files[i]->memory || resident[i] >= files[i]->want || vecs[i].empty()) continue;
          FdLease lease(*fds, i);
          if (!Open(i, lease)) return;
          const bool ok = MissingRuns(i, vecs[i], chunkBytes, [&](uint64_t off, uint64_t len) {
            readvisedBytes += len;
            return Advise(i, lease.get(), off, len);
          });
          if (!ok) return;
        }
      }
      usleep(20000);
    }
    HostMem buf;
    void* p = nullptr;
    if (posix_memalign(&p, 4096, chunkBytes) != 0) return FailOnce(Err::Env, "could not allocate a read buffer");
    buf.reset(static_cast<char*>(p));
    for (uint32_t i = 0; i < files.size(); i++) {
      if (files[i]->memory) continue;
      std::vector<unsigned char> vec;
      uint64_t r = 0;
      FdLease lease(*fds, i);
      if (!Open(i, lease)) return;
      if (!Resident(lease.get(), files[i]->size, &r, &vec)) continue;
      const bool ok = MissingRuns(i, vec, chunkBytes, [&](uint64_t off, uint64_t len) {
        if (!ReadPiece(i, lease.get(), off, len, buf.get())) return false;
        fallbackBytes += len;
        Progress(len);
        return true;
      });
      if (!ok) return;
    }
  }


  // One file's check: opened (never waiting on a FIFO) and fstat'ed; err is the errno of what failed.
  struct Checked {
    uint64_t size = 0;
    int err = 0;
    bool opened = false, statted = false, regular = false, memory = false;
    dev_t device = 0;
  };
  static Checked Check(const std::string& p) {
    Checked c;
    Fd fd(OpenToCheck(p.c_str()));
    if (!fd) return c.err = errno, c;
    c.opened = true;
    struct stat st;
    if (fstat(fd.get(), &st) != 0 || st.st_size < 0) return c.err = errno, c;
    c.statted = true;
    c.regular = IsRegularFile(st);
    c.size = static_cast<uint64_t>(st.st_size);
    c.memory = MemoryFilesystem(fd.get());
    c.device = st.st_dev;
    return c;
  }

  void Run() override {
    // Every file is checked first, by up to `threads` threads at once (on a cold node each open resolves its path
    // from the disk: a restore's working set is a few hundred library files, which one thread would look up one
    // after another); then each check is answered in the files' order, so the first bad file is the one named. The
    // workers open them again through the pool.
    std::vector<Checked> checked(paths.size());
    {
      std::atomic<size_t> nextPath{0};
      auto checkAll = [&] {
        for (size_t i = nextPath.fetch_add(1); i < paths.size(); i = nextPath.fetch_add(1)) checked[i] = Check(paths[i]);
      };
      OnThreads(std::max(1, std::min<int>(threads, static_cast<int>(std::min<size_t>(paths.size(), 256)))), checkAll);
    }
    std::map<dev_t, uint64_t> adviseLimits;  // one sysfs look-up per disk, and none when nothing is advised
    for (size_t i = 0; i < paths.size(); i++) {
      const std::string& p = paths[i];
      const Checked& c = checked[i];
      auto f = std::make_unique<File>();
      if (!c.opened) return Fail(ErrFromErrno(c.err), p + ": cannot open: " + Errno(c.err));
      if (!c.statted) return Fail(ErrFromErrno(c.err), p + ": cannot stat: " + Errno(c.err));
      if (!c.regular) return Fail(Err::CorruptFile, p + ": not a regular file (a FIFO or device is never read)");
      f->size = c.size;
      f->memory = c.memory;
      if (strategy != Strategy::Pread) {
        auto at = adviseLimits.find(c.device);
        if (at == adviseLimits.end()) at = adviseLimits.emplace(c.device, AdviseLimit(c.device)).first;
        f->adviseLimit = at->second;
      }
      if (ranges.empty()) {
        f->spans.push_back({0, f->size});
      } else {
        // Parts past the end are left out (the file may have shrunk since the ranges were taken).
        const std::vector<uint64_t>& r = ranges[files.size()];
        for (size_t k = 0; k + 1 < r.size(); k += 2) {
          uint64_t end = 0;
          if (!AddU64(r[k], r[k + 1], &end)) return Fail(Err::BadArg, p + ": a range overflows");
          end = std::min(end, f->size);
          if (r[k] < end) f->spans.push_back({r[k], end});
        }
      }
      for (const auto& sp : f->spans) {
        if (!AddU64(f->want, sp.second - sp.first, &f->want)) return Fail(Err::BadArg, "range lengths overflow");
        for (uint64_t off = sp.first; off < sp.second; off += chunkBytes) {
          pieces.push_back({static_cast<uint32_t>(files.size()), off, std::min(chunkBytes, sp.second - off)});
        }
      }
      if (!AddU64(bytes, f->want, &bytes)) return Fail(Err::BadArg, "file sizes overflow");
      files.push_back(std::move(f));
    }
    fds.reset(new FdPool(paths, O_RDONLY, kOpenFiles, strategy == Strategy::Pread ? AdviseSequential : nullptr));
    double t0 = MonotonicSeconds();
    // With ranges: how much of them the page cache held already (what is left is what the disk gives).
    if (!ranges.empty()) {
      residentBefore = 0;
      for (size_t i = 0; i < files.size(); i++) {
        uint64_t r = 0;
        std::vector<unsigned char> vec;
        FdLease lease(*fds, i);
        if (!lease || !Resident(lease.get(), files[i]->size, &r, &vec)) {
          residentBefore = -1;
          break;
        }
        residentBefore += static_cast<double>(SpanResident(i, vec, r));
      }
    }
    std::atomic<size_t> next{0};
    OnThreads(std::max(1, std::min<int>(threads, static_cast<int>(std::max<size_t>(1, pieces.size())))), [this, &next] { Worker(next); });
    issueSeconds = MonotonicSeconds() - t0;
    if (!failed && strategy != Strategy::Pread) Complete();
    seconds = MonotonicSeconds() - t0;
  }

  Napi::Value ToJS(Napi::Env env) override {
    Napi::Object o = Napi::Object::New(env);
    o.Set("strategy", strategy == Strategy::Pread ? "pread" : strategy == Strategy::Readahead ? "readahead" : "fadvise");
    o.Set("bytes", static_cast<double>(bytes));
    o.Set("seconds", seconds);
    o.Set("issueSeconds", issueSeconds);
    o.Set("fallbackBytes", static_cast<double>(fallbackBytes));
    o.Set("readvisedBytes", static_cast<double>(readvisedBytes));
    o.Set("threads", threads);
    if (!ranges.empty()) {
      if (residentBefore >= 0) o.Set("residentBeforeBytes", residentBefore);
      else o.Set("residentBeforeBytes", env.Null());
    }
    Napi::Array a = Napi::Array::New(env, files.size());
    for (size_t i = 0; i < files.size(); i++) {
      Napi::Object x = Napi::Object::New(env);
      x.Set("path", paths[i]);
      x.Set("bytes", static_cast<double>(files[i]->want));
      x.Set("seconds", files[i]->firstStart < 0 ? 0.0 : files[i]->lastEnd - files[i]->firstStart);
      a.Set(i, x);
    }
    o.Set("files", a);
    return o;
  }
};

Napi::Value Prefetch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* fn = "prefetch";
  if (info.Length() < 1 || !info[0].IsObject()) throw ArgError(env, fn, "options", "{paths, strategy, threads, chunkBytes}");
  Napi::Object o = info[0].As<Napi::Object>();
  std::unique_ptr<PrefetchBaton> b(new PrefetchBaton());
  b->paths = Paths(env, fn, o);
  if (o.Has("ranges") && !o.Get("ranges").IsUndefined()) {
    const char* what = "an array with one array per path of byte offset, length pairs (safe integers)";
    if (!o.Get("ranges").IsArray()) throw ArgError(env, fn, "options.ranges", what);
    Napi::Array ra = o.Get("ranges").As<Napi::Array>();
    if (ra.Length() != b->paths.size()) throw ArgError(env, fn, "options.ranges", what);
    for (uint32_t i = 0; i < ra.Length(); i++) {
      if (!ra.Get(i).IsArray()) throw ArgError(env, fn, "options.ranges[]", what);
      Napi::Array one = ra.Get(i).As<Napi::Array>();
      if (one.Length() % 2 != 0) throw ArgError(env, fn, "options.ranges[]", what);
      std::vector<uint64_t> v(one.Length());
      for (uint32_t k = 0; k < one.Length(); k++) {
        if (!one.Get(k).IsNumber() || !DoubleToU64(one.Get(k).As<Napi::Number>().DoubleValue(), &v[k])) throw ArgError(env, fn, "options.ranges[][]", what);
      }
      b->ranges.push_back(std::move(v));
    }
  }
  std::string s = o.Has("strategy") && !o.Get("strategy").IsUndefined() ? (o.Get("strategy").IsString() ? o.Get("strategy").As<Napi::String>().Utf8Value() : "?") : "pread";
  if (s == "pread") b->strategy = Strategy::Pread;
  else if (s == "readahead") b->strategy = Strategy::Readahead;
  else if (s == "fadvise") b->strategy = Strategy::Fadvise;
  else throw ArgError(env, fn, "options.strategy", "pread, readahead or fadvise");
  if (o.Has("testDropAdvice") && !o.Get("testDropAdvice").IsUndefined()) {
    const std::string d = o.Get("testDropAdvice").IsString() ? o.Get("testDropAdvice").As<Napi::String>().Utf8Value() : "?";
    if (d == "odd-pieces") b->dropAdvice = DropAdvice::OddPieces;
    else if (d == "all") b->dropAdvice = DropAdvice::All;
    else throw ArgError(env, fn, "options.testDropAdvice", "odd-pieces or all");
  }
  b->threads = static_cast<int>(OptInt(env, fn, o, "threads", 8, 1, 256));
  b->chunkBytes = OptU64(env, fn, o, "chunkBytes", 8 << 20);
  if (b->chunkBytes < 4096 || b->chunkBytes % 4096 != 0 || b->chunkBytes > (1ull << 30))
    throw ArgError(env, fn, "options.chunkBytes", "a multiple of 4096 up to 1 GiB");
  OptSharedFlags(env, fn, o, b.get());
  return Queue(env, b.release());
}

// ------------------------------------------------------------------------------------------- hold
// prefetch --hold: whole files mapped and locked (mlock), so that the kernel keeps their page-cache pages however
// much memory is asked for elsewhere, until releaseResident (or the process's end) lets them go. A locked page is a
// page-cache page: whatever reads the file (CRIU restoring an image, a server's loader) reads memory. The files are
// read into the page cache first (prefetch, in parallel); the lock then maps what is there.
struct HeldFiles {
  std::vector<Mapping> maps;
  uint64_t bytes = 0;
};
// The type tag of a hold's external: releaseResident takes no other external for one.
constexpr napi_type_tag kHoldTag = {0x636f6c6473746172ULL, 0x686f6c6446696c65ULL};

std::string MemlockLimit() {
  struct rlimit rl;
  if (getrlimit(RLIMIT_MEMLOCK, &rl) != 0) return "unknown";
  return rl.rlim_cur == RLIM_INFINITY ? "unlimited" : std::to_string(static_cast<unsigned long long>(rl.rlim_cur)) + " bytes";
}

struct HoldBaton : Baton {
  std::vector<std::string> paths;
  std::unique_ptr<HeldFiles> held{new HeldFiles()};
  double seconds = 0;

  void Run() override {
    const double t0 = MonotonicSeconds();
    for (const std::string& p : paths) {
      // Opened as prefetch opens what it reads (a weight file in the HF cache is a link into blobs/); which files
      // may be read at all is decided before, in TypeScript (an image's: regular files of its folder, no links).
      Fd fd;
      struct stat st;
      if (!OpenRegularFile(p, &fd, &st, this)) return;
      const uint64_t size = static_cast<uint64_t>(st.st_size);
      if (size > static_cast<uint64_t>(SIZE_MAX)) return Fail(Err::Env, p + ": larger than this process can map");
      Mapping m;
      if (!m.Map(fd.get(), static_cast<size_t>(size))) {
        int e = errno;
        return Fail(ErrFromErrno(e), p + ": mmap: " + Errno(e));
      }
      if (size > 0 && mlock(m.data(), m.size()) != 0) {
        int e = errno;
        // EPERM: no CAP_IPC_LOCK and a limit of 0; ENOMEM: past RLIMIT_MEMLOCK (or, with CAP_IPC_LOCK, out of memory).
        const Err c = e == EPERM || e == ENOMEM ? Err::Permission : ErrFromErrno(e);
        uint64_t total = 0;
        AddU64(held->bytes, size, &total);
        return Fail(c, p + ": mlock: " + Errno(e) + " locking " + std::to_string(static_cast<unsigned long long>(total)) + " bytes in all; RLIMIT_MEMLOCK is " + MemlockLimit());
      }
      if (!AddU64(held->bytes, size, &held->bytes)) return Fail(Err::Env, "held bytes overflow");
      held->maps.push_back(std::move(m));
    }
    seconds = MonotonicSeconds() - t0;
  }

  Napi::Value ToJS(Napi::Env env) override {
    Napi::Object o = Napi::Object::New(env);
    o.Set("files", Napi::Number::New(env, static_cast<double>(held->maps.size())));
    o.Set("bytes", Napi::Number::New(env, static_cast<double>(held->bytes)));
    o.Set("seconds", Napi::Number::New(env, seconds));
    // The mappings now belong to the JS handle: released by releaseResident, else when it is collected.
    auto hold = Napi::External<HeldFiles>::New(env, held.release(), [](Napi::Env, HeldFiles* h) { delete h; });
    hold.TypeTag(&kHoldTag);
    o.Set("hold", hold);
    return o;
  }
};

Napi::Value HoldResident(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) throw ArgError(env, "holdResident", "options", "{paths}");
  std::unique_ptr<HoldBaton> b(new HoldBaton());
  b->paths = Paths(env, "holdResident", info[0].As<Napi::Object>());
  return Queue(env, b.release());
}

// Unlocks and unmaps what holdResident held (at once; again is a no-op): the bytes let go.
Napi::Value ReleaseResident(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsExternal() || !info[0].As<Napi::External<HeldFiles>>().CheckTypeTag(&kHoldTag))
    throw ArgError(env, "releaseResident", "hold", "the hold holdResident returned");
  HeldFiles* h = info[0].As<Napi::External<HeldFiles>>().Data();
  const double bytes = static_cast<double>(h->bytes);
  h->maps.clear();
  h->bytes = 0;
  return Napi::Number::New(env, bytes);
}

}  // namespace

void InitPageCache(Napi::Env env, Napi::Object exports) {
  exports.Set("pageCache", Napi::Function::New(env, PageCache, "pageCache"));
  exports.Set("prefetch", Napi::Function::New(env, Prefetch, "prefetch"));
  exports.Set("holdResident", Napi::Function::New(env, HoldResident, "holdResident"));
  exports.Set("releaseResident", Napi::Function::New(env, ReleaseResident, "releaseResident"));
}

}  // namespace coldstart
