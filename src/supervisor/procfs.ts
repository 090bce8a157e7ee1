/**
 * What /proc says of processes: parent, state, children. Linux only, as the
 * rest of the supervisor.
 */
import fs from 'node:fs';

/** ProcStat: the fields of /proc/<pid>/stat a supervisor needs. */
export interface ProcStat {
  pid: number;
  state: string;
  ppid: number;
}

/** stat reads /proc/<pid>/stat, or returns null when the process is gone. */
export function stat(pid: number): ProcStat | null {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // The command name sits in parentheses and may hold anything: split after the last ')'.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { pid, state: rest[0] ?? '?', ppid: Number(rest[1]) };
}

/** isDescendant: pid is a live descendant of ancestor (not ancestor itself). */
export function isDescendant(pid: number, ancestor: number): boolean {
  let p = pid;
  for (let depth = 0; depth < 4096 && p > 1; depth++) {
    const s = stat(p);
    if (!s || (p === pid && s.state === 'Z')) return false;
    if (s.ppid === ancestor) return true;
    p = s.ppid;
  }
  return false;
}

/** childrenOf lists the processes whose parent is pid (zombies included). */
export function childrenOf(pid: number): ProcStat[] {
  const out: ProcStat[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const s = stat(Number(name));
    if (s && s.ppid === pid) out.push(s);
  }
  return out;
}

/** rssOf: the resident memory of pid in bytes (VmRSS of /proc/<pid>/status), or null when the process is gone or a zombie. */
export function rssOf(pid: number): number | null {
  if (!(Number.isInteger(pid) && pid > 0)) return null;
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return null;
  }
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(text);
  return m ? Number(m[1]) * 1024 : null;
}
