// process.cc: subreaper, reaping and pidfds for the supervisor (see
// process.h). Man pages: prctl(2) PR_SET_CHILD_SUBREAPER, waitid(2),
// pidfd_open(2).
#include "process.h"

#include <errno.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434  // the same number on every architecture
#endif

namespace fdpass {

int SetChildSubreaper() {
  return prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0 ? -errno : 0;
}

int Reap(const pid_t* skip, int nskip, Reaped* out, int max) {
  int n = 0;
  while (n < max) {
    siginfo_t info;
    memset(&info, 0, sizeof(info));
    // Look first (WNOWAIT): the child may be one libuv waits for.
    if (waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) < 0) {
      if (errno == EINTR) continue;
      if (errno == ECHILD) break;  // no children at all
      return n > 0 ? n : -errno;
    }
    if (info.si_pid == 0) break;  // none has exited
    for (int i = 0; i < nskip; i++) {
      if (skip[i] == info.si_pid) return n;
    }
    siginfo_t done;
    memset(&done, 0, sizeof(done));
    int rc;
    do {
      rc = waitid(P_PID, static_cast<id_t>(info.si_pid), &done, WEXITED | WNOHANG);
    } while (rc < 0 && errno == EINTR);
    if (rc < 0 || done.si_pid == 0) break;
    out[n].pid = done.si_pid;
    out[n].code = done.si_code == CLD_EXITED ? done.si_status : -1;
    out[n].signal = done.si_code == CLD_EXITED ? 0 : done.si_status;
    n++;
  }
  return n;
}

int PidfdOpen(pid_t pid) {
  long fd = syscall(SYS_pidfd_open, pid, 0);
  return fd < 0 ? -errno : static_cast<int>(fd);
}

}  // namespace fdpass
