// Converting between JS typed arrays and tensor element bytes (f16/bf16/fp8 happen here, natively:
// Node 20 has no Float16Array).
#pragma once
#include <napi.h>

#include <cstdint>
#include <vector>

#include "common/dtype.h"

namespace binding {

// Encodes every element of a numeric TypedArray (or Array of numbers) as `dtype`.
// Integer dtypes require integral values in range (RangeError naming `what` otherwise).
std::vector<uint8_t> encode(Napi::Value data, attn::DType dtype, const char* what, int64_t* count);

// JS result of a read: f32/f16/bf16/fp8 -> Float32Array, int8 -> Int8Array, int32 -> Int32Array.
// decodeInPlace runs off-thread (turns raw element bytes into the result's element bytes);
// toTypedArray runs on the JS thread.
void decodeInPlace(std::vector<uint8_t>& bytes, attn::DType dtype);
Napi::Value toTypedArray(Napi::Env env, std::vector<uint8_t>&& bytes, attn::DType dtype);

}  // namespace binding
