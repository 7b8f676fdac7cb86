// Byte moving for convert (issue 3): filled in by the convert work.
#include "common.h"

namespace coldstart {
void InitFileIO(Napi::Env, Napi::Object) {}
}  // namespace coldstart
