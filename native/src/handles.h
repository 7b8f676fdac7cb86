// One RAII style for everything the loader acquires: file descriptors, mappings, host memory, pinned or
// registered host memory, device memory, streams, events and primary contexts. Each is a move-only owner
// whose destructor releases exactly once; C APIs that return through a pointer write into out().
//
// Order matters only where the driver needs it: a context guard is declared before (so destroyed after) the
// device objects made in it, and a registration is declared after (so destroyed before) the memory it pins.
#pragma once
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "cuda_api.h"

namespace coldstart {

template <typename T, typename Close, T Null = T{}>
class Owned {
 public:
  Owned() = default;
  explicit Owned(T v) : v_(v) {}
  Owned(Owned&& o) noexcept : v_(o.release()) {}
  Owned& operator=(Owned&& o) noexcept {
    if (this != &o) reset(o.release());
    return *this;
  }
  Owned(const Owned&) = delete;
  Owned& operator=(const Owned&) = delete;
  ~Owned() { reset(); }
  T get() const { return v_; }
  // For C APIs that hand the resource back through a pointer: releases what was held first.
  T* out() {
    reset();
    return &v_;
  }
  explicit operator bool() const { return v_ != Null; }
  T release() {
    T v = v_;
    v_ = Null;
    return v;
  }
  void reset(T v = Null) {
    if (v_ != Null) Close{}(v_);
    v_ = v;
  }

 private:
  T v_ = Null;
};

struct CloseFd {
  void operator()(int fd) const { ::close(fd); }
};
struct FreeHost {
  void operator()(char* p) const { ::free(p); }
};
struct FreePinned {
  void operator()(void* p) const { Cuda().cuMemFreeHost(p); }
};
struct Unregister {
  void operator()(void* p) const { Cuda().cuMemHostUnregister(p); }
};
struct FreeDevice {
  void operator()(CUdeviceptr p) const { Cuda().cuMemFree(p); }
};
struct DestroyStream {
  void operator()(CUstream s) const {
    Cuda().cuStreamSynchronize(s);
    Cuda().cuStreamDestroy(s);
  }
};
struct DestroyEvent {
  void operator()(CUevent e) const { Cuda().cuEventDestroy(e); }
};

using Fd = Owned<int, CloseFd, -1>;
using HostMem = Owned<char*, FreeHost>;           // posix_memalign'ed
using PinnedMem = Owned<void*, FreePinned>;       // cuMemHostAlloc'ed
using Registration = Owned<void*, Unregister>;    // cuMemHostRegister'ed (does not own the memory)
using DeviceMem = Owned<CUdeviceptr, FreeDevice>;  // cuMemAlloc'ed
using Stream = Owned<CUstream, DestroyStream>;
using Event = Owned<CUevent, DestroyEvent>;

// Tells the kernel a file will be read in order: a doubled readahead window for buffered reads (FdPool's onOpen).
inline void AdviseSequential(int fd) { posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL); }

// Descriptors for many files with at most `cap` of them open at a time, however many files there are (a model
// of 10,000 shards must not need 10,000 descriptors: EMFILE). A file is opened on its first use and stays open
// while it is in use; when the pool is full, the least recently used file that nobody is using is closed to make
// room. Thread-safe; use it through FdLease. Only when more leases than `cap` are held at once (more worker
// threads than `cap`) does it go over, by those leases: the bound is max(cap, leases held), never the file count.
class FdPool {
 public:
  // `flags` are open(2) flags; O_CLOEXEC and O_NONBLOCK are added (a FIFO swapped in for a checked file is never
  // waited on: its reads fail instead). `onOpen` runs on each descriptor it opens (an fadvise hint).
  FdPool(std::vector<std::string> paths, int flags, size_t cap, void (*onOpen)(int) = nullptr)
      : paths_(std::move(paths)), entries_(paths_.size()), flags_(flags | O_CLOEXEC | O_NONBLOCK), cap_(cap < 1 ? 1 : cap), onOpen_(onOpen) {}
  FdPool(const FdPool&) = delete;
  FdPool& operator=(const FdPool&) = delete;

  // The descriptor of file i (opened when it is not), or -errno; each success is paired with Release(i).
  int Acquire(size_t i) {
    std::lock_guard<std::mutex> g(mu_);
    Entry& e = entries_[i];
    if (!e.fd) {
      if (open_.size() >= cap_) CloseIdle();
      e.fd.reset(::open(paths_[i].c_str(), flags_));
      if (!e.fd) return -errno;
      if (onOpen_) onOpen_(e.fd.get());
      open_.push_back(i);
      if (open_.size() > peak_) peak_ = open_.size();
    }
    e.users++;
    e.lastUse = ++tick_;
    return e.fd.get();
  }
  void Release(size_t i) {
    std::lock_guard<std::mutex> g(mu_);
    if (entries_[i].users > 0) entries_[i].users--;
  }
  const std::string& path(size_t i) const { return paths_[i]; }
  size_t size() const { return paths_.size(); }
  // The most descriptors this pool ever held at once.
  size_t peak() {
    std::lock_guard<std::mutex> g(mu_);
    return peak_;
  }

 private:
  struct Entry {
    Fd fd;
    uint32_t users = 0;
    uint64_t lastUse = 0;
  };
  // Closes the least recently used idle file; none idle: nothing (every open file is in use right now).
  void CloseIdle() {
    size_t best = open_.size();
    for (size_t k = 0; k < open_.size(); k++) {
      const Entry& e = entries_[open_[k]];
      if (e.users == 0 && (best == open_.size() || e.lastUse < entries_[open_[best]].lastUse)) best = k;
    }
    if (best == open_.size()) return;
    entries_[open_[best]].fd.reset();
    open_.erase(open_.begin() + static_cast<std::ptrdiff_t>(best));
  }
  std::vector<std::string> paths_;
  std::vector<Entry> entries_;
  std::vector<size_t> open_;  // indexes of the files open now
  int flags_;
  size_t cap_;
  void (*onOpen_)(int);
  std::mutex mu_;
  uint64_t tick_ = 0;
  size_t peak_ = 0;
};

// Opens `path` read-only to check it: non-blocking, so a FIFO or device cannot hold the caller; -1 and errno on
// failure. Callers fstat it and refuse anything that is not a regular file (IsRegularFile).
inline int OpenToCheck(const char* path) { return ::open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK); }
inline bool IsRegularFile(const struct stat& st) { return S_ISREG(st.st_mode); }

// One use of a pooled descriptor: acquired on construction, released on destruction.
class FdLease {
 public:
  FdLease(FdPool& pool, size_t i) : pool_(pool), i_(i), fd_(pool.Acquire(i)) {}
  FdLease(const FdLease&) = delete;
  FdLease& operator=(const FdLease&) = delete;
  ~FdLease() {
    if (fd_ >= 0) pool_.Release(i_);
  }
  explicit operator bool() const { return fd_ >= 0; }
  int get() const { return fd_ >= 0 ? fd_ : -1; }
  // The errno of a failed open (0 when it succeeded).
  int error() const { return fd_ >= 0 ? 0 : -fd_; }

 private:
  FdPool& pool_;
  size_t i_;
  int fd_;
};

// A read-only mapping of a whole file.
class Mapping {
 public:
  Mapping() = default;
  Mapping(Mapping&& o) noexcept : p_(o.p_), n_(o.n_) { o.p_ = nullptr, o.n_ = 0; }
  Mapping& operator=(Mapping&& o) noexcept {
    if (this != &o) {
      reset();
      std::swap(p_, o.p_);
      std::swap(n_, o.n_);
    }
    return *this;
  }
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping() { reset(); }
  // n bytes of fd from `off` (a multiple of the page size) read-only; false (errno set) when mmap fails; an empty
  // range maps to nothing and succeeds.
  bool Map(int fd, size_t n, off_t off = 0) {
    reset();
    if (n == 0) return true;
    void* p = ::mmap(nullptr, n, PROT_READ, MAP_SHARED, fd, off);
    if (p == MAP_FAILED) return false;
    p_ = static_cast<char*>(p);
    n_ = n;
    return true;
  }
  char* data() const { return p_; }
  size_t size() const { return n_; }
  void reset() {
    if (p_) ::munmap(p_, n_);
    p_ = nullptr;
    n_ = 0;
  }

 private:
  char* p_ = nullptr;
  size_t n_ = 0;
};

// A retained primary context: released when the guard goes out of scope. Current() makes it current on the
// calling thread (each thread that touches the device calls it once).
class PrimaryCtx {
 public:
  PrimaryCtx() = default;
  PrimaryCtx(const PrimaryCtx&) = delete;
  PrimaryCtx& operator=(const PrimaryCtx&) = delete;
  ~PrimaryCtx() {
    if (ctx_) {
      Cuda().cuCtxSetCurrent(nullptr);
      Cuda().cuDevicePrimaryCtxRelease(dev_);
    }
  }
  CUresult Retain(int ordinal) {
    CUresult r = Cuda().cuDeviceGet(&dev_, ordinal);
    if (r == 0) r = Cuda().cuDevicePrimaryCtxRetain(&ctx_, dev_);
    if (r != 0) ctx_ = nullptr;
    return r;
  }
  CUresult Current() const { return Cuda().cuCtxSetCurrent(ctx_); }
  CUcontext get() const { return ctx_; }
  CUdevice device() const { return dev_; }

 private:
  CUdevice dev_ = 0;
  CUcontext ctx_ = nullptr;
};

}  // namespace coldstart
