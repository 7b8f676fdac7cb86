// Shared helpers for the coldstart addon: the AsyncWorker "baton" pattern and argument helpers.
#pragma once
#include <napi.h>

#include <string>
#include <utility>

namespace coldstart {

// Every blocking native call is a baton: a plain C++ struct whose Run() executes off the main thread
// (no N-API calls allowed there) and whose ToJS() builds the result on the main thread. Errors are set as
// `error` (+ a stable `code`) and become a rejected promise carrying both.
struct Baton {
  std::string error;
  std::string code = "NATIVE";
  virtual ~Baton() = default;
  virtual void Run() = 0;
  virtual Napi::Value ToJS(Napi::Env env) = 0;
  void Fail(std::string c, std::string msg) {
    code = std::move(c);
    error = std::move(msg);
  }
};

template <typename B>
class BatonWorker : public Napi::AsyncWorker {
 public:
  BatonWorker(Napi::Env env, B* baton) : Napi::AsyncWorker(env), baton_(baton), deferred_(Napi::Promise::Deferred::New(env)) {}
  ~BatonWorker() override { delete baton_; }
  void Execute() override {
    try {
      baton_->Run();
    } catch (const std::exception& e) {
      baton_->Fail("NATIVE", e.what());
    }
    if (!baton_->error.empty()) SetError(baton_->error);
  }
  void OnOK() override {
    Napi::HandleScope scope(Env());
    deferred_.Resolve(baton_->ToJS(Env()));
  }
  void OnError(const Napi::Error& e) override {
    Napi::HandleScope scope(Env());
    Napi::Error err = Napi::Error::New(Env(), baton_->error);
    err.Set("code", Napi::String::New(Env(), baton_->code));
    deferred_.Reject(err.Value());
  }
  Napi::Promise Promise() { return deferred_.Promise(); }

 private:
  B* baton_;
  Napi::Promise::Deferred deferred_;
};

// Queues a baton and returns its promise.
template <typename B>
Napi::Value Queue(Napi::Env env, B* baton) {
  auto* w = new BatonWorker<B>(env, baton);
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

// Argument errors all read alike: "<fn>: <what> expected <type>".
inline Napi::TypeError ArgError(Napi::Env env, const char* fn, const char* what, const char* expected) {
  return Napi::TypeError::New(env, std::string(fn) + ": " + what + " expected " + expected);
}

inline bool OptBool(const Napi::Object& o, const char* key, bool dflt) {
  if (!o.Has(key)) return dflt;
  Napi::Value v = o.Get(key);
  return v.IsBoolean() ? v.As<Napi::Boolean>().Value() : dflt;
}
inline double OptNumber(const Napi::Object& o, const char* key, double dflt) {
  if (!o.Has(key)) return dflt;
  Napi::Value v = o.Get(key);
  return v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : dflt;
}

double MonotonicSeconds();

}  // namespace coldstart
