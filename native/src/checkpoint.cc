// snapshot / restore / park / unpark: the CUDA driver's process checkpoint API (cuCheckpointProcess*, driver
// >= 570) on another process by pid, and GPU memory in use from NVML. Both libraries come from the dlopen'd
// tables in cuda_api.cc; nothing here links against them. Every call is a baton (off the main thread): a
// checkpoint moves all of a process's GPU memory to host memory and can take many seconds.
#include <napi.h>

#include <cstring>
#include <string>
#include <vector>

#include "common.h"
#include "cuda_api.h"

namespace coldstart {

namespace {

// The driver's args structs: 64 bytes each, reserved fields zero. Lock's first field is `unsigned timeoutMs`.
struct alignas(8) CheckpointArgs {
  unsigned char bytes[64];
  CheckpointArgs() { std::memset(bytes, 0, sizeof bytes); }
};

const char* StateName(int s) {
  switch (s) {
    case 0: return "running";
    case 1: return "locked";
    case 2: return "checkpointed";
    case 3: return "failed";
    default: return "unknown";
  }
}

// "" when the API can be used; otherwise why not (and the stable code to reject with).
bool ApiReady(std::string& code, std::string& why) {
  const CudaApi& cu = Cuda();
  if (!cu.loaded) {
    code = "NO_DRIVER";
    why = "not available: no CUDA driver (" + cu.loadError + ")";
    return false;
  }
  if (!cu.cuCheckpointProcessGetState || !cu.cuCheckpointProcessLock || !cu.cuCheckpointProcessCheckpoint || !cu.cuCheckpointProcessRestore ||
      !cu.cuCheckpointProcessUnlock) {
    code = "NO_CHECKPOINT_API";
    why = "not available: this CUDA driver has no process checkpoint API (cuCheckpointProcess*, driver 570 or newer)";
    return false;
  }
  static CUresult initResult = cu.cuInit(0);  // once; the checkpoint calls need an initialised driver
  if (initResult != 0) {
    code = "NO_DRIVER";
    why = "not available: cuInit failed: " + CuErrorText(initResult);
    return false;
  }
  return true;
}

struct CheckpointBaton : Baton {
  int pid = 0;
  std::string action;
  unsigned timeoutMs = 0;
  double seconds = 0;
  int state = -1;
  int tid = -1;

  void Run() override {
    std::string c, why;
    if (!ApiReady(c, why)) return Fail(c, why);
    const CudaApi& cu = Cuda();
    CheckpointArgs args;
    CUresult r = 0;
    double t0 = MonotonicSeconds();
    if (action == "state") {
      r = cu.cuCheckpointProcessGetState(pid, &state);
    } else if (action == "restoreThread") {
      if (!cu.cuCheckpointProcessGetRestoreThreadId) return Fail("NO_CHECKPOINT_API", "cuCheckpointProcessGetRestoreThreadId is missing from this driver");
      r = cu.cuCheckpointProcessGetRestoreThreadId(pid, &tid);
    } else if (action == "lock") {
      std::memcpy(args.bytes, &timeoutMs, sizeof timeoutMs);
      r = cu.cuCheckpointProcessLock(pid, &args);
    } else if (action == "checkpoint") {
      r = cu.cuCheckpointProcessCheckpoint(pid, &args);
    } else if (action == "restore") {
      r = cu.cuCheckpointProcessRestore(pid, &args);
    } else if (action == "unlock") {
      r = cu.cuCheckpointProcessUnlock(pid, &args);
    } else {
      return Fail("BAD_ARG", "cudaCheckpoint: unknown action " + action);
    }
    seconds = MonotonicSeconds() - t0;
    if (r != 0) {
      const char* name = nullptr;
      if (cu.cuGetErrorName) cu.cuGetErrorName(r, &name);
      return Fail(name ? name : "CUDA_ERROR", "cuCheckpointProcess " + action + " of pid " + std::to_string(pid) + " failed: " + CuErrorText(r));
    }
    if (action != "state" && action != "restoreThread") {
      int s = -1;
      if (cu.cuCheckpointProcessGetState(pid, &s) == 0) state = s;
    }
  }

  Napi::Value ToJS(Napi::Env env) override {
    Napi::Object o = Napi::Object::New(env);
    o.Set("pid", pid);
    o.Set("action", action);
    o.Set("seconds", seconds);
    if (state >= 0) o.Set("state", StateName(state));
    if (tid >= 0) o.Set("restoreThreadId", tid);
    return o;
  }
};

Napi::Value CudaCheckpoint(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) throw ArgError(env, "cudaCheckpoint", "options", "an object");
  Napi::Object o = info[0].As<Napi::Object>();
  double pid = OptNumber(o, "pid", -1);
  if (!(pid >= 1 && pid <= 4194304) || pid != static_cast<double>(static_cast<int>(pid))) throw ArgError(env, "cudaCheckpoint", "pid", "an integer 1..4194304");
  if (!o.Has("action") || !o.Get("action").IsString()) throw ArgError(env, "cudaCheckpoint", "action", "a string");
  double timeout = OptNumber(o, "timeoutMs", 0);
  if (!(timeout >= 0 && timeout <= 4294967295.0)) throw ArgError(env, "cudaCheckpoint", "timeoutMs", "0..4294967295");
  auto* b = new CheckpointBaton();
  b->pid = static_cast<int>(pid);
  b->action = o.Get("action").As<Napi::String>().Utf8Value();
  b->timeoutMs = static_cast<unsigned>(timeout);
  return Queue(env, b);
}

struct GpuMemoryBaton : Baton {
  struct Dev {
    unsigned index;
    std::string name, uuid;
    unsigned long long total, free, used;
  };
  std::vector<Dev> devs;
  std::string driver;
  bool available = false;
  std::string reason;

  void Run() override {
    const NvmlApi& nv = Nvml();
    if (!nv.loaded) {
      reason = nv.loadError;
      return;
    }
    if (!nv.nvmlDeviceGetCount || !nv.nvmlDeviceGetHandleByIndex || !nv.nvmlDeviceGetMemoryInfo) {
      reason = "this NVML has no nvmlDeviceGetMemoryInfo/nvmlDeviceGetHandleByIndex_v2";
      return;
    }
    nvmlReturn_t r = nv.nvmlInit();
    if (r != 0) {
      reason = std::string("nvmlInit failed: ") + nv.nvmlErrorString(r);
      return;
    }
    char buf[256] = {0};
    if (nv.nvmlSystemGetDriverVersion(buf, sizeof buf) == 0) driver = buf;
    unsigned n = 0;
    r = nv.nvmlDeviceGetCount(&n);
    if (r != 0) {
      reason = std::string("nvmlDeviceGetCount failed: ") + nv.nvmlErrorString(r);
      nv.nvmlShutdown();
      return;
    }
    for (unsigned i = 0; i < n; ++i) {
      nvmlDevice_t h = nullptr;
      if (nv.nvmlDeviceGetHandleByIndex(i, &h) != 0) continue;
      unsigned long long mem[3] = {0, 0, 0};  // nvmlMemory_t v1: total, free, used
      if (nv.nvmlDeviceGetMemoryInfo(h, mem) != 0) continue;
      Dev d{i, "", "", mem[0], mem[1], mem[2]};
      char s[256] = {0};
      if (nv.nvmlDeviceGetName && nv.nvmlDeviceGetName(h, s, sizeof s) == 0) d.name = s;
      std::memset(s, 0, sizeof s);
      if (nv.nvmlDeviceGetUUID && nv.nvmlDeviceGetUUID(h, s, sizeof s) == 0) d.uuid = s;
      devs.push_back(d);
    }
    nv.nvmlShutdown();
    available = true;
  }

  Napi::Value ToJS(Napi::Env env) override {
    Napi::Object o = Napi::Object::New(env);
    o.Set("available", available);
    if (!reason.empty()) o.Set("reason", reason);
    if (!driver.empty()) o.Set("driverVersion", driver);
    Napi::Array a = Napi::Array::New(env, devs.size());
    for (size_t i = 0; i < devs.size(); ++i) {
      Napi::Object d = Napi::Object::New(env);
      d.Set("index", devs[i].index);
      d.Set("name", devs[i].name);
      d.Set("uuid", devs[i].uuid);
      d.Set("totalBytes", static_cast<double>(devs[i].total));
      d.Set("freeBytes", static_cast<double>(devs[i].free));
      d.Set("usedBytes", static_cast<double>(devs[i].used));
      a.Set(static_cast<uint32_t>(i), d);
    }
    o.Set("devices", a);
    return o;
  }
};

Napi::Value GpuMemory(const Napi::CallbackInfo& info) { return Queue(info.Env(), new GpuMemoryBaton()); }

}  // namespace

void InitCheckpoint(Napi::Env env, Napi::Object exports) {
  exports.Set("cudaCheckpoint", Napi::Function::New(env, CudaCheckpoint, "cudaCheckpoint"));
  exports.Set("gpuMemory", Napi::Function::New(env, GpuMemory, "gpuMemory"));
}

}  // namespace coldstart
