// snapshot / restore / park / unpark: the CUDA driver's process checkpoint API (cuCheckpointProcess*, driver
// >= 570) on another process by pid, and GPU memory in use from NVML. Both libraries come from the dlopen'd
// tables in cuda_api.cc; nothing here links against them. Every call is a baton (off the main thread): a
// checkpoint moves all of a process's GPU memory to host memory and can take many seconds.
#include <napi.h>

#include <climits>
#include <cstddef>
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

// cuda.h's CUcheckpointGpuPair (two CUuuid, 16 bytes each) and CUcheckpointRestoreArgs as CUDA 12.8 to 13.4 lay it
// out: the pairs pointer at 0 and their count at 8 in every version; what follows (13.4's customStorageInfo_out, the
// reserved bytes) stays zero: GPU memory comes back from host memory.
struct GpuPair {
  unsigned char oldUuid[16];
  unsigned char newUuid[16];
};
static_assert(sizeof(GpuPair) == 32, "CUcheckpointGpuPair is two 16-byte UUIDs");
struct RestoreArgs {
  GpuPair* gpuPairs;
  unsigned gpuPairsCount;
  unsigned padding0;
  unsigned char rest[48];
};
static_assert(sizeof(RestoreArgs) == 64 && offsetof(RestoreArgs, gpuPairsCount) == 8, "CUcheckpointRestoreArgs layout");

// 32 hex digits (a GPU UUID without "GPU-" and dashes, as src/snapshot/gpu-map.ts writes it) into 16 bytes.
bool HexUuid(const std::string& hex, unsigned char out[16]) {
  if (hex.size() != 32) return false;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  for (size_t i = 0; i < 16; ++i) {
    int hi = nibble(hex[2 * i]), lo = nibble(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<unsigned char>(hi * 16 + lo);
  }
  return true;
}

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
  std::vector<GpuPair> pairs;  // restore only: onto which GPU each checkpointed GPU comes back (empty: the same ones)

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
      RestoreArgs ra;
      std::memset(&ra, 0, sizeof ra);
      if (!pairs.empty()) {
        ra.gpuPairs = pairs.data();
        ra.gpuPairsCount = static_cast<unsigned>(pairs.size());
      }
      r = cu.cuCheckpointProcessRestore(pid, &ra);
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
  std::string action = o.Get("action").As<Napi::String>().Utf8Value();
  std::vector<GpuPair> pairs;
  if (o.Has("gpuPairs") && !o.Get("gpuPairs").IsUndefined()) {
    const char* want = "an array of at most 64 [old, new] pairs of 32 lowercase hex digits each";
    if (action != "restore") throw ArgError(env, "cudaCheckpoint", "gpuPairs", "only with action restore");
    if (!o.Get("gpuPairs").IsArray()) throw ArgError(env, "cudaCheckpoint", "gpuPairs", want);
    Napi::Array a = o.Get("gpuPairs").As<Napi::Array>();
    if (a.Length() > 64) throw ArgError(env, "cudaCheckpoint", "gpuPairs", want);
    for (uint32_t i = 0; i < a.Length(); ++i) {
      Napi::Value e = a.Get(i);
      if (!e.IsArray() || e.As<Napi::Array>().Length() != 2) throw ArgError(env, "cudaCheckpoint", "gpuPairs", want);
      Napi::Value from = e.As<Napi::Array>().Get(0u), to = e.As<Napi::Array>().Get(1u);
      GpuPair p;
      if (!from.IsString() || !to.IsString() || !HexUuid(from.As<Napi::String>().Utf8Value(), p.oldUuid) || !HexUuid(to.As<Napi::String>().Utf8Value(), p.newUuid)) {
        throw ArgError(env, "cudaCheckpoint", "gpuPairs", want);
      }
      pairs.push_back(p);
    }
  }
  auto* b = new CheckpointBaton();
  b->pid = static_cast<int>(pid);
  b->action = std::move(action);
  b->timeoutMs = static_cast<unsigned>(timeout);
  b->pairs = std::move(pairs);
  return Queue(env, b);
}

// nvml.h's nvmlProcessInfo_t (v2 layout, what _v2 and _v3 of nvmlDeviceGetComputeRunningProcesses fill).
struct NvmlProcessInfo {
  unsigned pid;
  unsigned long long usedGpuMemory;  // ULLONG_MAX: not available (e.g. under some virtualisation)
  unsigned gpuInstanceId;
  unsigned computeInstanceId;
};
static_assert(sizeof(NvmlProcessInfo) == 24, "nvmlProcessInfo_t is 24 bytes");
constexpr nvmlReturn_t kNvmlInsufficientSize = 7;

struct GpuMemoryBaton : Baton {
  struct Proc {
    unsigned pid;
    long long used;  // -1: not available
  };
  struct Dev {
    unsigned index;
    std::string name, uuid;
    unsigned long long total, free, used;
    bool procsKnown = false;
    std::vector<Proc> procs;
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
      Dev d{i, "", "", mem[0], mem[1], mem[2], false, {}};
      char s[256] = {0};
      if (nv.nvmlDeviceGetName && nv.nvmlDeviceGetName(h, s, sizeof s) == 0) d.name = s;
      std::memset(s, 0, sizeof s);
      if (nv.nvmlDeviceGetUUID && nv.nvmlDeviceGetUUID(h, s, sizeof s) == 0) d.uuid = s;
      if (nv.nvmlDeviceGetComputeRunningProcesses) {
        // Asked with room for 64; once more with what the driver says it needs if that was short (processes come and go).
        std::vector<NvmlProcessInfo> buf(64);
        for (int attempt = 0; attempt < 2; ++attempt) {
          unsigned count = static_cast<unsigned>(buf.size());
          nvmlReturn_t pr = nv.nvmlDeviceGetComputeRunningProcesses(h, &count, buf.data());
          if (pr == kNvmlInsufficientSize && attempt == 0 && count <= 65536) {
            buf.assign(static_cast<size_t>(count) + 16, NvmlProcessInfo{});
            continue;
          }
          if (pr == 0 && count <= buf.size()) {
            d.procsKnown = true;
            for (unsigned k = 0; k < count; ++k) {
              const NvmlProcessInfo& p = buf[k];
              d.procs.push_back(Proc{p.pid, p.usedGpuMemory == ULLONG_MAX || p.usedGpuMemory > (1ULL << 53) ? -1 : static_cast<long long>(p.usedGpuMemory)});
            }
          }
          break;
        }
      }
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
      if (devs[i].procsKnown) {
        Napi::Array ps = Napi::Array::New(env, devs[i].procs.size());
        for (size_t k = 0; k < devs[i].procs.size(); ++k) {
          Napi::Object p = Napi::Object::New(env);
          p.Set("pid", devs[i].procs[k].pid);
          p.Set("usedBytes", devs[i].procs[k].used < 0 ? env.Null() : Napi::Number::New(env, static_cast<double>(devs[i].procs[k].used)));
          ps.Set(static_cast<uint32_t>(k), p);
        }
        d.Set("processes", ps);
      } else {
        d.Set("processes", env.Null());
      }
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
