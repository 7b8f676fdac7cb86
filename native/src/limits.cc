// Transfer limits (issues 4, 15): pinned host ↔ device bandwidth with large copies, timed with events — the
// PCIe ceiling the loader is held to — and the device's free memory. Also the cost of pinning: how long
// cuMemHostRegister takes per GiB, for plain memory and for a read-only mapping of a file (the "mapped" copy path).
//
// Exports: transferLimits({device, bytes, iterations}), deviceMemInfo(device).
#include <string.h>

#include <memory>
#include <string>

#include "checked.h"
#include "common.h"
#include "cuda_api.h"
#include "handles.h"

namespace coldstart {
namespace {

constexpr int kCudaErrorOutOfMemory = 2;

struct LimitsBaton : Baton {
  int device = 0;
  uint64_t bytes = 256ull << 20;
  int iterations = 8;
  double h2d = 0, d2h = 0, registerSeconds = -1;
  std::string name;

  void Run() override {
    const CudaApi& cu = Cuda();
    if (!cu.loaded) return Fail(Err::NoGpu, cu.loadError);
    CUresult r = cu.cuInit(0);
    if (r != 0) return Fail(Err::NoGpu, "cuInit failed: " + CuErrorText(r));
    PrimaryCtx ctx;  // declared first: released last
    if ((r = ctx.Retain(device)) != 0) return Fail(Err::NoGpu, "GPU " + std::to_string(device) + ": " + CuErrorText(r));
    char nm[256] = {0};
    cu.cuDeviceGetName(nm, sizeof(nm) - 1, ctx.device());
    name = nm;
    ctx.Current();
    PinnedMem host;
    DeviceMem d;
    Stream s;
    Event e0, e1;
    do {
      if ((r = cu.cuMemHostAlloc(host.out(), bytes, CU_MEMHOSTALLOC_PORTABLE)) != 0) {
        host.release();
        break;
      }
      memset(host.get(), 0x5a, bytes);
      if ((r = cu.cuMemAlloc(d.out(), bytes)) != 0) {
        d.release();
        break;
      }
      if ((r = cu.cuStreamCreate(s.out(), CU_STREAM_NON_BLOCKING)) != 0) {
        s.release();
        break;
      }
      if ((r = cu.cuEventCreate(e0.out(), CU_EVENT_DEFAULT)) != 0) {
        e0.release();
        break;
      }
      if ((r = cu.cuEventCreate(e1.out(), CU_EVENT_DEFAULT)) != 0) {
        e1.release();
        break;
      }
      for (int dir = 0; dir < 2 && r == 0; dir++) {
        auto copy = [&]() {
          return dir == 0 ? cu.cuMemcpyHtoDAsync(d.get(), host.get(), bytes, s.get()) : cu.cuMemcpyDtoHAsync(host.get(), d.get(), bytes, s.get());
        };
        if ((r = copy()) != 0) break;  // warm-up
        if ((r = cu.cuStreamSynchronize(s.get())) != 0) break;
        cu.cuEventRecord(e0.get(), s.get());
        for (int i = 0; i < iterations && r == 0; i++) r = copy();
        cu.cuEventRecord(e1.get(), s.get());
        if (r == 0) r = cu.cuEventSynchronize(e1.get());
        float ms = 0;
        if (r == 0) r = cu.cuEventElapsedTime(&ms, e0.get(), e1.get());
        double bps = ms > 0 ? static_cast<double>(bytes) * iterations / (ms * 1e-3) : 0;
        (dir == 0 ? h2d : d2h) = bps;
      }
      if (r != 0) break;
      // Registration cost of ordinary (already faulted-in) memory of the same size.
      HostMem plain;
      void* p = nullptr;
      if (posix_memalign(&p, 4096, bytes) == 0) {
        plain.reset(static_cast<char*>(p));
        memset(p, 1, bytes);
        double t = MonotonicSeconds();
        if (cu.cuMemHostRegister(p, bytes, CU_MEMHOSTREGISTER_PORTABLE) == 0) {
          registerSeconds = MonotonicSeconds() - t;
          cu.cuMemHostUnregister(p);
        }
      }
    } while (false);
    if (r != 0) Fail(r == kCudaErrorOutOfMemory ? Err::GpuOom : Err::Env, "transfer limits on GPU " + std::to_string(device) + ": " + CuErrorText(r));
  }
  Napi::Value ToJS(Napi::Env env) override {
    Napi::Object o = Napi::Object::New(env);
    o.Set("device", device);
    o.Set("name", name);
    o.Set("bytes", static_cast<double>(bytes) * iterations);
    o.Set("h2dBytesPerSecond", h2d);
    o.Set("d2hBytesPerSecond", d2h);
    if (registerSeconds >= 0) o.Set("registerBytesPerSecond", registerSeconds > 0 ? static_cast<double>(bytes) / registerSeconds : 0.0);
    return o;
  }
};

Napi::Value TransferLimits(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* fn = "transferLimits";
  std::unique_ptr<LimitsBaton> b(new LimitsBaton());
  if (info.Length() > 0 && !info[0].IsUndefined()) {
    if (!info[0].IsObject()) throw ArgError(env, fn, "options", "an object");
    Napi::Object o = info[0].As<Napi::Object>();
    b->device = static_cast<int>(OptInt(env, fn, o, "device", 0, 0, 1023));
    b->bytes = OptU64(env, fn, o, "bytes", 256ull << 20);
    b->iterations = static_cast<int>(OptInt(env, fn, o, "iterations", 8, 1, 1000));
  }
  if (b->bytes < 1 || b->bytes > (16ull << 30)) throw ArgError(env, fn, "options.bytes", "1 byte to 16 GiB");
  return Queue(env, b.release());
}

struct MemInfoBaton : Baton {
  int device = 0;
  size_t fr = 0, tot = 0;
  void Run() override {
    const CudaApi& cu = Cuda();
    if (!cu.loaded) return Fail(Err::NoGpu, cu.loadError);
    CUresult r = cu.cuInit(0);
    if (r != 0) return Fail(Err::NoGpu, CuErrorText(r));
    PrimaryCtx ctx;
    if ((r = ctx.Retain(device)) != 0) return Fail(Err::NoGpu, CuErrorText(r));
    ctx.Current();
    r = cu.cuMemGetInfo(&fr, &tot);
    if (r != 0) Fail(Err::Env, CuErrorText(r));
  }
  Napi::Value ToJS(Napi::Env env) override {
    Napi::Object o = Napi::Object::New(env);
    o.Set("free", static_cast<double>(fr));
    o.Set("total", static_cast<double>(tot));
    return o;
  }
};

Napi::Value DeviceMemInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::unique_ptr<MemInfoBaton> b(new MemInfoBaton());
  if (info.Length() > 0 && !info[0].IsUndefined()) b->device = static_cast<int>(ArgInt(env, "deviceMemInfo", "device", info[0], 0, 1023));
  return Queue(env, b.release());
}

}  // namespace

void InitLimits(Napi::Env env, Napi::Object exports) {
  exports.Set("transferLimits", Napi::Function::New(env, TransferLimits, "transferLimits"));
  exports.Set("deviceMemInfo", Napi::Function::New(env, DeviceMemInfo, "deviceMemInfo"));
}

}  // namespace coldstart
