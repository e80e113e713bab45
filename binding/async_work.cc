#include "async_work.h"

#include <exception>

#include "errors.h"

namespace binding {
namespace {

class FenceWorker final : public Napi::AsyncWorker {
 public:
  FenceWorker(Napi::Env env, attn::FencePtr fence, OffThreadStep work, ResolveStep resolve)
      : Napi::AsyncWorker(env, "attn-cuda:wait"),
        deferred_(Napi::Promise::Deferred::New(env)),
        fence_(std::move(fence)),
        work_(std::move(work)),
        resolve_(std::move(resolve)) {}

  Napi::Promise promise() const { return deferred_.Promise(); }

 protected:
  void Execute() override {
    try {
      if (fence_) fence_->wait();
      if (work_) work_();
    } catch (...) {
      error_ = std::current_exception();
      SetError("failed");  // the real error is rethrown in OnError
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    try {
      deferred_.Resolve(resolve_ ? resolve_(env) : env.Undefined());
    } catch (const Napi::Error& e) {
      rejectOrDrop([&] { return e.Value(); });
    } catch (const std::exception& e) {
      rejectOrDrop([&] { return toJsError(env, e).Value(); });
    }
  }

  void OnError(const Napi::Error&) override {
    Napi::Env env = Env();
    try {
      std::rethrow_exception(error_);
    } catch (const std::exception& e) {
      rejectOrDrop([&] { return toJsError(env, e).Value(); });
    } catch (...) {
      rejectOrDrop([&] { return Napi::Error::New(env, "unknown native error").Value(); });
    }
  }

  // While a worker thread's environment shuts down with this promise pending, every call into
  // JS throws (the resolve step, then the rejection too). Nothing can observe the promise any
  // more, so it is dropped: an exception out of this libuv callback would abort the process.
  template <typename MakeError>
  void rejectOrDrop(MakeError make) {
    try {
      deferred_.Reject(make());
    } catch (...) {
    }
  }

 private:
  Napi::Promise::Deferred deferred_;
  attn::FencePtr fence_;
  OffThreadStep work_;
  ResolveStep resolve_;
  std::exception_ptr error_;
};

}  // namespace

Napi::Promise whenDone(Napi::Env env, attn::FencePtr fence, OffThreadStep work, ResolveStep resolve) {
  auto* w = new FenceWorker(env, std::move(fence), std::move(work), std::move(resolve));  // owned by libuv: deletes itself
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

}  // namespace binding
