#include "cuda_api.h"

#include <dlfcn.h>

#include <mutex>

namespace coldstart {

namespace {

template <typename F>
bool Sym(void* lib, const char* name, F& out, std::string& err, bool required = true) {
  void* p = dlsym(lib, name);
  if (!p) {
    if (required && err.empty()) err = std::string("symbol ") + name + " missing from the driver library (driver too old?)";
    return !required;
  }
  out = reinterpret_cast<F>(p);
  return true;
}

CudaApi LoadCuda() {
  CudaApi a;
  // CUDA_VISIBLE_DEVICES is honoured by libcuda itself.
  void* lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    const char* e = dlerror();
    a.loadError = std::string("libcuda.so.1 could not be loaded (no NVIDIA driver on this machine?): ") + (e ? e : "unknown dlopen error");
    return a;
  }
  std::string& err = a.loadError;
  bool ok = true;
  ok &= Sym(lib, "cuInit", a.cuInit, err);
  ok &= Sym(lib, "cuDriverGetVersion", a.cuDriverGetVersion, err);
  ok &= Sym(lib, "cuGetErrorString", a.cuGetErrorString, err);
  ok &= Sym(lib, "cuGetErrorName", a.cuGetErrorName, err);
  ok &= Sym(lib, "cuDeviceGetCount", a.cuDeviceGetCount, err);
  ok &= Sym(lib, "cuDeviceGet", a.cuDeviceGet, err);
  ok &= Sym(lib, "cuDeviceGetName", a.cuDeviceGetName, err);
  ok &= Sym(lib, "cuDeviceTotalMem_v2", a.cuDeviceTotalMem, err);
  ok &= Sym(lib, "cuDeviceGetAttribute", a.cuDeviceGetAttribute, err);
  ok &= Sym(lib, "cuDeviceGetPCIBusId", a.cuDeviceGetPCIBusId, err);
  ok &= Sym(lib, "cuDevicePrimaryCtxRetain", a.cuDevicePrimaryCtxRetain, err);
  ok &= Sym(lib, "cuDevicePrimaryCtxRelease_v2", a.cuDevicePrimaryCtxRelease, err);
  ok &= Sym(lib, "cuCtxSetCurrent", a.cuCtxSetCurrent, err);
  ok &= Sym(lib, "cuCtxGetCurrent", a.cuCtxGetCurrent, err);
  ok &= Sym(lib, "cuCtxSynchronize", a.cuCtxSynchronize, err);
  ok &= Sym(lib, "cuMemGetInfo_v2", a.cuMemGetInfo, err);
  ok &= Sym(lib, "cuMemAlloc_v2", a.cuMemAlloc, err);
  ok &= Sym(lib, "cuMemFree_v2", a.cuMemFree, err);
  ok &= Sym(lib, "cuMemHostAlloc", a.cuMemHostAlloc, err);
  ok &= Sym(lib, "cuMemFreeHost", a.cuMemFreeHost, err);
  ok &= Sym(lib, "cuMemHostRegister_v2", a.cuMemHostRegister, err);
  ok &= Sym(lib, "cuMemHostUnregister", a.cuMemHostUnregister, err);
  ok &= Sym(lib, "cuMemcpyHtoD_v2", a.cuMemcpyHtoD, err);
  ok &= Sym(lib, "cuMemcpyDtoH_v2", a.cuMemcpyDtoH, err);
  ok &= Sym(lib, "cuMemcpyHtoDAsync_v2", a.cuMemcpyHtoDAsync, err);
  ok &= Sym(lib, "cuMemcpyDtoHAsync_v2", a.cuMemcpyDtoHAsync, err);
  ok &= Sym(lib, "cuStreamCreate", a.cuStreamCreate, err);
  ok &= Sym(lib, "cuStreamDestroy_v2", a.cuStreamDestroy, err);
  ok &= Sym(lib, "cuStreamSynchronize", a.cuStreamSynchronize, err);
  ok &= Sym(lib, "cuEventCreate", a.cuEventCreate, err);
  ok &= Sym(lib, "cuEventDestroy_v2", a.cuEventDestroy, err);
  ok &= Sym(lib, "cuEventRecord", a.cuEventRecord, err);
  ok &= Sym(lib, "cuEventSynchronize", a.cuEventSynchronize, err);
  ok &= Sym(lib, "cuEventQuery", a.cuEventQuery, err);
  ok &= Sym(lib, "cuEventElapsedTime", a.cuEventElapsedTime, err);
  Sym(lib, "cuMemcpy2DAsync_v2", a.cuMemcpy2DAsync, err, false);  // tensor-parallel loads only: refused without it
  Sym(lib, "cuIpcGetMemHandle", a.cuIpcGetMemHandle, err, false);
  if (!Sym(lib, "cuIpcOpenMemHandle_v2", a.cuIpcOpenMemHandle, err, false) || !a.cuIpcOpenMemHandle) Sym(lib, "cuIpcOpenMemHandle", a.cuIpcOpenMemHandle, err, false);
  Sym(lib, "cuIpcCloseMemHandle", a.cuIpcCloseMemHandle, err, false);
  Sym(lib, "cuMemcpyDtoDAsync_v2", a.cuMemcpyDtoDAsync, err, false);
  Sym(lib, "cuMemGetAddressRange_v2", a.cuMemGetAddressRange, err, false);
  if (!Sym(lib, "cuDeviceGetUuid_v2", a.cuDeviceGetUuid, err, false) || !a.cuDeviceGetUuid) Sym(lib, "cuDeviceGetUuid", a.cuDeviceGetUuid, err, false);
  Sym(lib, "cuCheckpointProcessGetRestoreThreadId", a.cuCheckpointProcessGetRestoreThreadId, err, false);
  Sym(lib, "cuCheckpointProcessGetState", a.cuCheckpointProcessGetState, err, false);
  Sym(lib, "cuCheckpointProcessLock", a.cuCheckpointProcessLock, err, false);
  Sym(lib, "cuCheckpointProcessCheckpoint", a.cuCheckpointProcessCheckpoint, err, false);
  Sym(lib, "cuCheckpointProcessRestore", a.cuCheckpointProcessRestore, err, false);
  Sym(lib, "cuCheckpointProcessUnlock", a.cuCheckpointProcessUnlock, err, false);
  a.loaded = ok;
  return a;
}

NvmlApi LoadNvml() {
  NvmlApi a;
  void* lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    const char* e = dlerror();
    a.loadError = std::string("libnvidia-ml.so.1 could not be loaded: ") + (e ? e : "unknown dlopen error");
    return a;
  }
  std::string& err = a.loadError;
  bool ok = true;
  ok &= Sym(lib, "nvmlInit_v2", a.nvmlInit, err);
  ok &= Sym(lib, "nvmlShutdown", a.nvmlShutdown, err);
  ok &= Sym(lib, "nvmlErrorString", a.nvmlErrorString, err);
  ok &= Sym(lib, "nvmlSystemGetDriverVersion", a.nvmlSystemGetDriverVersion, err);
  ok &= Sym(lib, "nvmlDeviceGetHandleByPciBusId_v2", a.nvmlDeviceGetHandleByPciBusId, err);
  ok &= Sym(lib, "nvmlDeviceGetCurrPcieLinkGeneration", a.nvmlDeviceGetCurrPcieLinkGeneration, err);
  ok &= Sym(lib, "nvmlDeviceGetMaxPcieLinkGeneration", a.nvmlDeviceGetMaxPcieLinkGeneration, err);
  Sym(lib, "nvmlDeviceGetGpuMaxPcieLinkGeneration", a.nvmlDeviceGetGpuMaxPcieLinkGeneration, err, false);
  ok &= Sym(lib, "nvmlDeviceGetCurrPcieLinkWidth", a.nvmlDeviceGetCurrPcieLinkWidth, err);
  ok &= Sym(lib, "nvmlDeviceGetMaxPcieLinkWidth", a.nvmlDeviceGetMaxPcieLinkWidth, err);
  Sym(lib, "nvmlDeviceGetCount_v2", a.nvmlDeviceGetCount, err, false);
  Sym(lib, "nvmlDeviceGetHandleByIndex_v2", a.nvmlDeviceGetHandleByIndex, err, false);
  Sym(lib, "nvmlDeviceGetMemoryInfo", a.nvmlDeviceGetMemoryInfo, err, false);
  Sym(lib, "nvmlDeviceGetName", a.nvmlDeviceGetName, err, false);
  Sym(lib, "nvmlDeviceGetUUID", a.nvmlDeviceGetUUID, err, false);
  if (!Sym(lib, "nvmlDeviceGetComputeRunningProcesses_v3", a.nvmlDeviceGetComputeRunningProcesses, err, false) || !a.nvmlDeviceGetComputeRunningProcesses) {
    Sym(lib, "nvmlDeviceGetComputeRunningProcesses_v2", a.nvmlDeviceGetComputeRunningProcesses, err, false);
  }
  Sym(lib, "nvmlDeviceGetNvLinkState", a.nvmlDeviceGetNvLinkState, err, false);
  a.loaded = ok;
  return a;
}

}  // namespace

const CudaApi& Cuda() {
  static std::once_flag once;
  static CudaApi api;
  std::call_once(once, [] { api = LoadCuda(); });
  return api;
}

const NvmlApi& Nvml() {
  static std::once_flag once;
  static NvmlApi api;
  std::call_once(once, [] { api = LoadNvml(); });
  return api;
}

std::string CuErrorText(CUresult r) {
  const CudaApi& a = Cuda();
  const char* name = nullptr;
  const char* desc = nullptr;
  if (a.cuGetErrorName) a.cuGetErrorName(r, &name);
  if (a.cuGetErrorString) a.cuGetErrorString(r, &desc);
  std::string s = name ? name : "CUDA_ERROR";
  s += " (" + std::to_string(r) + ")";
  if (desc) s += std::string(": ") + desc;
  return s;
}

}  // namespace coldstart
