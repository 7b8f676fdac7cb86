// One RAII style for everything the loader acquires: file descriptors, mappings, host memory, pinned or
// registered host memory, device memory, streams, events and primary contexts. Each is a move-only owner
// whose destructor releases exactly once; C APIs that return through a pointer write into out().
//
// Order matters only where the driver needs it: a context guard is declared before (so destroyed after) the
// device objects made in it, and a registration is declared after (so destroyed before) the memory it pins.
#pragma once
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <utility>

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
  // false (errno set) when mmap fails; an empty file maps to nothing and succeeds.
  bool Map(int fd, size_t n) {
    reset();
    if (n == 0) return true;
    void* p = ::mmap(nullptr, n, PROT_READ, MAP_SHARED, fd, 0);
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
