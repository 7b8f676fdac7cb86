// gpu-load engine (issues 4, 15): puts byte ranges of files (the data sections of safetensors files, validated in
// TypeScript first and again here) into GPU memory through the dlopen'd driver API, timed.
//
// Two copy paths (options.path):
//   ring    reader threads ──pread (optionally O_DIRECT)──▶ ring of pinned host buffers ──cuMemcpyHtoDAsync (N streams)──▶
//           one device allocation per file. A buffer goes back to the ring as soon as its copy is enqueued; the
//           next reader that takes it waits on the buffer's end event first, so reads overlap the DMA.
//   mapped  the files are mmap'ed read-only; each worker pins one chunk of the mapping in place with
//           cuMemHostRegister(READ_ONLY) — which faults the page-cache pages in — and the GPU DMAs straight from
//           the page cache: no host copy at all. Meant for warm caches (a cold fault-in reads one page at a time).
//
// Every chunk's read (or registration) is timed on the host clock and every copy with a pair of CUDA events placed
// on a common timeline, which gives read-busy, copy-busy and overlap time. The chunk plan (which bytes go where) is
// computed in TypeScript (planChunks) and handed over as a Float64Array; every number in it is checked here before
// it becomes a uint64_t (checked.h), and every sum is overflow-checked, before anything is allocated.
//
// With no driver the ring path runs with plain aligned host buffers and the "copy" is a memcpy into host memory
// (sink "memory") or nothing at all (sink "discard", used for read-bandwidth limits and cache warming).
//
// Everything acquired is owned by a handle from handles.h. progress is a BigUint64Array (on a SharedArrayBuffer)
// that the workers add to atomically and JS reads with Atomics.load.
//
// With options.keep the allocations stay on the card after the load (restore --stage), each with a CUDA IPC handle
// (files[i].ipcHandle) another process opens, until gpuRelease(keptId).
//
// Exports: gpuLoad(options), gpuRelease(id), cudaDeviceUuids(). pagecache.cc adds pageCache/prefetch, limits.cc transferLimits/deviceMemInfo.
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "common.h"
#include "load_engine.h"

namespace coldstart {

void InitPageCache(Napi::Env env, Napi::Object exports);  // pagecache.cc
void InitLimits(Napi::Env env, Napi::Object exports);     // limits.cc

namespace {

// What loads with `keep` left on the card, by id, until gpuRelease(id) (or the process's end, when the driver frees
// it). Touched on the JS thread only (ToJS, GpuRelease). Never destroyed: at exit the driver may already be torn down,
// and what is still kept goes with the process.
auto& g_kept = *new std::map<uint32_t, std::vector<std::unique_ptr<Kept>>>();
uint32_t g_keptNext = 1;

// gpuLoad's baton: the engine, and the JS arrays its cancel flag and progress counter live in.
struct LoadBaton : Baton {
  LoadEngine e;
  int32_t* cancel = nullptr;
  uint64_t* progress = nullptr;
  Napi::ObjectReference cancelRef, progressRef;
  void Run() override {
    e.cancel = cancel;
    e.progress = progress;
    e.Run();
    if (!e.error.empty()) Fail(e.code, e.error);
  }
  Napi::Value ToJS(Napi::Env env) override;
};

Napi::Value LoadBaton::ToJS(Napi::Env env) {
  const bool gpu = e.gpu, direct = e.direct, returnHost = e.returnHost;
  const CopyPath path = e.path;
  const double seconds = e.seconds;
  const auto& jobs = e.jobs;
  const auto& files = e.files;
  const auto& samples = e.samples;
  const auto& notes = e.notes;
  Napi::Object o = Napi::Object::New(env);
  o.Set("mode", gpu ? "gpu" : "host");
  o.Set("path", path == CopyPath::Mapped ? "mapped" : "ring");
  o.Set("seconds", seconds);
  std::vector<Interval> reads, copies;
  uint64_t bytes = 0;
  double setup = 0;
  Napi::Array devs = Napi::Array::New(env, jobs.size());
  std::map<uint32_t, std::pair<double, double>> span;  // per file: first read start, last copy end
  for (size_t i = 0; i < jobs.size(); i++) {
    Job& j = *jobs[i];
    reads.insert(reads.end(), j.reads.begin(), j.reads.end());
    copies.insert(copies.end(), j.copies.begin(), j.copies.end());
    bytes += j.bytes;
    setup = std::max(setup, j.setupSeconds);
    Napi::Object d = Napi::Object::New(env);
    d.Set("index", j.device);
    if (!j.name.empty()) d.Set("name", j.name);
    d.Set("bytes", static_cast<double>(j.bytes));
    d.Set("seconds", j.t1 - j.t0);
    d.Set("setupSeconds", j.setupSeconds);
    d.Set("allocSeconds", j.allocSeconds);
    d.Set("ringSeconds", j.ringSeconds);
    d.Set("registerSeconds", j.registerSeconds);
    d.Set("readSeconds", UnionLength(j.reads));
    d.Set("copySeconds", UnionLength(j.copies));
    devs.Set(i, d);
    for (const Interval& x : j.reads) {
      auto it = span.find(x.file);
      if (it == span.end()) {
        span[x.file] = {x.a, x.b};
      } else {
        it->second.first = std::min(it->second.first, x.a);
        it->second.second = std::max(it->second.second, x.b);
      }
    }
    for (const Interval& x : j.copies) {
      auto& s = span[x.file];
      s.second = std::max(s.second, x.b);
    }
  }
  o.Set("bytes", static_cast<double>(bytes));
  o.Set("setupSeconds", setup);
  double readBusy = UnionLength(reads), copyBusy = UnionLength(copies);
  o.Set("readSeconds", readBusy);
  o.Set("copySeconds", copyBusy);
  o.Set("overlapSeconds", IntersectLength(reads, copies));
  // Sum of per-chunk read times over all threads (≥ readSeconds when reads run in parallel).
  double readThread = 0;
  for (const Interval& x : reads) readThread += x.b - x.a;
  o.Set("readThreadSeconds", readThread);
  o.Set("devices", devs);
  Napi::Array fs = Napi::Array::New(env, files.size());
  for (uint32_t i = 0; i < files.size(); i++) {
    FileSpec& f = *files[i];
    Napi::Object x = Napi::Object::New(env);
    x.Set("bytes", static_cast<double>(f.end - f.begin));
    auto it = span.find(i);
    x.Set("seconds", it == span.end() ? 0.0 : std::max(0.0, it->second.second - it->second.first));
    x.Set("direct", direct && f.directOk.load());
    if (returnHost && f.host) x.Set("data", Napi::Buffer<char>::Copy(env, f.host.get(), f.size()));
    if (!f.ipcHex.empty()) x.Set("ipcHandle", f.ipcHex);
    fs.Set(i, x);
  }
  o.Set("files", fs);
  if (!samples.empty()) {
    Napi::Object v = Napi::Object::New(env);
    uint64_t checked = 0, cb = 0, mm = 0;
    std::string first;
    for (auto& jp : jobs) {
      checked += jp->checked;
      cb += jp->checkedBytes;
      mm += jp->mismatches;
      if (first.empty()) first = jp->firstMismatch;
    }
    v.Set("checked", static_cast<double>(checked));
    v.Set("checkedBytes", static_cast<double>(cb));
    v.Set("mismatches", static_cast<double>(mm));
    if (!first.empty()) v.Set("firstMismatch", first);
    o.Set("verify", v);
  }
  Napi::Array n = Napi::Array::New(env, notes.size());
  for (size_t i = 0; i < notes.size(); i++) n.Set(i, notes[i]);
  o.Set("notes", n);
  if (!e.tpRanks.empty()) {
    Napi::Object t = Napi::Object::New(env);
    Napi::Array rs = Napi::Array::New(env, e.tpRanks.size());
    for (size_t i = 0; i < e.tpRanks.size(); i++) {
      const TpRank& k = *e.tpRanks[i];
      Napi::Object x = Napi::Object::New(env);
      x.Set("device", k.device);
      x.Set("bytes", static_cast<double>(k.bytes));
      x.Set("seconds", k.finish);
      if (returnHost && k.hmem) x.Set("data", Napi::Buffer<char>::Copy(env, k.hmem.get(), k.bytes));
      rs.Set(i, x);
    }
    t.Set("ranks", rs);
    if (!samples.empty()) {
      Napi::Object v = Napi::Object::New(env);
      v.Set("checked", static_cast<double>(e.tpChecked));
      v.Set("checkedBytes", static_cast<double>(e.tpCheckedBytes));
      v.Set("mismatches", static_cast<double>(e.tpMismatches));
      if (!e.tpFirstMismatch.empty()) v.Set("firstMismatch", e.tpFirstMismatch);
      o.Set("verify", v);
    }
    o.Set("tp", t);
  }
  if (e.keep) {
    std::vector<std::unique_ptr<Kept>> kept;
    uint64_t keptBytes = 0;
    for (auto& jp : jobs)
      if (jp->kept) {
        keptBytes += jp->kept->bytes;
        kept.push_back(std::move(jp->kept));
      }
    const uint32_t id = g_keptNext++;
    g_kept[id] = std::move(kept);
    o.Set("keptId", static_cast<double>(id));
    o.Set("keptBytes", static_cast<double>(keptBytes));
  }
  return o;
}

// gpuRelease(id): frees what the load `id` kept (each allocation in its context); true if there was such a load.
Napi::Value GpuRelease(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) throw ArgError(env, "gpuRelease", "id", "a number");
  const double d = info[0].As<Napi::Number>().DoubleValue();
  auto it = d >= 1 && d <= 4294967295.0 ? g_kept.find(static_cast<uint32_t>(d)) : g_kept.end();
  if (it == g_kept.end()) return Napi::Boolean::New(env, false);
  g_kept.erase(it);  // ~Kept frees each allocation in its context, then releases the context
  return Napi::Boolean::New(env, true);
}

// cudaDeviceUuids(): the CUDA ordinals of this process's driver and each GPU's UUID (32 hex digits, NVML's without
// "GPU-" and dashes), asked on a worker thread (cuInit can take a while): how restore --stage finds the ordinal of the
// GPU NVML names. Resolves [] without a driver or a device.
struct UuidBaton : Baton {
  std::vector<std::pair<int, std::string>> found;
  void Run() override {
    const CudaApi& cu = Cuda();
    int n = 0;
    if (!cu.loaded || !cu.cuDeviceGetUuid || cu.cuInit(0) != 0 || cu.cuDeviceGetCount(&n) != 0) return;
    static const char* hex = "0123456789abcdef";
    for (int i = 0; i < n; i++) {
      CUdevice dev = 0;
      CUuuid u;
      if (cu.cuDeviceGet(&dev, i) != 0 || cu.cuDeviceGetUuid(&u, dev) != 0) continue;
      std::string h;
      for (unsigned char c : u.bytes) {
        h.push_back(hex[c >> 4]);
        h.push_back(hex[c & 15]);
      }
      found.emplace_back(i, h);
    }
  }
  Napi::Value ToJS(Napi::Env env) override {
    Napi::Array out = Napi::Array::New(env, found.size());
    for (size_t i = 0; i < found.size(); i++) {
      Napi::Object x = Napi::Object::New(env);
      x.Set("ordinal", found[i].first);
      x.Set("uuid", found[i].second);
      out.Set(i, x);
    }
    return out;
  }
};

Napi::Value CudaDeviceUuids(const Napi::CallbackInfo& info) { return Queue(info.Env(), new UuidBaton()); }

std::string OptString(const Napi::Object& o, const char* key, const char* dflt) {
  if (!o.Has(key) || o.Get(key).IsUndefined()) return dflt;
  Napi::Value v = o.Get(key);
  return v.IsString() ? v.As<Napi::String>().Utf8Value() : std::string("\x01");  // never a valid choice
}

// options.tp (a tensor-parallel load, src/load/tp.ts): { devices: rank → device (-1 in host mode), bytes: rank →
// buffer size, ops: Float64Array of 8 numbers per copy (chunk, rank, src, width, height, pitch, dst, dstPitch),
// grouped by chunk in chunk order }. Every copy must read inside its chunk's wanted bytes and write inside its
// rank's buffer; every product and sum is overflow-checked.
void ParseTp(Napi::Env env, const char* fn, const Napi::Object& o, LoadEngine& e) {
  if (!o.Has("tp") || o.Get("tp").IsUndefined()) return;
  if (!o.Get("tp").IsObject()) throw ArgError(env, fn, "options.tp", "{devices, bytes, ops}");
  Napi::Object t = o.Get("tp").As<Napi::Object>();
  if (!t.Get("devices").IsArray() || !t.Get("bytes").IsArray()) throw ArgError(env, fn, "options.tp.devices/bytes", "arrays");
  Napi::Array devs = t.Get("devices").As<Napi::Array>(), sizes = t.Get("bytes").As<Napi::Array>();
  if (devs.Length() < 1 || devs.Length() > 1024 || sizes.Length() != devs.Length()) throw ArgError(env, fn, "options.tp.devices", "1 to 1024 ranks, one size each");
  if (e.path != CopyPath::Ring || (e.gpu ? e.sink != Sink::Device : e.sink != Sink::Memory)) throw ArgError(env, fn, "options.tp", "the ring path into device (or host) memory");
  if (e.gpu && Cuda().loaded && !Cuda().cuMemcpy2DAsync) {
    Napi::Error x = Napi::Error::New(env, "gpuLoad: this CUDA driver has no cuMemcpy2DAsync_v2, which tensor-parallel loads need");
    x.Set("code", Napi::String::New(env, ErrName(Err::Unsupported)));
    throw x;
  }
  for (uint32_t i = 0; i < devs.Length(); i++) {
    auto k = std::make_unique<TpRank>();
    k->device = static_cast<int>(ArgInt(env, fn, "options.tp.devices[" + std::to_string(i) + "]", devs.Get(i), e.gpu ? 0 : -1, e.gpu ? 1023 : -1));
    k->bytes = ArgU64(env, fn, "options.tp.bytes[" + std::to_string(i) + "]", sizes.Get(i));
    e.tpRanks.push_back(std::move(k));
  }
  Napi::Float64Array ops;
  if (!OptTyped(env, fn, t, "ops", napi_float64_array, "a Float64Array", &ops) || ops.ElementLength() % 8 != 0) throw ArgError(env, fn, "options.tp.ops", "a Float64Array of 8 numbers per copy");
  e.opStart.assign(e.chunks.size() + 1, 0);
  for (size_t i = 0; i < ops.ElementLength(); i += 8) {
    const std::string at = "options.tp.ops[" + std::to_string(i / 8) + "]";
    int64_t chunk = 0, rank = 0;
    if (!DoubleToInt(ops[i], 0, static_cast<int64_t>(e.chunks.size()) - 1, &chunk)) throw ArgError(env, fn, at + ".chunk", "a valid chunk index");
    if (!DoubleToInt(ops[i + 1], 0, static_cast<int64_t>(e.tpRanks.size()) - 1, &rank)) throw ArgError(env, fn, at + ".rank", "a valid rank");
    CopyOp op{static_cast<uint32_t>(chunk), static_cast<uint32_t>(rank), ArgU64(env, fn, at + ".src", ops[i + 2]), ArgU64(env, fn, at + ".width", ops[i + 3]),
              ArgU64(env, fn, at + ".height", ops[i + 4]), ArgU64(env, fn, at + ".pitch", ops[i + 5]), ArgU64(env, fn, at + ".dst", ops[i + 6]), ArgU64(env, fn, at + ".dstPitch", ops[i + 7])};
    if (!e.ops.empty() && op.chunk < e.ops.back().chunk) throw ArgError(env, fn, at + ".chunk", "copies grouped by chunk, in chunk order");
    const Chunk& c = e.chunks[op.chunk];
    uint64_t lo = 0, hi = 0, span = 0, last = 0, dspan = 0, dlast = 0;
    const bool fits = op.width > 0 && op.height > 0 && AddU64(c.readOff, c.skip, &lo) && AddU64(lo, c.copyLen, &hi) && op.src >= lo &&
                      MulU64(op.height - 1, op.pitch, &span) && AddU64(op.src, span, &last) && AddU64(last, op.width, &last) && last <= hi &&
                      MulU64(op.height - 1, op.dstPitch, &dspan) && AddU64(op.dst, dspan, &dlast) && AddU64(dlast, op.width, &dlast) &&
                      dlast <= e.tpRanks[op.rank]->bytes && (op.height == 1 || (op.pitch >= op.width && op.dstPitch >= op.width));
    if (!fits) throw ArgError(env, fn, at, "a copy inside its chunk's bytes and its rank's buffer");
    e.ops.push_back(op);
    e.opStart[op.chunk + 1]++;
  }
  for (size_t i = 1; i < e.opStart.size(); i++) e.opStart[i] += e.opStart[i - 1];
}

// Everything from JS is checked here, on the main thread, before the baton runs: nothing is opened or
// allocated for a load whose options would be refused.
Napi::Value GpuLoad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* fn = "gpuLoad";
  if (info.Length() < 1 || !info[0].IsObject()) throw ArgError(env, fn, "options", "an object");
  Napi::Object o = info[0].As<Napi::Object>();
  std::unique_ptr<LoadBaton> b(new LoadBaton());
  std::string mode = OptString(o, "mode", "gpu");
  if (mode != "gpu" && mode != "host") throw ArgError(env, fn, "options.mode", "gpu or host");
  b->e.gpu = mode == "gpu";
  std::string sink = OptString(o, "sink", b->e.gpu ? "device" : "memory");
  if (sink == "device") b->e.sink = Sink::Device;
  else if (sink == "memory") b->e.sink = Sink::Memory;
  else if (sink == "discard") b->e.sink = Sink::Discard;
  else throw ArgError(env, fn, "options.sink", "device, memory or discard");
  if (b->e.sink == Sink::Device && !b->e.gpu) throw ArgError(env, fn, "options.sink", "memory or discard in host mode");
  std::string path = OptString(o, "path", "ring");
  if (path != "ring" && path != "mapped") throw ArgError(env, fn, "options.path", "ring or mapped");
  b->e.path = path == "mapped" ? CopyPath::Mapped : CopyPath::Ring;
  if (b->e.path == CopyPath::Mapped && (!b->e.gpu || b->e.sink != Sink::Device)) throw ArgError(env, fn, "options.path", "ring unless mode is gpu and sink device");
  b->e.chunkBytes = OptU64(env, fn, o, "chunkBytes", 16 << 20);
  if (!ChunkBytesOk(b->e.chunkBytes)) throw ArgError(env, fn, "options.chunkBytes", "a multiple of 4096 up to 1 GiB");
  b->e.threads = static_cast<int>(OptInt(env, fn, o, "threads", 8, 1, kMaxThreads));
  b->e.buffers = static_cast<int>(OptInt(env, fn, o, "buffers", 16, 1, 4096));
  b->e.streams = static_cast<int>(OptInt(env, fn, o, "streams", 4, 1, 64));
  if (!RingOk(b->e.chunkBytes, b->e.buffers)) throw ArgError(env, fn, "options.buffers × options.chunkBytes", "at most 64 GiB of ring");
  b->e.direct = OptBool(o, "direct", false);
  std::string ringKind = OptString(o, "ring", "alloc");
  if (ringKind != "alloc" && ringKind != "register") throw ArgError(env, fn, "options.ring", "alloc or register");
  b->e.registerRing = ringKind == "register";
  b->e.returnHost = OptBool(o, "returnHost", false);
  b->e.testCorrupt = OptBool(o, "testCorrupt", false);
  b->e.keep = OptBool(o, "keep", false);
  if (b->e.keep && (!b->e.gpu || b->e.sink != Sink::Device)) throw ArgError(env, fn, "options.keep", "false unless mode is gpu and sink device");

  if (!o.Get("files").IsArray()) throw ArgError(env, fn, "options.files", "an array");
  Napi::Array fa = o.Get("files").As<Napi::Array>();
  if (fa.Length() > 1000000) throw ArgError(env, fn, "options.files", "at most 1,000,000 files");
  for (uint32_t i = 0; i < fa.Length(); i++) {
    Napi::Value v = fa.Get(i);
    const std::string at = "options.files[" + std::to_string(i) + "]";
    if (!v.IsObject()) throw ArgError(env, fn, at, "{path, begin, end, device}");
    Napi::Object f = v.As<Napi::Object>();
    if (!f.Get("path").IsString()) throw ArgError(env, fn, at + ".path", "a string");
    auto fs = std::make_unique<FileSpec>();
    fs->path = f.Get("path").As<Napi::String>().Utf8Value();
    fs->begin = ArgU64(env, fn, at + ".begin", f.Get("begin"));
    fs->end = ArgU64(env, fn, at + ".end", f.Get("end"));
    fs->device = f.Has("device") && !f.Get("device").IsUndefined() ? static_cast<int>(ArgInt(env, fn, at + ".device", f.Get("device"), -1, 1023)) : 0;
    if (fs->end < fs->begin) throw ArgError(env, fn, at + ".end", ">= begin");
    b->e.files.push_back(std::move(fs));
  }
  // plan: Float64Array of 6 numbers per chunk: file, readOff, readLen, skip, copyLen, dest.
  Napi::Float64Array plan;
  if (!OptTyped(env, fn, o, "plan", napi_float64_array, "a Float64Array", &plan)) throw ArgError(env, fn, "options.plan", "a Float64Array");
  if (plan.ElementLength() % 6 != 0) throw ArgError(env, fn, "options.plan", "6 numbers per chunk");
  for (size_t i = 0; i < plan.ElementLength(); i += 6) {
    const std::string at = "options.plan[" + std::to_string(i / 6) + "]";
    int64_t file = 0;
    if (!DoubleToInt(plan[i], 0, static_cast<int64_t>(b->e.files.size()) - 1, &file)) throw ArgError(env, fn, at + ".file", "a valid file index");
    Chunk c{static_cast<uint32_t>(file), ArgU64(env, fn, at + ".readOffset", plan[i + 1]), ArgU64(env, fn, at + ".readLength", plan[i + 2]),
            ArgU64(env, fn, at + ".skip", plan[i + 3]), ArgU64(env, fn, at + ".copyLength", plan[i + 4]), ArgU64(env, fn, at + ".dest", plan[i + 5])};
    const FileSpec& f = *b->e.files[c.file];
    // The plan is trusted only as far as it stays inside the file's range and the ring buffer; every sum is
    // checked, so a wrapped value cannot pass a bound.
    uint64_t need = 0, destEnd = 0, src = 0, fileAt = 0;
    if (c.readLen > b->e.chunkBytes || !AddU64(c.skip, c.copyLen, &need) || need > c.readLen || !AddU64(c.dest, c.copyLen, &destEnd) ||
        destEnd > f.size() || !AddU64(c.readOff, c.skip, &src) || !AddU64(f.begin, c.dest, &fileAt) || src != fileAt)
      throw ArgError(env, fn, at, "a chunk inside its file and the chunk size");
    b->e.chunks.push_back(c);
  }
  Napi::Float64Array s;
  if (OptTyped(env, fn, o, "samples", napi_float64_array, "a Float64Array", &s)) {
    if (s.ElementLength() % 3 != 0) throw ArgError(env, fn, "options.samples", "3 numbers per sample");
    for (size_t i = 0; i < s.ElementLength(); i += 3) {
      const std::string at = "options.samples[" + std::to_string(i / 3) + "]";
      int64_t file = 0;
      if (!DoubleToInt(s[i], 0, static_cast<int64_t>(b->e.files.size()) - 1, &file)) throw ArgError(env, fn, at + ".file", "a valid file index");
      Sample x{static_cast<uint32_t>(file), ArgU64(env, fn, at + ".offset", s[i + 1]), ArgU64(env, fn, at + ".length", s[i + 2])};
      uint64_t e = 0;
      if (x.length > kMaxSample || !AddU64(x.offset, x.length, &e) || e > b->e.files[x.file]->size())
        throw ArgError(env, fn, at, "a range of at most 64 MiB inside its file");
      b->e.samples.push_back(x);
    }
  }
  ParseTp(env, fn, o, b->e);
  if (b->e.keep && !b->e.tpRanks.empty()) throw ArgError(env, fn, "options.keep", "false for a tensor-parallel load");
  OptSharedFlags(env, fn, o, b.get());
  if (b->e.gpu && !Cuda().loaded) {
    Napi::Error e = Napi::Error::New(env, "gpuLoad: no CUDA driver: " + Cuda().loadError);
    e.Set("code", Napi::String::New(env, ErrName(Err::NoGpu)));
    throw e;
  }
  return Queue(env, b.release());
}

}  // namespace

void InitLoader(Napi::Env env, Napi::Object exports) {
  exports.Set("gpuLoad", Napi::Function::New(env, GpuLoad, "gpuLoad"));
  exports.Set("gpuRelease", Napi::Function::New(env, GpuRelease, "gpuRelease"));
  exports.Set("cudaDeviceUuids", Napi::Function::New(env, CudaDeviceUuids, "cudaDeviceUuids"));
  InitPageCache(env, exports);
  InitLimits(env, exports);
}

}  // namespace coldstart
