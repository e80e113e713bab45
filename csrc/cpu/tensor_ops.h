#pragma once
#include "../common/tensor_ops_params.h"

namespace attn::cpu {

void copyStrided(const StridedCopyParams& p);
void fill(const FillParams& p);
void randomNormal(const RandomParams& p);

}  // namespace attn::cpu
