// restore's warm-up of free memory: warmMemory({bytes, threads, hugePages}) faults `bytes` of fresh anonymous memory in
// on `threads` threads at once (one write to every 4 KiB page; MADV_HUGEPAGE first where asked), waits until every
// thread has touched its share, then unmaps it all. Why: in a virtual machine whose balloon reports free pages to the
// hypervisor (virtio-balloon free page reporting), memory free for a few seconds is handed back to the host, and the
// next process to fault it in pays the host's fault as well, one page at a time — CRIU's restorer, which fills a
// restored process's memory on one thread, then runs at that rate. Touched here on many threads, the same physical
// pages are backed again by the time they are freed, and the restorer's faults, taking the pages just freed, are the
// guest's alone. The decision (whether, how much, how many threads) is restore.ts's; this only touches and frees.
// Every mapping is unmapped on every path (RAII), also when a thread could not be started.
#include <napi.h>

#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <sys/mman.h>
#include <unistd.h>

#include "common.h"

namespace coldstart {

namespace {

constexpr uint64_t kHuge = uint64_t{2} << 20;  // a share is a whole number of 2 MiB, so each can be one huge page

// One anonymous private mapping, unmapped when it goes out of scope.
class Mapping {
 public:
  explicit Mapping(size_t len) : len_(len) {
    void* p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    p_ = p == MAP_FAILED ? nullptr : static_cast<char*>(p);
  }
  ~Mapping() {
    if (p_) munmap(p_, len_);
  }
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  char* get() const { return p_; }
  size_t size() const { return len_; }

 private:
  char* p_ = nullptr;
  size_t len_ = 0;
};

// Every thread holds its pages until all have touched theirs: a thread that freed early would hand its pages to one
// still touching, and fewer distinct pages would end up warm.
class Gate {
 public:
  explicit Gate(int n) : left_(n) {}
  void ArriveAndWait() {
    std::unique_lock<std::mutex> l(m_);
    if (--left_ <= 0) {
      cv_.notify_all();
      return;
    }
    cv_.wait(l, [this] { return left_ <= 0; });
  }
  void Drop() {  // a thread that will never arrive (it could not be started)
    std::lock_guard<std::mutex> l(m_);
    if (--left_ <= 0) cv_.notify_all();
  }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  int left_;
};

struct WarmBaton : Baton {
  uint64_t bytes = 0;
  int threads = 1;
  bool hugePages = true;
  uint64_t touched = 0;  // bytes faulted in (a share whose mmap failed counts nothing)
  int started = 0;
  double touchSeconds = 0;  // until every thread had touched its share
  double seconds = 0;       // until everything was unmapped again

  void Run() override {
    const double t0 = MonotonicSeconds();
    const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
    // Shares of whole 2 MiB: bytes rounded up to 2 MiB, split as evenly as that allows.
    uint64_t units = bytes / kHuge + (bytes % kHuge ? 1 : 0);
    const int n = static_cast<int>(std::max<uint64_t>(1, std::min<uint64_t>(static_cast<uint64_t>(threads), units)));
    std::vector<uint64_t> share(static_cast<size_t>(n), 0);
    for (int i = 0; i < n; ++i) share[static_cast<size_t>(i)] = (units / n + (static_cast<uint64_t>(i) < units % n ? 1 : 0)) * kHuge;
    Gate gate(n);
    std::mutex m;
    uint64_t total = 0;
    double touchedAt = 0;
    auto work = [&](uint64_t len) {
      uint64_t mine = 0;
      {
        Mapping map(static_cast<size_t>(len));
        if (map.get()) {
          if (hugePages) madvise(map.get(), map.size(), MADV_HUGEPAGE);  // advice only: 4 KiB pages where refused
          volatile char* p = map.get();
          for (uint64_t o = 0; o < len; o += page) p[o] = 1;
          mine = len;
        }
        gate.ArriveAndWait();
        std::lock_guard<std::mutex> l(m);
        total += mine;
        touchedAt = std::max(touchedAt, MonotonicSeconds());
      }  // unmapped here, once every thread has touched its share
    };
    std::vector<std::thread> pool;
    pool.reserve(static_cast<size_t>(n) - 1);
    for (int i = 1; i < n; ++i) {
      try {
        pool.emplace_back(work, share[static_cast<size_t>(i)]);
      } catch (const std::system_error&) {
        gate.Drop();  // this share is not warmed; the others go on
      }
    }
    work(share[0]);
    for (auto& t : pool) t.join();
    started = static_cast<int>(pool.size()) + 1;
    touched = total;
    touchSeconds = touchedAt > t0 ? touchedAt - t0 : 0;
    seconds = MonotonicSeconds() - t0;
  }

  Napi::Value ToJS(Napi::Env env) override {
    Napi::Object o = Napi::Object::New(env);
    o.Set("bytes", Napi::Number::New(env, static_cast<double>(touched)));
    o.Set("threads", started);
    o.Set("touchSeconds", Napi::Number::New(env, touchSeconds));
    o.Set("seconds", Napi::Number::New(env, seconds));
    return o;
  }
};

Napi::Value WarmMemory(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* fn = "warmMemory";
  if (info.Length() < 1 || !info[0].IsObject()) throw ArgError(env, fn, "options", "{bytes, threads, hugePages}");
  Napi::Object o = info[0].As<Napi::Object>();
  // At most 1 TiB, so the rounding up to 2 MiB and every share fit size_t and a double without loss.
  const uint64_t bytes = ArgU64(env, fn, "options.bytes", o.Get("bytes"));
  if (bytes == 0 || bytes > (uint64_t{1} << 40)) throw ArgError(env, fn, "options.bytes", "a byte count from 1 to 2^40");
  const int threads = static_cast<int>(OptInt(env, fn, o, "threads", 8, 1, 256));
  const bool huge = OptBool(o, "hugePages", true);
  auto* b = new WarmBaton();
  b->bytes = bytes;
  b->threads = threads;
  b->hugePages = huge;
  return Queue(env, b);
}

}  // namespace

void InitMemWarm(Napi::Env env, Napi::Object exports) {
  exports.Set("warmMemory", Napi::Function::New(env, WarmMemory, "warmMemory"));
}

}  // namespace coldstart
