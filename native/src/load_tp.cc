// Tensor-parallel loads (issue #29): each chunk of the files is read once into the pinned ring, and its copy ops
// (src/load/tp.ts planTp: strided regions, one per tensor slice per rank, split at chunk boundaries) put the slices
// into every rank's buffer — a 2D DMA (cuMemcpy2DAsync) on that rank's GPU, or a row-by-row memcpy into host memory
// in host mode. A ring buffer goes back to the ring once every rank that copied from it has finished (one event per
// rank per buffer). The ops were validated against the chunks and the rank sizes by GpuLoad before the run.
#include <string.h>
#include <unistd.h>

#include <algorithm>
#include <thread>

#include "load_engine.h"

namespace coldstart {

void LoadEngine::RunTp() {
  const CudaApi& cu = Cuda();
  jobs.push_back(std::make_unique<Job>());  // one job: the host side's reads, for every rank
  Job& job = *jobs.back();
  job.owner = this;
  job.device = -1;
  job.chunks = chunks;
  job.pinned = gpu;
  job.t0 = MonotonicSeconds();
  const size_t nr = tpRanks.size();
  // Each rank: its context (held for the load), its buffer, its streams and a reference event on its clock.
  if (gpu) {
    CUresult r = cu.cuInit(0);
    if (r != 0) return Fail(Err::NoGpu, "cuInit failed: " + CuErrorText(r));
  }
  for (size_t i = 0; i < nr; i++) {
    TpRank& k = *tpRanks[i];
    if (!gpu) {
      if (k.bytes) {
        k.hmem.reset(static_cast<char*>(malloc(k.bytes)));
        if (!k.hmem) return Fail(Err::Env, "rank " + std::to_string(i) + ": could not allocate " + std::to_string(k.bytes) + " bytes of host memory");
      }
      continue;
    }
    k.ctx = std::make_unique<PrimaryCtx>();
    CUresult r = k.ctx->Retain(k.device);
    if (r == 0) r = k.ctx->Current();
    if (r != 0) return Fail(Err::NoGpu, "GPU " + std::to_string(k.device) + " (rank " + std::to_string(i) + "): could not create its context: " + CuErrorText(r));
    size_t fr = 0, tot = 0;
    cu.cuMemGetInfo(&fr, &tot);
    if (k.bytes && cu.cuMemAlloc(k.dmem.out(), k.bytes) != 0) {
      k.dmem.release();
      return Fail(Err::GpuOom, "GPU " + std::to_string(k.device) + " (rank " + std::to_string(i) + ") has " + std::to_string(fr) + " bytes free; its slices need " +
                                   std::to_string(k.bytes));
    }
    for (int s = 0; s < std::max(1, streams); s++) {
      Stream st;
      r = cu.cuStreamCreate(st.out(), CU_STREAM_NON_BLOCKING);
      if (r != 0) {
        st.release();
        return Fail(Err::Env, "cuStreamCreate failed: " + CuErrorText(r));
      }
      k.streams.push_back(std::move(st));
    }
    r = cu.cuEventCreate(k.ref.out(), CU_EVENT_DEFAULT);
    if (r == 0) r = cu.cuEventRecord(k.ref.get(), k.streams[0].get());
    if (r == 0) r = cu.cuEventSynchronize(k.ref.get());
    if (r != 0) return Fail(Err::Env, "cuEventRecord failed: " + CuErrorText(r));
    k.tRef = MonotonicSeconds();
  }
  if (gpu) tpRanks[0]->ctx->Current();  // the ring's pinned memory is portable: any rank's context may allocate it
  job.tStart = MonotonicSeconds();
  job.setupSeconds = job.tStart - job.t0;

  std::vector<Buf> bufs(static_cast<size_t>(buffers));
  std::vector<std::vector<Event>> evs(bufs.size());
  std::vector<std::vector<char>> pending(bufs.size(), std::vector<char>(nr, 0));
  for (auto& e : evs) e.resize(nr);
  FreeList ring(buffers);
  std::atomic<size_t> next{0};
  int nThreads = std::max(1, std::min<int>(threads, static_cast<int>(std::max<size_t>(1, chunks.size()))));
  std::vector<std::thread> ts;
  for (int t = 0; t < nThreads; t++) ts.emplace_back([&, t] { TpReader(job, bufs, evs, pending, ring, next, t); });
  for (auto& t : ts) t.join();
  // The copies still in flight, then each rank's finish on its own clock.
  if (gpu) {
    for (size_t i = 0; i < nr; i++) {
      TpRank& k = *tpRanks[i];
      k.ctx->Current();
      for (Stream& st : k.streams) {
        Event end;
        CUresult r = cu.cuEventCreate(end.out(), CU_EVENT_DEFAULT);
        if (r == 0) r = cu.cuEventRecord(end.get(), st.get());
        if (r == 0) r = cu.cuEventSynchronize(end.get());
        float ms = 0;
        if (r == 0) r = cu.cuEventElapsedTime(&ms, k.ref.get(), end.get());
        if (r != 0) {
          job.Fail(Err::Env, "copy to GPU " + std::to_string(k.device) + " failed: " + CuErrorText(r));
          continue;
        }
        k.finish = std::max(k.finish, k.tRef + ms * 1e-3 - job.tStart);
      }
    }
    for (size_t i = 0; i < nr; i++) {
      tpRanks[i]->ctx->Current();
      for (auto& e : evs) e[i].reset();  // each event destroyed in its own rank's context
    }
    tpRanks[0]->ctx->Current();
  }
  job.t1 = MonotonicSeconds();
  seconds = job.t1 - job.t0;
  for (const Chunk& c : chunks) job.bytes += c.copyLen;
  if (job.error.empty() && !failed && !Cancelled()) TpVerify(job);
  if (!job.error.empty()) Fail(job.code, job.error);
  else if (Cancelled()) Fail(Err::Interrupted, "the load was cancelled");
  // The ranks' device memory and streams, each freed in its own context (the load is a measurement: nothing is
  // kept on the cards), then the pinned ring, then the contexts — all on this thread, which is left with none
  // current. Host buffers stay for returnHost.
  if (gpu) {
    for (size_t i = 0; i < nr; i++) {
      TpRank& k = *tpRanks[i];
      k.ctx->Current();
      k.streams.clear();
      k.ref.reset();
      k.dmem.reset();
    }
    tpRanks[0]->ctx->Current();
    bufs.clear();
    for (auto& k : tpRanks) k->ctx.reset();
  }
}

void LoadEngine::TpReader(Job& job, std::vector<Buf>& bufs, std::vector<std::vector<Event>>& evs, std::vector<std::vector<char>>& pending, FreeList& ring,
                          std::atomic<size_t>& next, int thread) {
  const CudaApi& cu = Cuda();
  const size_t nr = tpRanks.size();
  std::vector<Interval> reads, copies;
  std::vector<double> finish(nr, 0);
  std::vector<char> touched(nr, 0);
  double ringSeconds = 0;
  if (gpu) tpRanks[0]->ctx->Current();
  for (size_t ci; ClaimChunk(job, next, ci);) {
    const Chunk& c = chunks[ci];
    const int bi = ring.Take();
    Buf& b = bufs[static_cast<size_t>(bi)];
    bool ok = true;
    if (!b.p) {
      if (gpu) tpRanks[0]->ctx->Current();
      double ta = MonotonicSeconds();
      ok = AllocBuf(job, b);
      ringSeconds += MonotonicSeconds() - ta;
    }
    // Every rank's copies out of this buffer must be done before it is read into again.
    for (size_t i = 0; ok && gpu && i < nr; i++) {
      if (!pending[bi][i]) continue;
      tpRanks[i]->ctx->Current();
      CUresult r = cu.cuEventSynchronize(evs[bi][i].get());
      pending[bi][i] = 0;
      if (r != 0) {
        job.Fail(Err::Env, "copy to GPU " + std::to_string(tpRanks[i]->device) + " failed: " + CuErrorText(r));
        ok = false;
      }
    }
    if (ok) {
      double ta = MonotonicSeconds();
      ok = ReadChunk(c, b.p, job);
      reads.push_back({ta, MonotonicSeconds(), c.file});
    }
    std::fill(touched.begin(), touched.end(), 0);
    for (size_t oi = opStart[ci]; ok && oi < opStart[ci + 1]; oi++) {
      const CopyOp& op = ops[oi];
      TpRank& k = *tpRanks[op.rank];
      const char* src = b.p + (op.src - c.readOff);  // inside the chunk's wanted bytes (checked at parse)
      if (!gpu) {
        double ta = MonotonicSeconds();
        for (uint64_t row = 0; row < op.height; row++) memcpy(k.hmem.get() + op.dst + row * op.dstPitch, src + row * op.pitch, op.width);
        double tb = MonotonicSeconds();
        copies.push_back({ta, tb, c.file});
        finish[op.rank] = std::max(finish[op.rank], tb - job.tStart);
        continue;
      }
      k.ctx->Current();
      CudaMemcpy2D m{};
      m.srcMemoryType = 1;  // host
      m.srcHost = src;
      m.srcPitch = op.pitch;
      m.dstMemoryType = 2;  // device
      m.dstDevice = k.dmem.get() + op.dst;
      m.dstPitch = op.dstPitch;
      m.WidthInBytes = op.width;
      m.Height = op.height;
      CUresult r = cu.cuMemcpy2DAsync(&m, k.streams[static_cast<size_t>(thread) % k.streams.size()].get());
      if (r != 0) {
        job.Fail(Err::Env, "cuMemcpy2DAsync to GPU " + std::to_string(k.device) + " failed: " + CuErrorText(r));
        ok = false;
        break;
      }
      touched[op.rank] = 1;
    }
    for (size_t i = 0; ok && gpu && i < nr; i++) {
      if (!touched[i]) continue;
      TpRank& k = *tpRanks[i];
      k.ctx->Current();
      CUresult r = evs[bi][i] ? 0 : cu.cuEventCreate(evs[bi][i].out(), CU_EVENT_DISABLE_TIMING);
      if (r == 0) r = cu.cuEventRecord(evs[bi][i].get(), k.streams[static_cast<size_t>(thread) % k.streams.size()].get());
      if (r != 0) {
        job.Fail(Err::Env, "cuEventRecord on GPU " + std::to_string(k.device) + " failed: " + CuErrorText(r));
        ok = false;
      } else {
        pending[bi][i] = 1;
      }
    }
    if (ok) AddDone(c.copyLen);
    else failed = true;
    ring.Give(bi);
  }
  job.Merge(ringSeconds, 0, reads, copies);
  for (size_t i = 0; i < nr; i++) {
    std::lock_guard<std::mutex> g(tpRanks[i]->mu);
    tpRanks[i]->finish = std::max(tpRanks[i]->finish, finish[i]);
  }
}

// Each copy's first row (at most 64 KiB of it) read back from its rank and compared with the file's bytes.
void LoadEngine::TpVerify(Job& job) {
  if (samples.empty()) return;  // verification was not asked for (GpuLoad passes one sample to ask)
  const CudaApi& cu = Cuda();
  std::vector<char> want, have;
  for (const CopyOp& op : ops) {
    const Chunk& c = chunks[op.chunk];
    const uint64_t n = std::min<uint64_t>(op.width, 64 << 10);
    if (n == 0) continue;
    want.resize(n);
    have.resize(n);
    FdLease lease(*fds, c.file);
    if (!lease) return job.Fail(ErrFromErrno(lease.error()), files[c.file]->path + ": cannot open for verification: " + Errno(lease.error()));
    uint64_t got = 0;
    while (got < n) {
      ssize_t r = pread(lease.get(), want.data() + got, n - got, static_cast<off_t>(op.src + got));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return job.Fail(Err::CorruptFile, files[c.file]->path + ": could not re-read bytes for verification at " + std::to_string(op.src + got));
      got += static_cast<uint64_t>(r);
    }
    TpRank& k = *tpRanks[op.rank];
    if (gpu) {
      k.ctx->Current();
      CUresult r = cu.cuMemcpyDtoH(have.data(), k.dmem.get() + op.dst, n);
      if (r != 0) return job.Fail(Err::Env, "verify: cuMemcpyDtoH from GPU " + std::to_string(k.device) + " failed: " + CuErrorText(r));
    } else {
      memcpy(have.data(), k.hmem.get() + op.dst, n);
    }
    tpChecked++;
    tpCheckedBytes += n;
    if (memcmp(want.data(), have.data(), n) != 0) {
      tpMismatches++;
      if (tpFirstMismatch.empty()) tpFirstMismatch = files[c.file]->path + " at byte " + std::to_string(op.src) + " (rank " + std::to_string(op.rank) + ")";
    }
  }
  if (gpu) tpRanks[0]->ctx->Current();
}

}  // namespace coldstart
