// Byte moving for convert (issue 3). One entry point, fileioRun(job), runs a list of tensor copy operations off
// the main thread (a Baton):
//   - contiguous, same dtype, native byte order: copy_file_range (in-kernel, no user-space buffer), falling back
//     to large pread/pwrite when the kernel or filesystem cannot;
//   - anything else (strided/transposed/expanded views, offsets, big-endian data, dtype conversion): gathered in
//     8 MiB output chunks — long runs by pread straight from the file, transposed layouts column by column,
//     other strided elements through a 128 MiB set-associative cache of 4 KiB source pages — byteswapped and
//     converted, then pwritten; resident memory stays bounded by the buffers whatever the tensor size or layout;
//   - verify mode materialises each tensor the same way and compares it with the bytes in the output file.
// Every bound (storage within the file, view within the storage, output within its range) is re-checked here.
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common.h"
#include "handles.h"

namespace coldstart {
namespace {

enum class DT { BOOL, U8, I8, F8_E4M3, F8_E5M2, I16, U16, F16, BF16, I32, U32, F32, I64, U64, F64, BAD };

DT ParseDT(const std::string& s) {
  static const char* names[] = {"BOOL", "U8", "I8", "F8_E4M3", "F8_E5M2", "I16", "U16", "F16", "BF16", "I32", "U32", "F32", "I64", "U64", "F64"};
  for (int i = 0; i < 15; i++)
    if (s == names[i]) return static_cast<DT>(i);
  return DT::BAD;
}
size_t SizeOf(DT d) {
  switch (d) {
    case DT::BOOL: case DT::U8: case DT::I8: case DT::F8_E4M3: case DT::F8_E5M2: return 1;
    case DT::I16: case DT::U16: case DT::F16: case DT::BF16: return 2;
    case DT::I32: case DT::U32: case DT::F32: return 4;
    case DT::I64: case DT::U64: case DT::F64: return 8;
    default: return 0;
  }
}

inline uint32_t F32Bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
inline float F32From(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

// IEEE half <-> single, the same algorithms torch (c10/util/Half.h) uses, so results match bit for bit.
inline float HalfToFloat(uint16_t h) {
  const uint32_t w = static_cast<uint32_t>(h) << 16;
  const uint32_t sign = w & 0x80000000u;
  const uint32_t two_w = w + w;
  const uint32_t exp_offset = 0xE0u << 23;
  const float exp_scale = 0x1.0p-112f;
  const float normalized = F32From((two_w >> 4) + exp_offset) * exp_scale;
  const uint32_t magic_mask = 126u << 23;
  const float denormalized = F32From((two_w >> 17) | magic_mask) - 0.5f;
  const uint32_t cutoff = 1u << 27;
  return F32From(sign | (two_w < cutoff ? F32Bits(denormalized) : F32Bits(normalized)));
}
inline uint16_t FloatToHalf(float f) {
  const float scale_to_inf = 0x1.0p+112f;
  const float scale_to_zero = 0x1.0p-110f;
  float base = (std::fabs(f) * scale_to_inf) * scale_to_zero;
  const uint32_t w = F32Bits(f);
  const uint32_t shl1_w = w + w;
  const uint32_t sign = w & 0x80000000u;
  uint32_t bias = shl1_w & 0xFF000000u;
  if (bias < 0x71000000u) bias = 0x71000000u;
  base = F32From((bias >> 1) + 0x07800000u) + base;
  const uint32_t bits = F32Bits(base);
  const uint32_t exp_bits = (bits >> 13) & 0x00007C00u;
  const uint32_t mantissa_bits = bits & 0x00000FFFu;
  const uint32_t nonsign = exp_bits + mantissa_bits;
  return static_cast<uint16_t>((sign >> 16) | (shl1_w > 0xFF000000u ? 0x7E00u : nonsign));
}
// bfloat16: round to nearest even. NaN -> 0xFFFF, as torch's vectorised CPU conversion (at::vec
// cvtfp32_bf16, the path tensor.to(torch.bfloat16) takes) writes it; the scalar c10 path would give 0x7FC0.
inline uint16_t FloatToBF16(float f) {
  if (std::isnan(f)) return 0xFFFF;
  const uint32_t u = F32Bits(f);
  const uint32_t bias = ((u >> 16) & 1u) + 0x7FFFu;
  return static_cast<uint16_t>((u + bias) >> 16);
}
inline float BF16ToFloat(uint16_t b) { return F32From(static_cast<uint32_t>(b) << 16); }

inline float LoadFloat(DT d, const uint8_t* p) {
  switch (d) {
    case DT::F32: { float f; memcpy(&f, p, 4); return f; }
    case DT::F64: { double x; memcpy(&x, p, 8); return static_cast<float>(x); }
    case DT::F16: { uint16_t h; memcpy(&h, p, 2); return HalfToFloat(h); }
    case DT::BF16: { uint16_t h; memcpy(&h, p, 2); return BF16ToFloat(h); }
    default: return 0;
  }
}
inline void StoreFloat(DT d, uint8_t* p, float f) {
  switch (d) {
    case DT::F32: memcpy(p, &f, 4); break;
    case DT::F16: { uint16_t h = FloatToHalf(f); memcpy(p, &h, 2); break; }
    case DT::BF16: { uint16_t h = FloatToBF16(f); memcpy(p, &h, 2); break; }
    default: break;
  }
}

void Byteswap(uint8_t* p, size_t n, size_t esize) {
  for (size_t i = 0; i < n; i++, p += esize) {
    for (size_t a = 0, b = esize - 1; a < b; a++, b--) std::swap(p[a], p[b]);
  }
}

struct Op {
  int src = 0;
  uint64_t srcOffset = 0, srcBytes = 0, dst = 0;
  DT srcDt = DT::BAD, dstDt = DT::BAD;
  std::vector<int64_t> shape, strides;
  int64_t storageOffset = 0;
  bool byteswap = false;
};

std::string ErrnoName(int e) {
  switch (e) {
    case ENOSPC: return "ENOSPC";
    case EDQUOT: return "EDQUOT";
    case EACCES: return "EACCES";
    case EPERM: return "EPERM";
    case EROFS: return "EROFS";
    case ENOENT: return "ENOENT";
    case EIO: return "EIO";
    case EFBIG: return "EFBIG";
    case EISDIR: return "EISDIR";
    case EMFILE: return "EMFILE";
    default: return "EIO";
  }
}

struct OutFd {
  int fd = -1;
  ~OutFd() { if (fd >= 0) close(fd); }
};

constexpr size_t kOpenSources = 8;  // source descriptors open at once per job, however many source files

struct RunBaton : Baton {
  bool verify = false;
  bool doFsync = false;
  bool writeback = false;
  uint64_t preallocate = 0;
  size_t chunk = 8u << 20;
  std::string output;
  std::vector<std::string> sources;
  std::vector<Op> ops;
  // results
  double bytes = 0, seconds = 0;
  bool usedCopyFileRange = false;
  std::vector<int> mismatches;

  std::unique_ptr<FdPool> srcFds;  // sources are opened when an operation reads them, a bounded number at once
  std::vector<uint64_t> srcSizes;
  OutFd out;
  std::unique_ptr<uint8_t[]> gbuf, obuf, vbuf;
  uint64_t sinceSync = 0, syncFrom = 0;
  bool cfrBroken = false;

  bool SysFail(const std::string& what, const std::string& path) {
    int e = errno;
    Fail(ErrnoName(e), what + " " + path + ": " + strerror(e));
    return false;
  }

  void Run() override {
    double t0 = MonotonicSeconds();
    // Every source is checked one descriptor at a time (a checkpoint of 10,000 shards must not hold 10,000).
    srcSizes.resize(sources.size());
    for (size_t i = 0; i < sources.size(); i++) {
      Fd fd(OpenToCheck(sources[i].c_str()));
      if (!fd) { SysFail("open", sources[i]); return; }
      struct stat st;
      if (fstat(fd.get(), &st) != 0) { SysFail("stat", sources[i]); return; }
      if (!IsRegularFile(st)) { Fail("CORRUPT", sources[i] + ": not a regular file (changed since it was read?)"); return; }
      srcSizes[i] = static_cast<uint64_t>(st.st_size);
    }
    srcFds.reset(new FdPool(sources, O_RDONLY, kOpenSources, AdviseSequential));
    out.fd = open(output.c_str(), (verify ? O_RDONLY : O_WRONLY) | O_CLOEXEC);
    if (out.fd < 0) { SysFail("open", output); return; }
    if (!verify && preallocate > 0) {
      if (fallocate(out.fd, 0, 0, static_cast<off_t>(preallocate)) != 0 && errno != EOPNOTSUPP && errno != ENOSYS) {
        SysFail("allocate", output);
        return;
      }
    }
    // writeback hints start where this job's writes start (jobs of one file arrive in order)
    syncFrom = UINT64_MAX;
    for (const Op& op : ops) syncFrom = op.dst < syncFrom ? op.dst : syncFrom;
    if (syncFrom == UINT64_MAX) syncFrom = 0;
    gbuf.reset(new uint8_t[chunk]);
    obuf.reset(new uint8_t[chunk * 2]);
    if (verify) vbuf.reset(new uint8_t[chunk * 2]);
    for (size_t i = 0; i < ops.size(); i++) {
      if (!RunOp(static_cast<int>(i), ops[i])) return;
    }
    if (!verify && doFsync && fsync(out.fd) != 0) { SysFail("fsync", output); return; }
    seconds = MonotonicSeconds() - t0;
  }

  // Every product and sum is overflow-checked: the values come from JS (already validated as non-negative safe
  // integers by ArgU64/ArgI64 below), but a hostile checkpoint chooses them.
  bool Check(const Op& op, uint64_t& spanBytes, uint64_t& numel) {
    size_t se = SizeOf(op.srcDt), de = SizeOf(op.dstDt);
    if (op.src < 0 || static_cast<size_t>(op.src) >= sources.size() || se == 0 || de == 0 || op.shape.size() != op.strides.size() || op.storageOffset < 0) {
      Fail("EINVAL", "fileioRun: malformed operation");
      return false;
    }
    uint64_t storageEnd = 0;
    if (__builtin_add_overflow(op.srcOffset, op.srcBytes, &storageEnd) || storageEnd > srcSizes[op.src]) {
      Fail("CORRUPT", sources[op.src] + ": storage runs past the end of the file (truncated or changed during conversion?)");
      return false;
    }
    numel = 1;
    int64_t last = op.storageOffset;
    bool overflow = false;
    for (size_t i = 0; i < op.shape.size(); i++) {
      if (op.shape[i] < 0 || op.strides[i] < 0) { Fail("EINVAL", "fileioRun: negative size or stride"); return false; }
      overflow |= __builtin_mul_overflow(numel, static_cast<uint64_t>(op.shape[i]), &numel);
      if (op.shape[i] > 0) {
        int64_t step = 0;
        overflow |= __builtin_mul_overflow(op.shape[i] - 1, op.strides[i], &step);
        overflow |= __builtin_add_overflow(last, step, &last);
      }
    }
    uint64_t reach = 0;
    if (!overflow && numel > 0) {
      overflow |= __builtin_add_overflow(static_cast<uint64_t>(last), uint64_t{1}, &reach);
      overflow |= __builtin_mul_overflow(reach, static_cast<uint64_t>(se), &reach);
    }
    if (overflow || (numel > 0 && reach > op.srcBytes)) {
      Fail("CORRUPT", sources[op.src] + ": tensor view reaches past its storage");
      return false;
    }
    uint64_t dstEnd = 0;
    if (__builtin_mul_overflow(numel, static_cast<uint64_t>(de), &spanBytes) || __builtin_add_overflow(op.dst, spanBytes, &dstEnd) ||
        (preallocate > 0 && dstEnd > preallocate)) {
      Fail("EINVAL", "fileioRun: an operation writes past the end of its output");
      return false;
    }
    return true;
  }

  // pwrite everything or fail; nudges writeback along so dirty pages do not pile up.
  bool WriteAll(const uint8_t* p, size_t n, uint64_t off) {
    while (n > 0) {
      ssize_t w = pwrite(out.fd, p, n, static_cast<off_t>(off));
      if (w < 0) {
        if (errno == EINTR) continue;
        return SysFail("write", output);
      }
      if (w == 0) { errno = EIO; return SysFail("write", output); }
      p += w; n -= static_cast<size_t>(w); off += static_cast<uint64_t>(w);
      Written(static_cast<uint64_t>(w), off);
    }
    return true;
  }
  void Written(uint64_t n, uint64_t endOff) {
    bytes += static_cast<double>(n);
    sinceSync += n;
    if (writeback && sinceSync >= (64u << 20)) {
      sync_file_range(out.fd, static_cast<off_t>(syncFrom), static_cast<off_t>(endOff - syncFrom), SYNC_FILE_RANGE_WRITE);
      syncFrom = endOff;
      sinceSync = 0;
    }
  }
  bool ReadAll(int fd, uint8_t* p, size_t n, uint64_t off, const std::string& path) {
    while (n > 0) {
      ssize_t r = pread(fd, p, n, static_cast<off_t>(off));
      if (r < 0) {
        if (errno == EINTR) continue;
        return SysFail("read", path);
      }
      if (r == 0) { Fail("CORRUPT", path + ": unexpected end of file"); return false; }
      p += r; n -= static_cast<size_t>(r); off += static_cast<uint64_t>(r);
    }
    return true;
  }

  bool RunOp(int index, const Op& op) {
    uint64_t outBytes = 0, numel = 0;
    if (!Check(op, outBytes, numel)) return false;
    if (numel == 0) return true;
    bool contiguous = true;
    int64_t expect = 1;
    for (size_t i = op.shape.size(); i-- > 0;) {
      if (op.shape[i] != 1 && op.strides[i] != expect) contiguous = false;
      expect *= op.shape[i];
    }
    size_t se = SizeOf(op.srcDt);
    if (!verify && contiguous && op.srcDt == op.dstDt && !op.byteswap) {
      return CopyRange(op.src, op.srcOffset + static_cast<uint64_t>(op.storageOffset) * se, op.dst, outBytes);
    }
    return Gather(index, op, numel, contiguous);
  }

  // A pooled descriptor of source src; a failed open fails the job with its errno.
  bool OpenSource(int src, const FdLease& lease) {
    if (lease) return true;
    errno = lease.error();
    return SysFail("open", sources[src]);
  }

  bool CopyRange(int src, uint64_t from, uint64_t to, uint64_t n) {
    FdLease lease(*srcFds, static_cast<size_t>(src));
    if (!OpenSource(src, lease)) return false;
    int sfd = lease.get();
    loff_t in = static_cast<loff_t>(from), o = static_cast<loff_t>(to);
    uint64_t left = n;
    while (left > 0 && !cfrBroken) {
      size_t want = left > (1u << 30) ? (1u << 30) : static_cast<size_t>(left);
      ssize_t r = syscall(SYS_copy_file_range, sfd, &in, out.fd, &o, want, 0u);
      if (r < 0) {
        if (errno == EINTR) continue;
        if (errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP || errno == EBADF || errno == ETXTBSY) {
          cfrBroken = true;
          break;
        }
        return SysFail("copy to", output);
      }
      if (r == 0) { Fail("CORRUPT", sources[src] + ": unexpected end of file"); return false; }
      usedCopyFileRange = true;
      left -= static_cast<uint64_t>(r);
      Written(static_cast<uint64_t>(r), static_cast<uint64_t>(o));
    }
    // Fallback: large pread/pwrite through one buffer.
    uint64_t pos = static_cast<uint64_t>(in), dst = static_cast<uint64_t>(o);
    while (left > 0) {
      size_t n1 = left > chunk ? chunk : static_cast<size_t>(left);
      if (!ReadAll(sfd, gbuf.get(), n1, pos, sources[src])) return false;
      if (!WriteAll(gbuf.get(), n1, dst)) return false;
      pos += n1; dst += n1; left -= n1;
    }
    return true;
  }

  // A small set-associative cache of 4 KiB source pages (relative to the storage start, so an element never
  // straddles two pages). Strided views (transposes, steps, expands) read each page about once per pass while
  // resident memory stays at the cache size, unlike mmap, whose fault-around maps whole 64 KiB windows.
  static constexpr uint64_t kPage = 4096;
  static constexpr size_t kWays = 8, kSets = 4096;  // 32768 pages = 128 MiB at most, allocated on first use
  std::unique_ptr<uint8_t[]> cache;
  std::vector<uint64_t> tags;  // storage-relative page index + 1 (0 = empty)
  std::vector<uint8_t> victim;
  int cacheSrc = -1;
  uint64_t cacheBase = 0;

  void ResetCache(int src, uint64_t base) {
    if (!cache) {
      cache.reset(new uint8_t[kWays * kSets * kPage]);
      tags.assign(kWays * kSets, 0);
      victim.assign(kSets, 0);
    } else {
      std::fill(tags.begin(), tags.end(), 0);
    }
    cacheSrc = src;
    cacheBase = base;
  }
  // Returns a pointer to the page holding storage byte `off`, reading it on a miss.
  const uint8_t* Page(uint64_t pageIdx, uint64_t storageBytes) {
    const size_t set = static_cast<size_t>((pageIdx * 0x9E3779B97F4A7C15ull) >> 52) & (kSets - 1);
    uint64_t* t = &tags[set * kWays];
    for (size_t w = 0; w < kWays; w++)
      if (t[w] == pageIdx + 1) return cache.get() + (set * kWays + w) * kPage;
    const size_t w = victim[set]++ % kWays;
    uint8_t* dst = cache.get() + (set * kWays + w) * kPage;
    const uint64_t start = pageIdx * kPage;
    const size_t n = static_cast<size_t>(storageBytes - start < kPage ? storageBytes - start : kPage);
    FdLease lease(*srcFds, static_cast<size_t>(cacheSrc));
    if (!OpenSource(cacheSrc, lease) || !ReadAll(lease.get(), dst, n, cacheBase + start, sources[cacheSrc])) return nullptr;
    t[w] = pageIdx + 1;
    return dst;
  }
  // Copies `bytes` storage bytes starting at `off` into `d` (long runs straight from the file).
  bool CopyRun(uint8_t* d, uint64_t off, size_t bytes, uint64_t storageBytes) {
    if (bytes >= (64u << 10)) {
      FdLease lease(*srcFds, static_cast<size_t>(cacheSrc));
      return OpenSource(cacheSrc, lease) && ReadAll(lease.get(), d, bytes, cacheBase + off, sources[cacheSrc]);
    }
    while (bytes > 0) {
      const uint64_t pg = off / kPage, within = off % kPage;
      const uint8_t* p = Page(pg, storageBytes);
      if (!p) return false;
      const size_t n = static_cast<size_t>(kPage - within < bytes ? kPage - within : bytes);
      memcpy(d, p + within, n);
      d += n; off += n; bytes -= n;
    }
    return true;
  }

  bool Gather(int index, const Op& op, uint64_t numel, bool contiguous) {
    const size_t se = SizeOf(op.srcDt), de = SizeOf(op.dstDt);
    ResetCache(op.src, op.srcOffset);
    std::vector<int64_t> shape = op.shape, strides = op.strides;
    if (shape.empty()) { shape.push_back(1); strides.push_back(1); }
    if (contiguous) {  // one run: read it in chunks straight from the file
      shape.assign(1, static_cast<int64_t>(numel));
      strides.assign(1, 1);
    }
    const size_t nd = shape.size();
    std::vector<int64_t> idx(nd, 0);
    int64_t cur = op.storageOffset;  // element index into the storage
    const int64_t innerStride = strides[nd - 1];
    const int64_t innerLen = shape[nd - 1];
    size_t perChunk = chunk / (se > de ? se : de);
    // Transposed layouts (the next-to-last dimension is the contiguous one): fill the chunk column by column so
    // each source read is a run of consecutive rows instead of one element per page lookup.
    const bool tiled = nd >= 2 && strides[nd - 2] == 1 && innerStride > 1 && static_cast<size_t>(innerLen) <= perChunk / 2;
    if (tiled) perChunk = perChunk / static_cast<size_t>(innerLen) * static_cast<size_t>(innerLen);
    std::vector<int64_t> rowStart;
    std::vector<uint8_t> tmp;
    uint64_t done = 0;
    uint64_t dst = op.dst;
    const bool convert = op.srcDt != op.dstDt;
    while (done < numel) {
      size_t n = static_cast<size_t>(numel - done < perChunk ? numel - done : perChunk);
      uint8_t* g = gbuf.get();
      size_t filled = 0;
      if (tiled) {
        // n is a whole number of rows; note where each row starts in the storage, advancing the odometer
        const size_t rows = n / static_cast<size_t>(innerLen);
        rowStart.resize(rows);
        for (size_t r = 0; r < rows; r++) {
          rowStart[r] = cur;
          cur -= idx[nd - 1] * innerStride;  // idx[nd-1] is 0 at row starts
          idx[nd - 1] = 0;
          for (size_t dim = nd - 1; dim > 0; dim--) {
            idx[dim - 1]++;
            cur += strides[dim - 1];
            if (idx[dim - 1] < shape[dim - 1] || dim - 1 == 0) break;
            cur -= shape[dim - 1] * strides[dim - 1];
            idx[dim - 1] = 0;
          }
        }
        for (size_t r0 = 0; r0 < rows;) {
          size_t k = 1;  // rows r0..r0+k-1 are consecutive in the storage
          while (r0 + k < rows && rowStart[r0 + k] == rowStart[r0] + static_cast<int64_t>(k)) k++;
          tmp.resize(k * se);
          for (int64_t j = 0; j < innerLen; j++) {
            if (!CopyRun(tmp.data(), static_cast<uint64_t>(rowStart[r0] + j * innerStride) * se, k * se, op.srcBytes)) return false;
            uint8_t* d = g + (r0 * static_cast<size_t>(innerLen) + static_cast<size_t>(j)) * se;
            const size_t rowBytes = static_cast<size_t>(innerLen) * se;
            for (size_t t = 0; t < k; t++, d += rowBytes) memcpy(d, tmp.data() + t * se, se);
          }
          r0 += k;
        }
        filled = n;
      }
      while (filled < n) {
        size_t run = static_cast<size_t>(innerLen - idx[nd - 1]);
        if (run > n - filled) run = n - filled;
        if (innerStride == 1) {
          if (!CopyRun(g + filled * se, static_cast<uint64_t>(cur) * se, run * se, op.srcBytes)) return false;
        } else if (innerStride == 0) {
          uint8_t e[8];
          if (!CopyRun(e, static_cast<uint64_t>(cur) * se, se, op.srcBytes)) return false;
          uint8_t* d = g + filled * se;
          for (size_t k = 0; k < run; k++, d += se) memcpy(d, e, se);
        } else {
          uint8_t* d = g + filled * se;
          uint64_t off = static_cast<uint64_t>(cur) * se;
          const uint64_t step = static_cast<uint64_t>(innerStride) * se;
          uint64_t lastPg = UINT64_MAX;
          const uint8_t* p = nullptr;
          for (size_t k = 0; k < run; k++, d += se, off += step) {
            const uint64_t pg = off / kPage;
            if (pg != lastPg) {
              p = Page(pg, op.srcBytes);
              if (!p) return false;
              lastPg = pg;
            }
            memcpy(d, p + off % kPage, se);
          }
        }
        filled += run;
        // advance the odometer by `run` along the innermost dimension
        idx[nd - 1] += static_cast<int64_t>(run);
        cur += static_cast<int64_t>(run) * innerStride;
        for (size_t dim = nd - 1; dim > 0 && idx[dim] == shape[dim]; dim--) {
          cur -= shape[dim] * strides[dim];
          idx[dim] = 0;
          idx[dim - 1]++;
          cur += strides[dim - 1];
        }
      }
      if (op.byteswap && se > 1) Byteswap(g, n, se);
      const uint8_t* outp = g;
      if (convert) {
        uint8_t* o = obuf.get();
        for (size_t k = 0; k < n; k++) StoreFloat(op.dstDt, o + k * de, LoadFloat(op.srcDt, g + k * se));
        outp = o;
      }
      const size_t nbytes = n * de;
      if (verify) {
        if (!ReadAll(out.fd, vbuf.get(), nbytes, dst, output)) return false;
        if (memcmp(vbuf.get(), outp, nbytes) != 0) {
          mismatches.push_back(index);
          return true;
        }
        bytes += static_cast<double>(nbytes);
      } else if (!WriteAll(outp, nbytes, dst)) {
        return false;
      }
      dst += nbytes;
      done += n;
    }
    return true;
  }

  Napi::Value ToJS(Napi::Env env) override {
    Napi::Object o = Napi::Object::New(env);
    o.Set("bytes", Napi::Number::New(env, bytes));
    o.Set("seconds", Napi::Number::New(env, seconds));
    o.Set("copyFileRange", Napi::Boolean::New(env, usedCopyFileRange));
    Napi::Array mm = Napi::Array::New(env, mismatches.size());
    for (size_t i = 0; i < mismatches.size(); i++) mm.Set(static_cast<uint32_t>(i), Napi::Number::New(env, mismatches[i]));
    o.Set("mismatches", mm);
    return o;
  }
};

// Doubles from JS become integers only when they are finite, integral and within ±2^53 (and ≥ 0 for the
// unsigned ones): NaN, Infinity, 1.5 or -1 would otherwise wrap or be undefined behaviour in the cast.
constexpr double kMaxSafe = 9007199254740991.0;
bool SafeInt(double d) { return std::isfinite(d) && std::floor(d) == d && d >= -kMaxSafe && d <= kMaxSafe; }

int64_t IntOf(Napi::Env env, Napi::Value v, const char* what) {
  double d = v.As<Napi::Number>().DoubleValue();
  if (!SafeInt(d)) throw ArgError(env, "fileioRun", what, "safe integers");
  return static_cast<int64_t>(d);
}
uint64_t ArgU64(Napi::Env env, const Napi::Object& o, const char* key, double dflt) {
  double d = OptNumber(o, key, dflt);
  if (!SafeInt(d) || d < 0) throw ArgError(env, "fileioRun", key, "a non-negative safe integer");
  return static_cast<uint64_t>(d);
}
int64_t ArgI64(Napi::Env env, const Napi::Object& o, const char* key, double dflt) {
  double d = OptNumber(o, key, dflt);
  if (!SafeInt(d)) throw ArgError(env, "fileioRun", key, "a safe integer");
  return static_cast<int64_t>(d);
}

std::vector<int64_t> IntArray(Napi::Env env, Napi::Value v, const char* what) {
  if (!v.IsArray()) throw ArgError(env, "fileioRun", what, "an array of numbers");
  Napi::Array a = v.As<Napi::Array>();
  std::vector<int64_t> out(a.Length());
  for (uint32_t i = 0; i < a.Length(); i++) {
    Napi::Value x = a.Get(i);
    if (!x.IsNumber()) throw ArgError(env, "fileioRun", what, "an array of numbers");
    out[i] = IntOf(env, x, what);
  }
  return out;
}

Napi::Value FileioRun(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) throw ArgError(env, "fileioRun", "job", "an object");
  Napi::Object job = info[0].As<Napi::Object>();
  auto* b = new RunBaton();
  std::unique_ptr<RunBaton> guard(b);
  b->verify = job.Has("mode") && job.Get("mode").IsString() && job.Get("mode").As<Napi::String>().Utf8Value() == "verify";
  b->doFsync = OptBool(job, "fsync", false);
  b->writeback = OptBool(job, "writeback", false);
  b->preallocate = ArgU64(env, job, "preallocate", 0);
  double ch = OptNumber(job, "chunkBytes", 8 << 20);
  if (SafeInt(ch) && ch >= 4096 && ch <= (256 << 20)) b->chunk = static_cast<size_t>(ch) / 8 * 8;
  if (!job.Get("output").IsString()) throw ArgError(env, "fileioRun", "output", "a path");
  b->output = job.Get("output").As<Napi::String>().Utf8Value();
  if (!job.Get("sources").IsArray()) throw ArgError(env, "fileioRun", "sources", "an array of paths");
  Napi::Array srcs = job.Get("sources").As<Napi::Array>();
  for (uint32_t i = 0; i < srcs.Length(); i++) {
    if (!srcs.Get(i).IsString()) throw ArgError(env, "fileioRun", "sources", "an array of paths");
    b->sources.push_back(srcs.Get(i).As<Napi::String>().Utf8Value());
  }
  if (!job.Get("ops").IsArray()) throw ArgError(env, "fileioRun", "ops", "an array");
  Napi::Array ops = job.Get("ops").As<Napi::Array>();
  for (uint32_t i = 0; i < ops.Length(); i++) {
    if (!ops.Get(i).IsObject()) throw ArgError(env, "fileioRun", "ops[i]", "an object");
    Napi::Object o = ops.Get(i).As<Napi::Object>();
    Op op;
    int64_t src = ArgI64(env, o, "src", -1);
    if (src < 0 || src > INT32_MAX) throw ArgError(env, "fileioRun", "src", "a source index");
    op.src = static_cast<int>(src);
    op.srcOffset = ArgU64(env, o, "srcOffset", 0);
    op.srcBytes = ArgU64(env, o, "srcBytes", 0);
    op.dst = ArgU64(env, o, "dst", 0);
    op.storageOffset = ArgI64(env, o, "storageOffset", 0);
    if (op.storageOffset < 0) throw ArgError(env, "fileioRun", "storageOffset", "a non-negative safe integer");
    op.byteswap = OptBool(o, "byteswap", false);
    op.srcDt = ParseDT(o.Get("srcDtype").IsString() ? o.Get("srcDtype").As<Napi::String>().Utf8Value() : "");
    op.dstDt = ParseDT(o.Get("dstDtype").IsString() ? o.Get("dstDtype").As<Napi::String>().Utf8Value() : "");
    if (op.srcDt == DT::BAD || op.dstDt == DT::BAD) throw ArgError(env, "fileioRun", "srcDtype/dstDtype", "a safetensors dtype");
    bool fl = [](DT d) { return d == DT::F16 || d == DT::BF16 || d == DT::F32 || d == DT::F64; }(op.srcDt);
    bool fl2 = op.dstDt == DT::F16 || op.dstDt == DT::BF16 || op.dstDt == DT::F32;
    if (op.srcDt != op.dstDt && !(fl && fl2)) throw ArgError(env, "fileioRun", "dtype conversion", "F16/BF16/F32/F64 -> F16/BF16/F32");
    op.shape = IntArray(env, o.Get("shape"), "shape");
    op.strides = IntArray(env, o.Get("strides"), "strides");
    b->ops.push_back(std::move(op));
  }
  guard.release();
  return Queue(env, b);
}

}  // namespace

void InitFileIO(Napi::Env env, Napi::Object exports) { exports.Set("fileioRun", Napi::Function::New(env, FileioRun)); }

}  // namespace coldstart
