// snapshot's narrowing of a server's working set: pageOut({pid, ranges}) asks the kernel to page out these address
// ranges of another process (process_madvise(2) with MADV_PAGEOUT, Linux 5.10+; needs CAP_SYS_NICE and the right to
// ptrace it). The kernel unmaps each clean page mapped by that process alone and reclaims what it can from the page
// cache (a page also mapped elsewhere, or dirty, is left as it is). Nothing the process holds is lost: a file page is
// mapped again, from the page cache or the disk, at its next touch. The decision (which ranges: the file pages the
// server has present, src/platform/procfs.ts filePagesPresent; when: between two warmup requests) is snapshot.ts's;
// this only makes the calls. `bytes`: what the kernel advised; `skipped`: the bytes of ranges it refused (unmapped by
// then, or a mapping it does not page out: mlock'ed, huge pages), gone past.
#include <napi.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common.h"
#include "handles.h"

namespace coldstart {

namespace {

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_process_madvise
#define SYS_process_madvise 440
#endif
#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif
// process_madvise takes at most UIO_MAXIOV (1024) ranges a call.
constexpr size_t kIovPerCall = 1024;
// EINTR / EAGAIN (a kernel resource busy) are tried again, this many times in all.
constexpr int kRetries = 16;

std::string ErrnoText(int e) { return std::string(strerror(e)) + " (errno " + std::to_string(e) + ")"; }

struct PageOutBaton : Baton {
  int pid = 0;
  std::vector<iovec> ranges;
  uint64_t bytes = 0;
  uint64_t skipped = 0;
  double seconds = 0;

  void Run() override {
    const double t0 = MonotonicSeconds();
    Fd pidfd(static_cast<int>(syscall(SYS_pidfd_open, pid, 0)));
    if (!pidfd) {
      int e = errno;
      return Fail(e == ENOSYS ? Err::Unsupported : e == ESRCH ? Err::NotFound : ErrFromErrno(e), "pidfd_open(" + std::to_string(pid) + "): " + ErrnoText(e));
    }
    size_t i = 0;
    int retries = 0;
    while (i < ranges.size()) {
      const size_t n = std::min(kIovPerCall, ranges.size() - i);
      long r = syscall(SYS_process_madvise, pidfd.get(), &ranges[i], n, MADV_PAGEOUT, 0);
      if (r < 0) {
        int e = errno;
        // ENOMEM: the first range is no longer mapped (the process unmapped it since its pagemap was read); EINVAL: the
        // kernel does not page out that mapping (mlock'ed, huge-page or PFN mappings): skip it, go on with the rest.
        if (e == ENOMEM || e == EINVAL) {
          AddU64(skipped, ranges[i].iov_len, &skipped);
          ++i;
          continue;
        }
        if ((e == EINTR || e == EAGAIN) && ++retries <= kRetries) continue;
        const Err c = e == ENOSYS ? Err::Unsupported : e == ESRCH ? Err::NotFound : ErrFromErrno(e);
        return Fail(c, "process_madvise(MADV_PAGEOUT, pid " + std::to_string(pid) + "): " + ErrnoText(e));
      }
      // It may stop early (a range not mapped past the first): go on from the range where it stopped.
      uint64_t done = static_cast<uint64_t>(r);
      AddU64(bytes, done, &bytes);
      size_t k = i;
      while (k < i + n && done >= ranges[k].iov_len) done -= ranges[k++].iov_len;
      if (k < i + n && done > 0) {
        ranges[k].iov_base = static_cast<char*>(ranges[k].iov_base) + done;
        ranges[k].iov_len -= done;
      }
      i = k;
    }
    seconds = MonotonicSeconds() - t0;
  }

  Napi::Value ToJS(Napi::Env env) override {
    Napi::Object o = Napi::Object::New(env);
    o.Set("pid", pid);
    o.Set("bytes", Napi::Number::New(env, static_cast<double>(bytes)));
    o.Set("skipped", Napi::Number::New(env, static_cast<double>(skipped)));
    o.Set("seconds", Napi::Number::New(env, seconds));
    return o;
  }
};

Napi::Value PageOut(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* fn = "pageOut";
  if (info.Length() < 1 || !info[0].IsObject()) throw ArgError(env, fn, "options", "{pid, ranges}");
  Napi::Object o = info[0].As<Napi::Object>();
  int64_t pid = ArgInt(env, fn, "options.pid", o.Get("pid"), 1, 1 << 22);
  Napi::Float64Array a;
  if (!OptTyped(env, fn, o, "ranges", napi_float64_array, "a Float64Array of address, length pairs", &a) || a.ElementLength() % 2)
    throw ArgError(env, fn, "options.ranges", "a Float64Array of address, length pairs");
  const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  std::vector<iovec> ranges;
  ranges.reserve(a.ElementLength() / 2);
  for (size_t i = 0; i < a.ElementLength(); i += 2) {
    uint64_t addr = ArgU64(env, fn, "options.ranges[" + std::to_string(i) + "]", a[i]);
    uint64_t len = ArgU64(env, fn, "options.ranges[" + std::to_string(i + 1) + "]", a[i + 1]);
    uint64_t end = 0;
    if (!AddU64(addr, len, &end) || end > (uint64_t{1} << 53) || len == 0 || addr % page || len % page)
      throw ArgError(env, fn, "options.ranges[" + std::to_string(i) + "]", "page-aligned, non-empty ranges");
    ranges.push_back(iovec{reinterpret_cast<void*>(static_cast<uintptr_t>(addr)), static_cast<size_t>(len)});
  }
  auto* b = new PageOutBaton();
  b->pid = static_cast<int>(pid);
  b->ranges = std::move(ranges);
  return Queue(env, b);
}

}  // namespace

void InitPageOut(Napi::Env env, Napi::Object exports) {
  exports.Set("pageOut", Napi::Function::New(env, PageOut, "pageOut"));
}

}  // namespace coldstart
