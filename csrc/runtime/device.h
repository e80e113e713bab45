// Where a tensor lives: the host or one CUDA device.
#pragma once
#include <string>

namespace attn {

struct Device {
  enum class Kind { Cpu = 0, Cuda = 1 };
  Kind kind = Kind::Cpu;
  int index = 0;

  bool isCuda() const { return kind == Kind::Cuda; }
  std::string str() const { return isCuda() ? "cuda:" + std::to_string(index) : "cpu"; }
  bool operator==(const Device& o) const { return kind == o.kind && index == o.index; }
};

}  // namespace attn
