// process.h: what a supervisor needs of the kernel besides sockets: to be
// the subreaper of its descendants, to reap the ones libuv does not know, and
// to watch any process's exit through a pidfd.
//
// Like fdpass.h, every function returns a non-negative value on success and
// -errno on failure. Man pages: prctl(2) PR_SET_CHILD_SUBREAPER, waitid(2),
// pidfd_open(2).
#ifndef GRACEFUL_PROCESS_H
#define GRACEFUL_PROCESS_H

#include <sys/types.h>

namespace fdpass {

// Makes the calling process the subreaper of its descendants: an orphan is
// reparented to it instead of to PID 1.
int SetChildSubreaper();

// One reaped child: how it ended. code is its exit code (or -1), signal the
// number of the signal that killed it (or 0).
struct Reaped {
  pid_t pid;
  int code;
  int signal;
};

// Reaps exited children, at most max of them, into out, and returns how many.
// A child whose pid is in skip (libuv's own children, which libuv reaps) is
// left alone; as waitid(2) reports the first exited child it finds, Reap stops
// there, and the caller tries again once libuv has reaped it.
int Reap(const pid_t* skip, int nskip, Reaped* out, int max);

// Returns a pidfd for pid (close-on-exec; readable once the process exits),
// or -errno (-ESRCH: no such process).
int PidfdOpen(pid_t pid);

}  // namespace fdpass

#endif  // GRACEFUL_PROCESS_H
