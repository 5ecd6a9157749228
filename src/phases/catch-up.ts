// Phase: tailers catching up. A tailer behind the committed tail reads its backlog from
// storage, a bounded amount per batch so one deep backlog cannot stall everyone else; when
// it reaches the committed tail it is marked caught up and turns live (io-contributions
// pushes it new entries from then on). All of a worker's catching-up tailers share a budget
// per batch, round robin: those not served this batch go first in the next.
import { CATCH_UP_BYTES_PER_BATCH, CATCH_UP_BYTES_PER_BATCH_TOTAL } from '../constants.js';
import { skipTrimmed } from './io-deletions.js';
import { TAIL_CATCHING_UP, TAIL_LIVE, type Partition } from './state.js';
import { sendStoredEntries, storedBytesSent, storedRead } from './stored-entries.js';

const QUEUED = 1;
const VISITED = 2;

/** Queue a lease to catch up (once). */
export function queueCatchUp(partition: Partition, lease: number): void {
  if (partition.leases.columns.catchUpQueued[lease] !== 0) return;
  partition.leases.columns.catchUpQueued[lease] = QUEUED;
  partition.catchUp.push(lease);
}

export function catchUpTailers(partition: Partition): void {
  if (partition.catchUp.length === 0) return;
  partition.storage.refresh();
  const leases = partition.leases;
  const next = partition.catchUpNext;
  next.clear();
  const served = partition.catchUpServed;
  served.clear();
  let budget = CATCH_UP_BYTES_PER_BATCH_TOTAL;
  for (let i = 0; i < partition.catchUp.length; i++) {
    const lease = partition.catchUp.items[i]!;
    if (budget <= 0) {
      // Out of budget: waits, ahead of those served this batch.
      if (leases.occupied[lease] !== 0 && leases.columns.catchUpQueued[lease] === QUEUED) {
        leases.columns.catchUpQueued[lease] = VISITED;
        next.push(lease);
      }
      continue;
    }
    // A slot may have been released, reused or listed twice since it was queued.
    if (leases.occupied[lease] === 0 || leases.columns.catchUpQueued[lease] !== QUEUED) continue;
    if (leases.columns.tailState[lease] !== TAIL_CATCHING_UP) {
      leases.columns.catchUpQueued[lease] = 0;
      continue;
    }
    leases.columns.catchUpQueued[lease] = VISITED;
    const log = leases.columns.logSlot[lease]!;
    const committed = partition.logs.columns.committed[log]!;
    storedRead.session = leases.key0[lease]!;
    storedRead.handle = leases.key1[lease]!;
    storedRead.rid = leases.columns.tailId[lease]!;
    storedRead.readReply = false;
    storedRead.logId = partition.logs.key0[log]!;
    // Retention may have trimmed below this tailer since it was queued.
    storedRead.from = skipTrimmed(partition, storedRead.session, storedRead.handle, storedRead.rid, log, leases.columns.tailNext[lease]!);
    storedRead.to = committed;
    storedRead.committed = committed;
    storedRead.bytesMax = Math.min(CATCH_UP_BYTES_PER_BATCH, budget);
    const sent = sendStoredEntries(partition, storedRead);
    budget -= storedBytesSent();
    leases.columns.tailNext[lease] = storedRead.from + sent;
    if (storedRead.from + sent >= committed) {
      leases.columns.tailState[lease] = TAIL_LIVE;
    } else {
      served.push(lease);
    }
  }
  for (let i = 0; i < served.length; i++) next.push(served.items[i]!);
  for (let i = 0; i < next.length; i++) partition.leases.columns.catchUpQueued[next.items[i]!] = QUEUED;
  for (let i = 0; i < partition.catchUp.length; i++) {
    const lease = partition.catchUp.items[i]!;
    if (leases.columns.catchUpQueued[lease] === VISITED) leases.columns.catchUpQueued[lease] = 0;
  }
  partition.catchUpNext = partition.catchUp;
  partition.catchUp = next;
}
