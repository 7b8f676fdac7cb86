// restore's Intel AMX fix: CRIU gives a restored process no AMX permission back (checkpoint-restore/criu#1448), so a
// server that used AMX before the snapshot (torch's bf16 CPU attention and matmuls) dies of SIGILL at its next AMX
// instruction. resumeGrantingAmx({pid}) resumes a process CRIU left stopped (--leave-stopped) with the permission
// given back: every thread is ptrace-seized and interrupted while stopped, the process is sent SIGCONT, its leader
// runs arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) at a `syscall` instruction of its vDSO with its registers
// put back after (orig_rax -1 while injected, so no syscall restart happens then; the saved ones restart the call it
// was stopped in), and every thread is detached — no thread of it runs before the permission is there. The decision
// (which CPU, which processes) is restore.ts's; this only does the syscalls. x86-64 only. The process must not be a
// child that Node itself waits for (libuv's SIGCHLD handler would take its ptrace stops): CRIU's restored trees are
// not. Cost on the dev VM: 1.3 ms for 3 threads, 4 ms for 257.
#include <napi.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <dirent.h>
#include <fcntl.h>
#include <sys/types.h>
#include <unistd.h>
#if defined(__x86_64__) && defined(__linux__)
#include <sys/ptrace.h>
#include <sys/user.h>
#include <sys/wait.h>
#endif

#include "common.h"

namespace coldstart {

namespace {

#if defined(__x86_64__) && defined(__linux__)
constexpr long kSysArchPrctl = 158;
constexpr long kArchReqXcompPerm = 0x1023;
constexpr long kXfeatureXtiledata = 18;

// Every seized thread is detached when this goes out of scope (PTRACE_DETACH, no signal), also on any failure.
class Seized {
 public:
  ~Seized() {
    for (pid_t t : tids_) ptrace(PTRACE_DETACH, t, nullptr, nullptr);
  }
  void Add(pid_t t) { tids_.push_back(t); }
  const std::vector<pid_t>& tids() const { return tids_; }

 private:
  std::vector<pid_t> tids_;
};

// The thread ids of `pid` (/proc/PID/task).
bool Threads(pid_t pid, std::vector<pid_t>* out) {
  std::string dir = "/proc/" + std::to_string(pid) + "/task";
  DIR* d = opendir(dir.c_str());
  if (!d) return false;
  while (dirent* e = readdir(d)) {
    char* end = nullptr;
    long t = std::strtol(e->d_name, &end, 10);
    if (end != e->d_name && *end == '\0' && t > 0 && t <= (1L << 22)) out->push_back(static_cast<pid_t>(t));
  }
  closedir(d);
  return !out->empty();
}

// The next stop of `tid` (waitpid __WALL, polled every 50 µs for up to `ms`); false on timeout or when it is gone.
bool WaitStop(pid_t tid, int ms, int* status) {
  for (int i = 0; i <= ms * 20; ++i) {
    pid_t r = waitpid(tid, status, __WALL | WNOHANG);
    if (r == tid) return WIFSTOPPED(*status);
    if (r < 0 && errno != EINTR) return false;
    usleep(50);
  }
  return false;
}

// The address of a `syscall` instruction (0f 05) in the vDSO of `pid`.
bool VdsoSyscall(pid_t pid, unsigned long long* at) {
  FILE* maps = std::fopen(("/proc/" + std::to_string(pid) + "/maps").c_str(), "re");
  if (!maps) return false;
  unsigned long long lo = 0, hi = 0;
  char line[512];
  bool found = false;
  while (std::fgets(line, sizeof line, maps)) {
    if (std::strstr(line, "[vdso]") && std::sscanf(line, "%llx-%llx", &lo, &hi) == 2 && hi > lo && hi - lo <= (1ULL << 20)) {
      found = true;
      break;
    }
  }
  std::fclose(maps);
  if (!found) return false;
  int fd = open(("/proc/" + std::to_string(pid) + "/mem").c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  std::vector<unsigned char> code(static_cast<size_t>(hi - lo));
  ssize_t n = pread(fd, code.data(), code.size(), static_cast<off_t>(lo));
  close(fd);
  for (ssize_t i = 0; i + 1 < n; ++i) {
    if (code[static_cast<size_t>(i)] == 0x0f && code[static_cast<size_t>(i) + 1] == 0x05) {
      *at = lo + static_cast<unsigned long long>(i);
      return true;
    }
  }
  return false;
}
#endif

struct AmxBaton : Baton {
  int pid = 0;
  long result = 0;       // arch_prctl's return (0, or -errno: -ENOSPC for a sigaltstack too small for AMX state)

  void Run() override {
#if !(defined(__x86_64__) && defined(__linux__))
    Fail(Err::Unsupported, "AMX permission: x86-64 Linux only");
#else
    pid_t p = static_cast<pid_t>(pid);
    std::vector<pid_t> tids;
    if (!Threads(p, &tids)) return Fail(Err::NotFound, "pid " + std::to_string(pid) + ": no such process");
    unsigned long long sc = 0;
    if (!VdsoSyscall(p, &sc)) return Fail(Err::Env, "pid " + std::to_string(pid) + ": no syscall instruction found in its vDSO");
    Seized seized;
    for (pid_t t : tids) {
      if (ptrace(PTRACE_SEIZE, t, nullptr, nullptr) != 0) {
        int e = errno;
        if (e == ESRCH) continue;  // a thread that ended meanwhile
        return Fail(e == EPERM ? Err::Permission : Err::Env, "pid " + std::to_string(pid) + ": ptrace seize of thread " + std::to_string(t) + ": " + std::strerror(e));
      }
      seized.Add(t);
      ptrace(PTRACE_INTERRUPT, t, nullptr, nullptr);
    }
    int st = 0;
    for (pid_t t : seized.tids()) {
      if (!WaitStop(t, 2000, &st)) return Fail(Err::Env, "pid " + std::to_string(pid) + ": thread " + std::to_string(t) + " did not stop for ptrace");
    }
    // Group stop ended; every thread stays in its ptrace stop until detached.
    if (kill(p, SIGCONT) != 0) return Fail(Err::Env, "pid " + std::to_string(pid) + ": SIGCONT: " + std::strerror(errno));
    user_regs_struct saved{};
    if (ptrace(PTRACE_GETREGS, p, nullptr, &saved) != 0) return Fail(Err::Env, "pid " + std::to_string(pid) + ": ptrace getregs: " + std::strerror(errno));
    user_regs_struct inj = saved;
    inj.rip = sc;
    inj.rax = kSysArchPrctl;
    inj.orig_rax = static_cast<unsigned long long>(-1);
    inj.rdi = kArchReqXcompPerm;
    inj.rsi = kXfeatureXtiledata;
    user_regs_struct out{};
    bool done = false;
    // The first steps may report the end of the group stop and SIGCONT's delivery (not passed on: its effect, the
    // resume, happened when it was sent) before the instruction runs.
    for (int i = 0; i < 8 && !done; ++i) {
      if (ptrace(PTRACE_SETREGS, p, nullptr, &inj) != 0 || ptrace(PTRACE_SINGLESTEP, p, nullptr, nullptr) != 0) break;
      if (!WaitStop(p, 2000, &st)) break;
      if (ptrace(PTRACE_GETREGS, p, nullptr, &out) != 0) break;
      done = out.rip != sc;
    }
    ptrace(PTRACE_SETREGS, p, nullptr, &saved);
    if (!done) return Fail(Err::Env, "pid " + std::to_string(pid) + ": the injected arch_prctl did not run");
    result = static_cast<long>(out.rax);
#endif
  }

  Napi::Value ToJS(Napi::Env env) override {
    Napi::Object o = Napi::Object::New(env);
    o.Set("pid", pid);
    o.Set("result", Napi::Number::New(env, static_cast<double>(result)));
    o.Set("granted", result == 0);
    return o;
  }
};

Napi::Value ResumeGrantingAmx(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* fn = "resumeGrantingAmx";
  if (info.Length() < 1 || !info[0].IsObject()) throw ArgError(env, fn, "options", "{pid}");
  int64_t pid = ArgInt(env, fn, "options.pid", info[0].As<Napi::Object>().Get("pid"), 1, 1 << 22);
  auto* b = new AmxBaton();
  b->pid = static_cast<int>(pid);
  return Queue(env, b);
}

}  // namespace

void InitAmx(Napi::Env env, Napi::Object exports) {
  exports.Set("resumeGrantingAmx", Napi::Function::New(env, ResumeGrantingAmx, "resumeGrantingAmx"));
}

}  // namespace coldstart
