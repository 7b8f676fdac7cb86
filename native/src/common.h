// Shared helpers for the coldstart addon: the AsyncWorker "baton" pattern and argument helpers.
#pragma once
#include <napi.h>

#include <cerrno>
#include <cstdint>
#include <new>
#include <string>
#include <utility>

#include "base.h"
#include "checked.h"

namespace coldstart {

// Every blocking native call is a baton: a plain C++ struct whose Run() executes off the main thread
// (no N-API calls allowed there) and whose ToJS() builds the result on the main thread. Errors are set as
// `error` (+ a stable `code`) and become a rejected promise carrying both.
struct Baton {
  std::string error;
  std::string code = ErrName(Err::Native);
  virtual ~Baton() = default;
  virtual void Run() = 0;
  virtual Napi::Value ToJS(Napi::Env env) = 0;
  void Fail(std::string c, std::string msg) {
    code = std::move(c);
    error = std::move(msg);
  }
  void Fail(Err c, std::string msg) { Fail(ErrName(c), std::move(msg)); }
};

template <typename B>
class BatonWorker : public Napi::AsyncWorker {
 public:
  BatonWorker(Napi::Env env, B* baton) : Napi::AsyncWorker(env), baton_(baton), deferred_(Napi::Promise::Deferred::New(env)) {}
  ~BatonWorker() override { delete baton_; }
  void Execute() override {
    try {
      baton_->Run();
    } catch (const std::bad_alloc&) {
      baton_->Fail(Err::Env, "out of host memory");
    } catch (const std::exception& e) {
      baton_->Fail(Err::Native, e.what());
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

// Argument errors all read alike: "<fn>: <what> expected <type>", and carry code BAD_ARG.
inline Napi::TypeError ArgError(Napi::Env env, const char* fn, const char* what, const char* expected) {
  Napi::TypeError e = Napi::TypeError::New(env, std::string(fn) + ": " + what + " expected " + expected);
  e.Set("code", Napi::String::New(env, ErrName(Err::BadArg)));
  return e;
}
inline Napi::TypeError ArgError(Napi::Env env, const char* fn, const std::string& what, const char* expected) {
  return ArgError(env, fn, what.c_str(), expected);
}

// A JS number that must be a whole number in [0, 2^53): NaN, negatives, fractions and larger values are
// refused with BAD_ARG before they can become a size or an offset.
inline uint64_t ArgU64(Napi::Env env, const char* fn, const std::string& what, const Napi::Value& v) {
  uint64_t out = 0;
  if (!v.IsNumber() || !DoubleToU64(v.As<Napi::Number>().DoubleValue(), &out))
    throw ArgError(env, fn, what, "a whole number of bytes from 0 to 2^53-1");
  return out;
}
inline uint64_t ArgU64(Napi::Env env, const char* fn, const std::string& what, double d) {
  uint64_t out = 0;
  if (!DoubleToU64(d, &out)) throw ArgError(env, fn, what, "a whole number of bytes from 0 to 2^53-1");
  return out;
}
// A whole number in [lo, hi]; `range` reads like "1..256".
inline int64_t ArgInt(Napi::Env env, const char* fn, const std::string& what, const Napi::Value& v, int64_t lo, int64_t hi) {
  int64_t out = 0;
  if (!v.IsNumber() || !DoubleToInt(v.As<Napi::Number>().DoubleValue(), lo, hi, &out)) {
    std::string range = "a whole number from " + std::to_string(lo) + " to " + std::to_string(hi);
    throw ArgError(env, fn, what, range.c_str());
  }
  return out;
}
// Optional members: absent or undefined → the default; present with a wrong type or value → BAD_ARG.
inline uint64_t OptU64(Napi::Env env, const char* fn, const Napi::Object& o, const char* key, uint64_t dflt) {
  if (!o.Has(key) || o.Get(key).IsUndefined()) return dflt;
  return ArgU64(env, fn, std::string("options.") + key, o.Get(key));
}
inline int64_t OptInt(Napi::Env env, const char* fn, const Napi::Object& o, const char* key, int64_t dflt, int64_t lo, int64_t hi) {
  if (!o.Has(key) || o.Get(key).IsUndefined()) return dflt;
  return ArgInt(env, fn, std::string("options.") + key, o.Get(key), lo, hi);
}

// A typed array member, or false when absent; the wrong kind of array is refused.
template <typename T>
bool OptTyped(Napi::Env env, const char* fn, const Napi::Object& o, const char* key, napi_typedarray_type type, const char* expected, T* out) {
  if (!o.Has(key) || o.Get(key).IsUndefined()) return false;
  Napi::Value v = o.Get(key);
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != type) throw ArgError(env, fn, std::string("options.") + key, expected);
  *out = v.As<T>();
  return true;
}

// options.cancel (an Int32Array) and options.progress (a BigUint64Array): memory shared with JS through a
// SharedArrayBuffer, read and added to atomically by the workers and held by a reference for the baton's life.
// Absent: left null. The wrong kind of array, or an empty one: BAD_ARG. The baton has `int32_t* cancel`,
// `uint64_t* progress` and `Napi::ObjectReference cancelRef, progressRef`.
template <typename B>
void OptSharedFlags(Napi::Env env, const char* fn, const Napi::Object& o, B* b) {
  Napi::Int32Array cancel;
  if (OptTyped(env, fn, o, "cancel", napi_int32_array, "an Int32Array on a SharedArrayBuffer", &cancel)) {
    if (cancel.ElementLength() < 1) throw ArgError(env, fn, "options.cancel", "at least one element");
    b->cancel = cancel.Data();
    b->cancelRef = Napi::Persistent(cancel.As<Napi::Object>());
  }
  Napi::BigUint64Array progress;
  if (OptTyped(env, fn, o, "progress", napi_biguint64_array, "a BigUint64Array on a SharedArrayBuffer (read it with Atomics.load)", &progress)) {
    if (progress.ElementLength() < 1) throw ArgError(env, fn, "options.progress", "at least one element");
    b->progress = progress.Data();
    b->progressRef = Napi::Persistent(progress.As<Napi::Object>());
  }
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

}  // namespace coldstart
