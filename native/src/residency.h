// What part of a file's byte range is in the page cache, without reading it (no I/O is started): one answer for the
// addon's prefetch and page-cache queries (pagecache.cc) and the load engine's reads (load_engine.cc).
#pragma once
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <vector>

#include "checked.h"
#include "handles.h"

namespace coldstart {

inline uint64_t PageBytes() { return static_cast<uint64_t>(sysconf(_SC_PAGESIZE)); }

// mincore's page vector (one byte per page, bit 0: resident) of [off, off + len) of fd, `off` rounded down to a page,
// over a temporary read-only mapping; false (errno set) when it cannot tell.
inline bool PageVector(int fd, uint64_t off, uint64_t len, std::vector<unsigned char>* vec) {
  vec->clear();
  if (len == 0) return true;
  const uint64_t ps = PageBytes();
  const uint64_t start = off - off % ps;
  uint64_t end = 0, span = 0;
  if (!AddU64(off, len, &end) || !RoundUpU64(end - start, ps, &span) || !FitsOffT(start) || !FitsOffT(span)) return errno = EFBIG, false;
  Mapping m;
  if (!m.Map(fd, static_cast<size_t>(span), static_cast<off_t>(start))) return false;
  vec->resize(span / ps);
  return mincore(m.data(), m.size(), vec->data()) == 0;
}

// Pages of [off, off + len) of fd in the page cache, and how many pages the range covers: cachestat(2) where the
// kernel has it (Linux 6.5+, no mapping needed; a page under readahead counts, its I/O already under way), else
// mincore. False (errno set) when neither can tell.
inline bool ResidentPages(int fd, uint64_t off, uint64_t len, uint64_t* resident, uint64_t* pages) {
  *resident = *pages = 0;
  if (len == 0) return true;
  const uint64_t ps = PageBytes();
  const uint64_t first = off / ps;
  uint64_t end = 0;
  if (!AddU64(off, len, &end)) return errno = EFBIG, false;
  *pages = (end - 1) / ps - first + 1;
#if defined(__linux__) && (defined(__x86_64__) || defined(__aarch64__))
  static std::atomic<bool> noCachestat{false};
  if (!noCachestat.load(std::memory_order_relaxed)) {
    struct {
      uint64_t off, len;
    } range{first * ps, *pages * ps};
    struct {
      uint64_t cache, dirty, writeback, evicted, recentlyEvicted;
    } st{};
    constexpr long kCachestat = 451;  // the same number on every architecture (the unified syscall table)
    if (syscall(kCachestat, fd, &range, &st, 0) == 0) {
      *resident = std::min(st.cache, *pages);
      return true;
    }
    if (errno != ENOSYS && errno != EPERM && errno != EOPNOTSUPP) return false;
    noCachestat = true;  // an older kernel, or a seccomp filter that refuses it: mincore from now on
  }
#endif
  std::vector<unsigned char> vec;
  if (!PageVector(fd, off, len, &vec)) return false;
  for (unsigned char c : vec) *resident += c & 1;
  return true;
}

}  // namespace coldstart
