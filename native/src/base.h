// The addon's N-API-free base, shared by the Node addon and the C library for servers (capi.cc): the one error
// vocabulary and the clock. Nothing here may include napi.h: libcoldstart_load.so is loaded by Python, not Node.
#pragma once
#include <time.h>

#include <cerrno>

namespace coldstart {

// The addon's one error vocabulary. Every rejection and every thrown argument error carries one of these as
// its `code`; src/native.ts maps them (and fileio's errno names, which mean the same things) to ColdstartError
// codes in one function, nativeError(); src/python/coldstart_load.py raises them as LoadError.code. Decisions are
// made on the code, never on message text.
enum class Err {
  BadArg,       // an argument from JS was refused (type, NaN, negative, fraction, > 2^53, overflowing plan) → exit 2
  NotFound,     // a file does not exist → exit 2
  CorruptFile,  // a file is shorter than its header says, or changed while read → exit 2
  Permission,   // EACCES/EPERM → exit 3
  DiskFull,     // ENOSPC/EDQUOT → exit 3
  Env,          // any other system or driver failure → exit 3
  NoGpu,        // no driver, cuInit failed, no such device, no context → exit 3
  GpuOom,       // not enough device memory → exit 3
  Unsupported,  // this platform/driver cannot do what was asked (e.g. read-only host registration) → exit 3
  Interrupted,  // cancelled through the cancel array → exit 3
  Native,       // an unexpected C++ exception → exit 3
};

inline const char* ErrName(Err e) {
  switch (e) {
    case Err::BadArg: return "BAD_ARG";
    case Err::NotFound: return "NOT_FOUND";
    case Err::CorruptFile: return "CORRUPT_FILE";
    case Err::Permission: return "PERMISSION";
    case Err::DiskFull: return "DISK_FULL";
    case Err::Env: return "ENV";
    case Err::NoGpu: return "NO_GPU";
    case Err::GpuOom: return "GPU_OOM";
    case Err::Unsupported: return "UNSUPPORTED";
    case Err::Interrupted: return "INTERRUPTED";
    case Err::Native: return "NATIVE";
  }
  return "NATIVE";
}

inline Err ErrFromErrno(int e) {
  switch (e) {
    case ENOENT: case ENOTDIR: return Err::NotFound;
    case EACCES: case EPERM: return Err::Permission;
    case ENOSPC: case EDQUOT: return Err::DiskFull;
    default: return Err::Env;
  }
}

// The clock every native timing reads (CLOCK_MONOTONIC: the clock of Node's process.hrtime and Python's
// time.monotonic, so their readings compare).
inline double MonotonicSeconds() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

}  // namespace coldstart
