// cudaProbe(): the cuda-init phase. Times cuInit, device enumeration and primary-context creation separately,
// lists devices (name, memory, PCI bus id) and, through NVML, their PCIe link generation and width.
// With no driver it resolves { available: false, reason } — it never throws for a missing GPU.
#include <time.h>

#include <vector>

#include "common.h"
#include "cuda_api.h"
#include "handles.h"

namespace coldstart {

namespace {

constexpr unsigned kNvlinkMaxLinks = 18;  // NVML_NVLINK_MAX_LINKS

struct DeviceInfo {
  int index = 0;
  std::string name;
  double totalMemory = 0;
  double freeMemory = -1;
  std::string pciBusId;
  int ccMajor = 0, ccMinor = 0, sms = 0;
  double contextSeconds = -1;
  std::string contextError;
  bool pcieKnown = false;
  int nvlinkActive = -1;  // links NVML reports active; -1 when it reports none (a PCIe card, or no NVML)
  unsigned currGen = 0, maxGen = 0, gpuMaxGen = 0, currWidth = 0, maxWidth = 0;
  std::string pcieError;
};

struct ProbeBaton : Baton {
  // inputs
  std::vector<int> only;  // device indexes to create contexts on; empty = all
  bool createContext = true;
  // outputs
  bool available = false;
  std::string reason;
  std::string stage;  // dlopen | cuInit | enumerate
  int driverVersion = 0;
  double tInit = 0, tEnumerate = 0, tContext = 0;
  std::vector<DeviceInfo> devices;
  bool nvmlAvailable = false;
  std::string nvmlReason, nvmlDriver;

  void Run() override {
    const CudaApi& cu = Cuda();
    if (!cu.loaded) {
      reason = cu.loadError;
      stage = "dlopen";
    } else {
      double t0 = MonotonicSeconds();
      CUresult r = cu.cuInit(0);
      tInit = MonotonicSeconds() - t0;
      if (r != 0) {
        reason = "cuInit failed: " + CuErrorText(r);
        stage = "cuInit";
      } else {
        cu.cuDriverGetVersion(&driverVersion);
        Enumerate(cu);
      }
    }
    ProbeNvml();
  }

  void Enumerate(const CudaApi& cu) {
    double t0 = MonotonicSeconds();
    int n = 0;
    CUresult r = cu.cuDeviceGetCount(&n);
    if (r != 0) {
      reason = "cuDeviceGetCount failed: " + CuErrorText(r);
      stage = "enumerate";
      return;
    }
    for (int i = 0; i < n; i++) {
      DeviceInfo d;
      d.index = i;
      CUdevice dev;
      if (cu.cuDeviceGet(&dev, i) != 0) continue;
      char name[256] = {0};
      cu.cuDeviceGetName(name, sizeof(name) - 1, dev);
      d.name = name;
      size_t total = 0;
      cu.cuDeviceTotalMem(&total, dev);
      d.totalMemory = static_cast<double>(total);
      char bus[64] = {0};
      if (cu.cuDeviceGetPCIBusId(bus, sizeof(bus) - 1, dev) == 0) d.pciBusId = bus;
      cu.cuDeviceGetAttribute(&d.ccMajor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev);
      cu.cuDeviceGetAttribute(&d.ccMinor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev);
      cu.cuDeviceGetAttribute(&d.sms, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, dev);
      devices.push_back(d);
    }
    tEnumerate = MonotonicSeconds() - t0;
    if (n == 0) {
      reason = "the driver reports no CUDA devices";
      stage = "enumerate";
      return;
    }
    available = true;
    if (!createContext) return;
    for (DeviceInfo& d : devices) {
      bool wanted = only.empty();
      for (int k : only) wanted |= (k == d.index);
      if (!wanted) continue;
      double c0 = MonotonicSeconds();
      PrimaryCtx ctx;  // released at the end of this iteration (handles.h)
      CUresult rr = ctx.Retain(d.index);
      if (rr == 0) rr = ctx.Current();
      size_t freeB = 0, totalB = 0;
      // The first call that needs the context finishes its creation; count it in.
      if (rr == 0) rr = cu.cuMemGetInfo(&freeB, &totalB);
      double dt = MonotonicSeconds() - c0;
      if (rr == 0) {
        d.contextSeconds = dt;
        d.freeMemory = static_cast<double>(freeB);
        tContext += dt;
      } else {
        d.contextError = "primary context creation failed: " + CuErrorText(rr);
      }
    }
  }

  void ProbeNvml() {
    const NvmlApi& nv = Nvml();
    if (!nv.loaded) {
      nvmlReason = nv.loadError;
      return;
    }
    nvmlReturn_t r = nv.nvmlInit();
    if (r != 0) {
      nvmlReason = std::string("nvmlInit failed: ") + nv.nvmlErrorString(r);
      return;
    }
    nvmlAvailable = true;
    char ver[96] = {0};
    if (nv.nvmlSystemGetDriverVersion(ver, sizeof(ver) - 1) == 0) nvmlDriver = ver;
    // NVML ignores CUDA_VISIBLE_DEVICES, so devices are matched by PCI bus id, not by index.
    for (DeviceInfo& d : devices) {
      if (d.pciBusId.empty()) continue;
      nvmlDevice_t h = nullptr;
      r = nv.nvmlDeviceGetHandleByPciBusId(d.pciBusId.c_str(), &h);
      if (r != 0) {
        d.pcieError = std::string("NVML has no device at ") + d.pciBusId + ": " + nv.nvmlErrorString(r);
        continue;
      }
      bool ok = nv.nvmlDeviceGetCurrPcieLinkGeneration(h, &d.currGen) == 0;
      ok &= nv.nvmlDeviceGetMaxPcieLinkGeneration(h, &d.maxGen) == 0;
      ok &= nv.nvmlDeviceGetCurrPcieLinkWidth(h, &d.currWidth) == 0;
      ok &= nv.nvmlDeviceGetMaxPcieLinkWidth(h, &d.maxWidth) == 0;
      if (nv.nvmlDeviceGetGpuMaxPcieLinkGeneration) nv.nvmlDeviceGetGpuMaxPcieLinkGeneration(h, &d.gpuMaxGen);
      d.pcieKnown = ok;
      if (!ok) d.pcieError = "NVML could not read the PCIe link";
      // NVLink (optional symbol): how many of the device's links are up. A PCIe card answers NOT_SUPPORTED.
      for (unsigned link = 0; nv.nvmlDeviceGetNvLinkState && link < kNvlinkMaxLinks; link++) {
        int state = 0;
        if (nv.nvmlDeviceGetNvLinkState(h, link, &state) != 0) continue;
        if (d.nvlinkActive < 0) d.nvlinkActive = 0;
        if (state == 1) d.nvlinkActive++;  // NVML_FEATURE_ENABLED
      }
    }
    nv.nvmlShutdown();
  }

  Napi::Value ToJS(Napi::Env env) override {
    Napi::Object o = Napi::Object::New(env);
    o.Set("available", available);
    if (!reason.empty()) o.Set("reason", reason);
    if (!stage.empty()) o.Set("stage", stage);
    if (driverVersion) o.Set("driverVersion", driverVersion);
    Napi::Object t = Napi::Object::New(env);
    t.Set("init", tInit);
    t.Set("enumerate", tEnumerate);
    t.Set("context", tContext);
    o.Set("timings", t);
    Napi::Array arr = Napi::Array::New(env, devices.size());
    for (size_t i = 0; i < devices.size(); i++) {
      const DeviceInfo& d = devices[i];
      Napi::Object x = Napi::Object::New(env);
      x.Set("index", d.index);
      x.Set("name", d.name);
      x.Set("totalMemory", d.totalMemory);
      if (d.freeMemory >= 0) x.Set("freeMemory", d.freeMemory);
      x.Set("pciBusId", d.pciBusId);
      x.Set("computeCapability", std::to_string(d.ccMajor) + "." + std::to_string(d.ccMinor));
      x.Set("multiprocessors", d.sms);
      if (d.contextSeconds >= 0) x.Set("contextSeconds", d.contextSeconds);
      if (!d.contextError.empty()) x.Set("contextError", d.contextError);
      if (d.pcieKnown) {
        Napi::Object p = Napi::Object::New(env);
        p.Set("currentGen", d.currGen);
        p.Set("maxGen", d.maxGen);
        if (d.gpuMaxGen) p.Set("gpuMaxGen", d.gpuMaxGen);
        p.Set("currentWidth", d.currWidth);
        p.Set("maxWidth", d.maxWidth);
        x.Set("pcie", p);
      } else if (!d.pcieError.empty()) {
        x.Set("pcieError", d.pcieError);
      }
      if (d.nvlinkActive >= 0) x.Set("nvlinkActiveLinks", d.nvlinkActive);
      arr.Set(i, x);
    }
    o.Set("devices", arr);
    Napi::Object n = Napi::Object::New(env);
    n.Set("available", nvmlAvailable);
    if (!nvmlReason.empty()) n.Set("reason", nvmlReason);
    if (!nvmlDriver.empty()) n.Set("driverVersion", nvmlDriver);
    o.Set("nvml", n);
    return o;
  }
};

Napi::Value CudaProbe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto* b = new ProbeBaton();
  if (info.Length() > 0 && !info[0].IsUndefined()) {
    if (!info[0].IsObject()) {
      delete b;
      throw ArgError(env, "cudaProbe", "options", "an object");
    }
    Napi::Object o = info[0].As<Napi::Object>();
    b->createContext = OptBool(o, "context", true);
    if (o.Has("devices") && o.Get("devices").IsArray()) {
      Napi::Array a = o.Get("devices").As<Napi::Array>();
      for (uint32_t i = 0; i < a.Length(); i++) {
        Napi::Value v = a.Get(i);
        if (!v.IsNumber()) {
          delete b;
          throw ArgError(env, "cudaProbe", "options.devices[]", "a device index");
        }
        b->only.push_back(v.As<Napi::Number>().Int32Value());
      }
    }
  }
  return Queue(env, b);
}

}  // namespace

void InitProbe(Napi::Env env, Napi::Object exports) {
  exports.Set("cudaProbe", Napi::Function::New(env, CudaProbe, "cudaProbe"));
}

}  // namespace coldstart
