// Paged KV cache ops (filled in with the paged kernels).
#include "register.h"

namespace binding {

void registerPagedOps(Napi::Env env, Napi::Object exports) {}

}  // namespace binding
