// Module entry: each part of the addon registers its own functions.
#include <napi.h>

namespace coldstart {
void InitProbe(Napi::Env env, Napi::Object exports);   // probe.cc   — cuda-init phase, doctor
void InitLoader(Napi::Env env, Napi::Object exports);  // loader.cc  — gpu-load engine
void InitFileIO(Napi::Env env, Napi::Object exports);  // fileio.cc  — byte moving for convert
void InitCheckpoint(Napi::Env env, Napi::Object exports);  // checkpoint.cc — snapshot/restore/park (cuCheckpointProcess*)
void InitAmx(Napi::Env env, Napi::Object exports);         // amx.cc — restore: AMX permission back (ptrace)
void InitPageOut(Napi::Env env, Napi::Object exports);     // pageout.cc — snapshot: page out a server's file pages (process_madvise)
}  // namespace coldstart

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("abiVersion", Napi::Number::New(env, 1));
  coldstart::InitProbe(env, exports);
  coldstart::InitLoader(env, exports);
  coldstart::InitFileIO(env, exports);
  coldstart::InitCheckpoint(env, exports);
  coldstart::InitAmx(env, exports);
  coldstart::InitPageOut(env, exports);
  return exports;
}

NODE_API_MODULE(coldstart, Init)
