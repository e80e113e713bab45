// Errors thrown by native code. The binding maps `kind` to the JS error class,
// so a wrong argument surfaces as TypeError/RangeError and a CUDA failure as Error
// carrying the CUDA error text.
#pragma once
#include <stdexcept>
#include <string>

namespace attn {

enum class ErrorKind { Error, TypeError, RangeError };

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& msg) : std::runtime_error(msg), kind_(kind) {}
  ErrorKind kind() const { return kind_; }

 private:
  ErrorKind kind_;
};

[[noreturn]] inline void throwRange(const std::string& msg) { throw Error(ErrorKind::RangeError, msg); }
[[noreturn]] inline void throwType(const std::string& msg) { throw Error(ErrorKind::TypeError, msg); }
[[noreturn]] inline void throwError(const std::string& msg) { throw Error(ErrorKind::Error, msg); }

}  // namespace attn
