/**
 * How control replies read as text, in one place: the progress events of a
 * redeploy (the control socket's plain mode, the supervisor relaying them,
 * the CLI print the same line for the same event) and command results.
 * Everything a line says comes from the event itself, never from the
 * process that renders it, so a relay cannot change its meaning.
 */
import type { ControlEvent } from './client.js';

/** renderEvent: the text line of a progress event (predecessor-committed, spawned, ready, draining, done, failed), an output line, or the marker of a persistent command that moved (served). */
export function renderEvent(e: ControlEvent): string {
  switch (e.event) {
    case 'predecessor-committed': return `pid ${e.predecessor} (the instance before) ended its take-back window after ${e.ms} ms`;
    case 'spawned': return `spawned pid ${e.pid}`;
    case 'worker': return `worker ${e.worker} ready: pid ${e.pid} after ${e.ms} ms`;
    case 'ready': return `ready: pid ${e.pid} after ${e.ms} ms`;
    case 'draining': return `draining ${e.connections} connection(s)`;
    case 'done': return `done after ${e.ms} ms`;
    case 'failed': return `failed after ${e.ms} ms`;
    case 'output': return String(e.line);
    case 'served': return `-- now served by pid ${e.pid}` +
      (typeof e.dropped === 'number' && e.dropped > 0 ? ` (${e.dropped} line(s) of pid ${e.from} dropped: the client read too slowly)` : '');
    default: return JSON.stringify(e);
  }
}

type Row = Record<string, unknown>;

function isRow(v: unknown): v is Row {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && Object.values(v).every((x) => x === null || typeof x !== 'object');
}

/**
 * table renders rows of flat objects (the listeners of status) as aligned
 * columns under a header of their keys; null and absent values read as `-`.
 */
export function table(rows: readonly Row[]): string[] {
  const keys = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  const cells = [keys, ...rows.map((r) => keys.map((k) => (r[k] === null || r[k] === undefined ? '-' : String(r[k]))))];
  const widths = keys.map((_, i) => Math.max(...cells.map((c) => c[i]!.length)));
  return cells.map((c) => c.map((v, i) => (i === c.length - 1 ? v : v.padEnd(widths[i]!))).join('  '));
}

/** formatResult renders a result for plain mode: strings as they are, objects as `key: value` lines (a flat object's value as `field value, ...`), rows as a table. */
export function formatResult(result: unknown): string[] {
  if (result === undefined || result === null) return [];
  if (typeof result === 'string') return result === '' ? [] : result.split('\n');
  if (Array.isArray(result)) {
    if (result.length > 0 && result.every(isRow)) return table(result);
    return result.map((r) => (typeof r === 'string' ? r : JSON.stringify(r)));
  }
  if (typeof result === 'object') {
    return Object.entries(result as Record<string, unknown>).flatMap(([k, v]) => {
      if (Array.isArray(v) && v.length > 0 && v.every(isRow)) return [`${k}:`, ...table(v).map((l) => `  ${l}`)];
      if (Array.isArray(v)) return [`${k}:`, ...v.map((x) => `  ${typeof x === 'string' ? x : JSON.stringify(x)}`)];
      // A flat object reads as words (`handover: handedOver 0, drained 3`); a deeper one stays JSON.
      if (isRow(v)) return [`${k}: ${Object.entries(v).map(([f, x]) => `${f} ${x === null ? '-' : String(x)}`).join(', ') || '-'}`];
      return [`${k}: ${typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v)}`];
    });
  }
  return [String(result)];
}

/** WorkerAnswer: one worker's part of a command run on every worker of a service. */
export interface WorkerAnswer {
  id: number;
  pid: number | null;
  result?: unknown;
  error?: { code: string; message: string };
}

/** isWorkerAnswers: the result of a command run on every worker ({ workers: [{ id, pid, result | error }] }). */
function isWorkerAnswers(result: unknown): result is { workers: WorkerAnswer[] } {
  if (typeof result !== 'object' || result === null || Object.keys(result).length !== 1) return false;
  const w = (result as { workers?: unknown }).workers;
  return Array.isArray(w) && w.every((a) => typeof a === 'object' && a !== null && typeof a.id === 'number' && ('result' in a || 'error' in a));
}

/** formatWorkerAnswers: each worker's result (or error) on lines labelled `worker <id> (pid <pid>):`. */
export function formatWorkerAnswers(answers: WorkerAnswer[]): string[] {
  return answers.flatMap((a) => {
    const label = `worker ${a.id} (pid ${a.pid})`;
    if (a.error) return [`${label}: error ${a.error.code}: ${a.error.message}`];
    const lines = formatResult(a.result);
    return lines.length <= 1 ? [`${label}: ${lines[0] ?? ''}`.trimEnd()] : [`${label}:`, ...lines.map((l) => `  ${l}`)];
  });
}

/** formatCommandResult: formatResult, except that a redeploy's result reads as the line that ends it, every worker's answer gets its label, and stats read as lines. */
export function formatCommandResult(cmd: string, result: unknown): string[] {
  if (cmd === 'redeploy' || cmd === 'restart') return [`done: pid ${(result as { pid?: number } | null)?.pid} is serving`];
  if (isWorkerAnswers(result)) return formatWorkerAnswers(result.workers);
  if (cmd === 'stats' && isStats(result)) return formatStats(result).split('\n');
  return formatResult(result);
}

/** formatStats: the stats as lines for people. */
export function formatStats(s: Record<string, unknown>): string {
  const lines = [`pid ${String(s.pid)}, counting since ${String(s.since)}`];
  for (const l of s.listeners as Record<string, unknown>[]) {
    const where = l.family === 'unix' ? l.path : `${String(l.host)}:${String(l.port)}`;
    lines.push(`listener ${String(l.name)} (${String(l.protocol)} ${String(where)}${l.open ? '' : ', closed'}): ` +
      `${String(l.requests)} request(s), ${String(l.connections)} connection(s), ${String(l.openConnections)} open`);
  }
  const r = s.redeploys as { done: number; failed: number; takenBack: number };
  lines.push(`redeploys: ${r.done} done, ${r.failed} failed (${r.takenBack} taken back)`);
  for (const t of s.last as { pid: number | null; result: string; at: string; readyMs: number | null; reason?: string }[]) {
    lines.push(`  ${t.at} pid ${t.pid ?? '-'} ${t.result}${t.reason && t.result === 'failed' ? ` (${t.reason})` : ''}` +
      `${t.readyMs === null ? '' : `, ready after ${t.readyMs} ms`}`);
  }
  return lines.join('\n');
}

function isStats(v: unknown): v is Record<string, unknown> {
  const s = v as { listeners?: unknown; redeploys?: unknown; last?: unknown } | null;
  return typeof s === 'object' && s !== null && Array.isArray(s.listeners) && typeof s.redeploys === 'object' && Array.isArray(s.last);
}
