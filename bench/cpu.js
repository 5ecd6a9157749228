// CPU time for the load scripts' "server CPU" and "client CPU" figures.
import { readFileSync } from 'node:fs';

/** CPU seconds (user + system, all threads) of a process, from /proc (NaN if unavailable). */
export function processCpuSeconds(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in USER_HZ (100)
  } catch {
    return NaN;
  }
}

/** CPU seconds of this process. */
export function clientCpuSeconds() {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1e6;
}
