// The gpu-load engine, free of N-API: puts byte ranges of files into GPU memory (or host memory) through the
// dlopen'd driver API, timed. The Node addon (loader.cc: gpuLoad) and the C library for servers (capi.cc:
// libcoldstart_load.so, called from Python) both run this one engine; loader.cc's head comment describes its paths.
#pragma once
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "base.h"
#include "checked.h"
#include "cuda_api.h"
#include "handles.h"

namespace coldstart {

constexpr uint64_t kAlign = 4096;             // O_DIRECT offset/length/address alignment
constexpr uint64_t kDevRound = 2 << 20;       // the driver hands out device memory in 2 MiB pages
constexpr uint64_t kDevMargin = 64ull << 20;  // left free on the card besides the allocations
constexpr uint64_t kMaxChunk = 1ull << 30;    // one ring buffer
constexpr uint64_t kMaxRing = 64ull << 30;    // buffers × chunkBytes
constexpr uint64_t kMaxSample = 64ull << 20;  // one verify sample (it is allocated twice)
constexpr size_t kOpenFiles = 32;             // descriptors open at once per pool (buffered, O_DIRECT), any file count
constexpr int kMaxThreads = 256;              // reader threads

// The engine's bounds on what a caller chooses, one answer for each front-end (gpuLoad's options, cs_load's
// arguments), which words its own refusal before anything opens: a chunk is whole 4 KiB pages up to kMaxChunk;
// the ring (buffers × chunk) stays within kMaxRing, the product overflow-checked.
inline bool ChunkBytesOk(uint64_t c) { return c >= kAlign && c % kAlign == 0 && c <= kMaxChunk; }
inline bool RingOk(uint64_t chunkBytes, int buffers) {
  uint64_t ring = 0;
  return buffers > 0 && MulU64(chunkBytes, static_cast<uint64_t>(buffers), &ring) && ring <= kMaxRing;
}

std::string Errno(int e);

struct Interval {
  double a, b;
  uint32_t file;
};
double UnionLength(std::vector<Interval> v);
double IntersectLength(const std::vector<Interval>& x, const std::vector<Interval>& y);

struct FileSpec {
  std::string path;
  uint64_t begin = 0, end = 0;  // absolute byte range to load
  int device = -1;              // CUDA ordinal, -1 in host mode
  // runtime: descriptors come from the baton's pools (fds, fdsDirect), opened when a chunk of the file is read
  std::atomic<bool> directOk{false};
  Mapping map;             // path "mapped" (the descriptor is closed once the file is mapped)
  CUdeviceptr dptr = 0;    // owned by RunJob's DeviceMem (freed on the job's thread, in its context), or given
  HostMem host;            // sink "memory", when the engine allocates it
  char* hostDst = nullptr; // sink "memory": where the bytes go (host.get(), or given)
  // Given destinations (the C library: a server's own tensors): the bytes go there; nothing is allocated or freed.
  CUdeviceptr givenDptr = 0;
  char* givenHost = nullptr;
  bool Given() const { return givenDptr != 0 || givenHost != nullptr; }
  // keep: the allocation's CUDA IPC handle (128 hex digits), for another process to open (restore --stage)
  std::string ipcHex;
  uint64_t size() const { return end - begin; }
};

struct Chunk {
  uint32_t file;
  uint64_t readOff, readLen, skip, copyLen, dest;
};

struct Sample {
  uint32_t file;
  uint64_t offset, length;  // relative to the file's begin
};

enum class Sink { Device, Memory, Discard };
enum class CopyPath { Ring, Mapped };

// One ring buffer. Members are destroyed in reverse order: events, then the registration, then the memory.
struct Buf {
  HostMem host;       // posix_memalign'ed (host mode, or ring "register")
  PinnedMem pinned;   // cuMemHostAlloc'ed (ring "alloc")
  Registration reg;   // pins `host` (ring "register")
  char* p = nullptr;  // whichever of the above holds the bytes
  Event evStart, evEnd;
  bool pending = false;
  uint32_t file = 0;
};

struct LoadEngine;

// What a load with `keep` leaves on the card after it returns (restore --stage): the files' allocations and a
// reference on their device's primary context, freed together (in that context) when the holder lets go.
struct Kept {
  PrimaryCtx ctx;  // declared first: released last, after the memory
  std::vector<DeviceMem> mems;
  uint64_t bytes = 0;
  Kept() = default;
  Kept(const Kept&) = delete;
  Kept& operator=(const Kept&) = delete;
  ~Kept() {
    if (ctx.get()) ctx.Current();
    mems.clear();
  }
};

// Reads of what the page cache does not hold go to the disk at most `limit` at a time, admitted lowest (file, offset)
// first: the streams a disk reads fastest, in the file's order, instead of one per reader thread racing each other
// (and racing a prefetch that streams the same file in order). Reads of resident chunks never wait here.
class DiskGate {
 public:
  using Key = std::pair<uint32_t, uint64_t>;
  // Held while a cold chunk is read; leaving the gate lets the next lowest waiting reader in.
  class Pass {
   public:
    Pass() = default;
    explicit Pass(DiskGate* g) : g_(g) {}
    Pass(Pass&& o) noexcept : g_(o.g_) { o.g_ = nullptr; }
    Pass& operator=(Pass&& o) noexcept {
      if (this != &o) {
        if (g_) g_->Leave();
        g_ = o.g_;
        o.g_ = nullptr;
      }
      return *this;
    }
    Pass(const Pass&) = delete;
    Pass& operator=(const Pass&) = delete;
    ~Pass() {
      if (g_) g_->Leave();
    }

   private:
    DiskGate* g_ = nullptr;
  };
  Pass Enter(int limit, Key k) {
    std::unique_lock<std::mutex> lk(mu_);
    waiting_.insert(k);
    cv_.wait(lk, [&] { return inUse_ < limit && *waiting_.begin() == k; });
    waiting_.erase(waiting_.begin());
    inUse_++;
    maxInUse_ = std::max(maxInUse_, inUse_);
    lk.unlock();
    cv_.notify_all();  // with room for more than one, the next lowest may enter too
    return Pass(this);
  }
  int MaxInUse() {
    std::lock_guard<std::mutex> g(mu_);
    return maxInUse_;
  }

 private:
  void Leave() {
    {
      std::lock_guard<std::mutex> g(mu_);
      inUse_--;
    }
    cv_.notify_all();
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::multiset<Key> waiting_;
  int inUse_ = 0, maxInUse_ = 0;
};

// The ring's free buffers: a reader takes one (waiting while all are in use) and gives it back.
class FreeList {
 public:
  explicit FreeList(int n) {
    for (int i = 0; i < n; i++) q_.push_back(i);
  }
  int Take() {
    std::unique_lock<std::mutex> lk(mu_);
    cv_.wait(lk, [&] { return !q_.empty(); });
    int i = q_.front();
    q_.pop_front();
    return i;
  }
  void Give(int i) {
    {
      std::lock_guard<std::mutex> lk(mu_);
      q_.push_back(i);
    }
    cv_.notify_one();
  }

 private:
  std::deque<int> q_;
  std::mutex mu_;
  std::condition_variable cv_;
};

// Tensor-parallel loads (src/load/tp.ts planTp): one copy of a strided region of a chunk to one rank's buffer.
// src is an absolute file offset inside the chunk's wanted bytes; row i goes from src + i·pitch to dst + i·dstPitch.
struct CopyOp {
  uint32_t chunk, rank;
  uint64_t src, width, height, pitch, dst, dstPitch;
};

// One rank of a tensor-parallel load: its device (-1: host memory), its buffer, its finish time.
struct TpRank {
  int device = -1;
  uint64_t bytes = 0;
  std::unique_ptr<PrimaryCtx> ctx;
  DeviceMem dmem;
  HostMem hmem;
  std::vector<Stream> streams;
  Event ref;
  double tRef = 0;
  double finish = 0;  // seconds from the load's start to its last copy's end
  std::mutex mu;
  TpRank() = default;
  TpRank(const TpRank&) = delete;
  TpRank& operator=(const TpRank&) = delete;
  // What a failed load left on the card, released in this rank's context before the context goes (RunTp releases
  // it itself, on its own thread, when the load ends normally).
  ~TpRank() {
    if (ctx && ctx->get() && (dmem || ref || !streams.empty())) {
      ctx->Current();
      streams.clear();
      ref.reset();
      dmem.reset();
    }
  }
};

// One device's (or the host's) pipeline.
struct Job {
  LoadEngine* owner = nullptr;
  int device = -1;
  std::string name;
  std::vector<uint32_t> files;
  std::vector<Chunk> chunks;
  // results
  double t0 = 0, tStart = 0, t1 = 0, setupSeconds = 0, allocSeconds = 0, ringSeconds = 0, registerSeconds = 0;
  bool pinned = false;
  uint64_t bytes = 0;
  std::vector<Interval> reads, copies;
  uint64_t checked = 0, checkedBytes = 0, mismatches = 0;
  std::string firstMismatch;
  std::string code, error;
  std::unique_ptr<Kept> kept;  // keep: this job's allocations, handed to the caller
  // A worker's timings, added when it ends.
  void Merge(double ring, double reg, const std::vector<Interval>& r, const std::vector<Interval>& c) {
    std::lock_guard<std::mutex> g(mu);
    ringSeconds += ring;
    registerSeconds += reg;
    reads.insert(reads.end(), r.begin(), r.end());
    copies.insert(copies.end(), c.begin(), c.end());
  }
  void Fail(Err c, const std::string& m) {
    std::lock_guard<std::mutex> g(mu);
    if (error.empty()) {
      code = ErrName(c);
      error = m;
    }
  }
  std::mutex mu;
};


struct LoadEngine {
  // the outcome: error empty when the load succeeded, else a message and ErrName's code
  std::string error, code;
  void Fail(Err c, const std::string& msg) { Fail(std::string(ErrName(c)), msg); }
  void Fail(const std::string& c, const std::string& msg) {
    code = c;
    error = msg;
  }
  // inputs (all validated by GpuLoad before the baton is queued)
  bool gpu = false;
  Sink sink = Sink::Device;
  CopyPath path = CopyPath::Ring;
  std::vector<std::unique_ptr<FileSpec>> files;
  std::unique_ptr<FdPool> fds, fdsDirect;  // at most kOpenFiles each open at a time, however many files
  std::vector<Chunk> chunks;
  std::vector<Sample> samples;
  uint64_t chunkBytes = 16 << 20;
  int threads = 8, buffers = 16, streams = 4;
  bool direct = false, returnHost = false, testCorrupt = false;
  // Leave the loaded allocations on the card (Job::kept) with an IPC handle each (FileSpec::ipcHex): restore --stage.
  bool keep = false;
  std::atomic<uint32_t> directRefused{0};  // files read through the page cache after O_DIRECT was refused
  // Reads of chunks the page cache does not hold whole, when watchCold (cs_load's loads; gpuLoad's are left as they
  // were, unasked): at most diskStreams at once (0: no bound; the gate still counts them), and with coldDirect read
  // around the page cache (O_DIRECT into the ring; resident chunks are still read from it). What the load had to get
  // from the disk is counted once, before the first read (CountCold): a chunk's own check, just before it is read,
  // finds pages the kernel's readahead has put in flight since, and only decides whether it waits at the gate.
  bool watchCold = false, coldDirect = false;
  int diskStreams = 0;
  DiskGate diskGate;
  std::atomic<uint64_t> coldBytes{0};      // bytes of the ranges not in the page cache when the load began
  std::atomic<bool> coldUnknown{false};    // residency could not be told for some chunk (coldBytes is then a lower bound)
  std::atomic<bool> registerRing{false};
  int32_t* cancel = nullptr;     // read atomically (a SharedArrayBuffer for Node), or null
  uint64_t* progress = nullptr;  // added to atomically (a SharedArrayBuffer for Node), or null
  // tensor-parallel (tp > 0): each chunk read once, its ops copied to every rank that needs them
  std::vector<std::unique_ptr<TpRank>> tpRanks;
  std::vector<CopyOp> ops;  // grouped by chunk, in chunk order
  std::vector<size_t> opStart;  // chunk i's ops: [opStart[i], opStart[i + 1])
  uint64_t tpChecked = 0, tpCheckedBytes = 0, tpMismatches = 0;
  std::string tpFirstMismatch;
  // shared state
  std::atomic<bool> failed{false};
  // outputs
  std::vector<std::unique_ptr<Job>> jobs;
  double seconds = 0;
  std::vector<std::string> notes;
  std::mutex notesMu;

  bool Cancelled() const { return cancel && __atomic_load_n(cancel, __ATOMIC_RELAXED) != 0; }
  // The next chunk for a worker (ring reader or mapped copier) into ci; false when the plan is done, another
  // worker failed, or the load was cancelled (then the job fails with Interrupted and the others stop too).
  bool ClaimChunk(Job& job, std::atomic<size_t>& next, size_t& ci) {
    if (failed.load(std::memory_order_relaxed)) return false;
    if (Cancelled()) {
      job.Fail(Err::Interrupted, "the load was cancelled");
      failed = true;
      return false;
    }
    ci = next.fetch_add(1);
    return ci < job.chunks.size();
  }
  void Note(const std::string& n) {
    std::lock_guard<std::mutex> g(notesMu);
    if (std::find(notes.begin(), notes.end(), n) == notes.end()) notes.push_back(n);
  }
  // One note for the first file whose O_DIRECT open or read was refused (a filesystem refuses it for all of
  // them), counted; Run() adds how many files it was in all.
  void DirectRefused(const std::string& path, const std::string& why) {
    if (directRefused.fetch_add(1) == 0) Note("O_DIRECT is not supported for " + path + " (" + why + "); it was read through the page cache");
  }
  void AddDone(uint64_t n) {
    if (progress) __atomic_add_fetch(progress, n, __ATOMIC_RELAXED);
  }

  void Run();
  bool CheckFiles();
  void CountCold();
  void RunTp();
  void TpReader(Job& job, std::vector<Buf>& bufs, std::vector<std::vector<Event>>& evs, std::vector<std::vector<char>>& pending, FreeList& ring,
                std::atomic<size_t>& next, int thread);
  void TpVerify(Job& job);
  void RunJob(Job& job);
  void Reader(Job& job, const PrimaryCtx& ctx, std::vector<Buf>& bufs, FreeList& ring, std::atomic<size_t>& next, CUstream stream, CUevent ref, double tRef);
  void MappedWorker(Job& job, const PrimaryCtx& ctx, std::atomic<size_t>& next, CUstream stream, CUevent ref, double tRef);
  bool ReadChunk(const Chunk& c, char* dst, Job& job);
  bool AllocBuf(Job& job, Buf& x);
  void Verify(Job& job);
  void Keep(Job& job, std::vector<DeviceMem>& dest);
};


}  // namespace coldstart
