// gpu-load engine (issue 4): filled in by the loader work.
#include "common.h"

namespace coldstart {
void InitLoader(Napi::Env, Napi::Object) {}
}  // namespace coldstart
