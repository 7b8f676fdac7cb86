// Transfer limits (issues 4, 15): pinned host ↔ device bandwidth with large copies, timed with events — the
// PCIe ceiling the loader is held to — and the device's free memory. Also the cost of pinning: how long
// cuMemHostRegister takes per GiB, for plain memory and for a read-only mapping of a file (the "mapped" copy path).
//
// Exports: transferLimits({device, bytes, iterations}), deviceMemInfo(device), concurrentH2d({devices, bytes,
// iterations}).
#include <string.h>

#include <algorithm>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "checked.h"
#include "common.h"
#include "cuda_api.h"
#include "handles.h"

namespace coldstart {
namespace {

constexpr int kCudaErrorOutOfMemory = 2;

// One card's side of a link measurement: its context, a pinned host buffer and a device buffer of `bytes` each, a
// stream and two timing events. Declared in release order reversed (the context outlives everything else).
struct LinkProbe {
  PrimaryCtx ctx;
  PinnedMem host;
  DeviceMem d;
  Stream s;
  Event e0, e1;
  uint64_t bytes = 0;
  std::string name;

  // The device's primary context, made current, and its name.
  CUresult Attach(int device) {
    CUresult r = ctx.Retain(device);
    if (r == 0) r = ctx.Current();
    if (r != 0) return r;
    char nm[256] = {0};
    Cuda().cuDeviceGetName(nm, sizeof(nm) - 1, ctx.device());
    name = nm;
    return 0;
  }
  // The buffers (the host one filled), the stream and the events; the first failure.
  CUresult Alloc(uint64_t n) {
    const CudaApi& cu = Cuda();
    bytes = n;
    CUresult r;
    if ((r = cu.cuMemHostAlloc(host.out(), bytes, CU_MEMHOSTALLOC_PORTABLE)) != 0) return host.release(), r;
    memset(host.get(), 0x5a, bytes);
    if ((r = cu.cuMemAlloc(d.out(), bytes)) != 0) return d.release(), r;
    if ((r = cu.cuStreamCreate(s.out(), CU_STREAM_NON_BLOCKING)) != 0) return s.release(), r;
    if ((r = cu.cuEventCreate(e0.out(), CU_EVENT_DEFAULT)) != 0) return e0.release(), r;
    if ((r = cu.cuEventCreate(e1.out(), CU_EVENT_DEFAULT)) != 0) return e1.release(), r;
    return 0;
  }
  // One untimed copy (dir 0: host → device, 1: device → host), synchronised.
  CUresult Warm(int dir) {
    CUresult r = Copy(dir);
    return r == 0 ? Cuda().cuStreamSynchronize(s.get()) : r;
  }
  // `iterations` copies back to back, timed by the events: bytes per second into *bps.
  CUresult Time(int dir, int iterations, double* bps) {
    const CudaApi& cu = Cuda();
    CUresult r = cu.cuEventRecord(e0.get(), s.get());
    for (int i = 0; i < iterations && r == 0; i++) r = Copy(dir);
    if (r == 0) r = cu.cuEventRecord(e1.get(), s.get());
    if (r == 0) r = cu.cuEventSynchronize(e1.get());
    float ms = 0;
    if (r == 0) r = cu.cuEventElapsedTime(&ms, e0.get(), e1.get());
    if (r == 0) *bps = ms > 0 ? static_cast<double>(bytes) * iterations / (ms * 1e-3) : 0;
    return r;
  }

 private:
  CUresult Copy(int dir) {
    const CudaApi& cu = Cuda();
    return dir == 0 ? cu.cuMemcpyHtoDAsync(d.get(), host.get(), bytes, s.get()) : cu.cuMemcpyDtoHAsync(host.get(), d.get(), bytes, s.get());
  }
};

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
    LinkProbe p;
    if ((r = p.Attach(device)) != 0) return Fail(Err::NoGpu, "GPU " + std::to_string(device) + ": " + CuErrorText(r));
    name = p.name;
    r = p.Alloc(bytes);
    for (int dir = 0; dir < 2 && r == 0; dir++) {
      r = p.Warm(dir);
      if (r == 0) r = p.Time(dir, iterations, dir == 0 ? &h2d : &d2h);
    }
    if (r == 0) {
      // Registration cost of ordinary (already faulted-in) memory of the same size.
      HostMem plain;
      void* q = nullptr;
      if (posix_memalign(&q, 4096, bytes) == 0) {
        plain.reset(static_cast<char*>(q));
        memset(q, 1, bytes);
        double t = MonotonicSeconds();
        if (cu.cuMemHostRegister(q, bytes, CU_MEMHOSTREGISTER_PORTABLE) == 0) {
          registerSeconds = MonotonicSeconds() - t;
          cu.cuMemHostUnregister(q);
        }
      }
    }
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

// Pinned H2D on several GPUs at the same moment (issue #29: the floor of a multi-GPU load is the links measured
// together — a shared PCIe switch uplink or the host's memory bandwidth can hold them below the sum of each measured
// alone). One thread per device sets up its buffers and streams, all start copying together (a barrier), and the
// aggregate is every byte over the wall time from the first start to the last end; each device's own rate is timed
// with its events.
struct ConcurrentBaton : Baton {
  std::vector<int> devices;
  uint64_t bytes = 256ull << 20;
  int iterations = 8;
  std::vector<double> h2d;
  std::vector<std::string> names;
  double aggregate = 0, wall = 0;

  void Run() override {
    const CudaApi& cu = Cuda();
    if (!cu.loaded) return Fail(Err::NoGpu, cu.loadError);
    CUresult r0 = cu.cuInit(0);
    if (r0 != 0) return Fail(Err::NoGpu, "cuInit failed: " + CuErrorText(r0));
    const size_t n = devices.size();
    h2d.assign(n, 0);
    names.assign(n, "");
    std::vector<std::string> errs(n);
    std::mutex mu;
    std::condition_variable cv;
    size_t arrived = 0;
    double first = 1e300, last = 0;
    auto one = [&](size_t i) {
      LinkProbe p;
      CUresult r = p.Attach(devices[i]);
      names[i] = p.name;
      if (r == 0) r = p.Alloc(bytes);
      if (r == 0) r = p.Warm(0);
      {
        // Every device arrives (ready or failed) before any starts: the copies overlap.
        std::unique_lock<std::mutex> lk(mu);
        if (++arrived == n) cv.notify_all();
        else cv.wait(lk, [&] { return arrived == n; });
      }
      double ta = MonotonicSeconds(), bps = 0;
      if (r == 0) r = p.Time(0, iterations, &bps);
      double tb = MonotonicSeconds();
      std::lock_guard<std::mutex> lk(mu);
      if (r != 0) {
        errs[i] = "GPU " + std::to_string(devices[i]) + ": " + CuErrorText(r);
        return;
      }
      h2d[i] = bps;
      first = std::min(first, ta);
      last = std::max(last, tb);
    };
    std::vector<std::thread> ts;
    for (size_t i = 0; i < n; i++) ts.emplace_back(one, i);
    for (auto& t : ts) t.join();
    for (const std::string& e : errs)
      if (!e.empty()) return Fail(Err::Env, "concurrent H2D: " + e);
    wall = last > first ? last - first : 0;
    aggregate = wall > 0 ? static_cast<double>(bytes) * iterations * static_cast<double>(n) / wall : 0;
  }
  Napi::Value ToJS(Napi::Env env) override {
    Napi::Object o = Napi::Object::New(env);
    Napi::Array per = Napi::Array::New(env, devices.size());
    for (size_t i = 0; i < devices.size(); i++) {
      Napi::Object x = Napi::Object::New(env);
      x.Set("device", devices[i]);
      x.Set("name", names[i]);
      x.Set("h2dBytesPerSecond", h2d[i]);
      per.Set(i, x);
    }
    o.Set("devices", per);
    o.Set("bytes", static_cast<double>(bytes) * iterations * static_cast<double>(devices.size()));
    o.Set("seconds", wall);
    o.Set("aggregateBytesPerSecond", aggregate);
    return o;
  }
};

Napi::Value ConcurrentH2d(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* fn = "concurrentH2d";
  if (info.Length() < 1 || !info[0].IsObject()) throw ArgError(env, fn, "options", "an object");
  Napi::Object o = info[0].As<Napi::Object>();
  std::unique_ptr<ConcurrentBaton> b(new ConcurrentBaton());
  if (!o.Get("devices").IsArray()) throw ArgError(env, fn, "options.devices", "an array of device indexes");
  Napi::Array a = o.Get("devices").As<Napi::Array>();
  if (a.Length() < 1 || a.Length() > 64) throw ArgError(env, fn, "options.devices", "1 to 64 device indexes");
  for (uint32_t i = 0; i < a.Length(); i++) b->devices.push_back(static_cast<int>(ArgInt(env, fn, "options.devices[" + std::to_string(i) + "]", a.Get(i), 0, 1023)));
  b->bytes = OptU64(env, fn, o, "bytes", 256ull << 20);
  b->iterations = static_cast<int>(OptInt(env, fn, o, "iterations", 8, 1, 1000));
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
  exports.Set("concurrentH2d", Napi::Function::New(env, ConcurrentH2d, "concurrentH2d"));
}

}  // namespace coldstart
