// Signals: a device sends bytes to another lease attached to the same log (WebRTC offers,
// answers, ICE candidates). Relayed within the batch, straight to the output ring: nothing is
// stored, so nothing waits for a commit. Both leases are on this worker (the log's shard).
import { HEADER_A, HEADER_B, HEADER_C, ERROR } from '../net/protocol.js';
import { EMPTY_OK_BYTES, SIGNALED_HEADER_BYTES, writeEmptyOk, writeSignaledHeader } from '../net/server-frames.js';
import { copyRingBytes } from '../ring/ring.js';
import { findLease } from './log-ops.js';
import { reserveOutput, sendError } from './output.js';
import { NO_SLOT, RIGHT_SIGNAL, type Partition } from './state.js';

export function signal(partition: Partition, session: number, header: number, payload: number, payloadLength: number): void {
  const input = partition.rings.input;
  const handle = input.view.getUint32(header + HEADER_A, true);
  const toHandle = input.view.getUint32(header + HEADER_B, true);
  const rid = input.view.getUint32(header + HEADER_C, true);
  const leases = partition.leases;
  const lease = findLease(partition, session, handle, 0, rid);
  if (lease === NO_SLOT) return;
  if ((leases.columns.rights[lease]! & RIGHT_SIGNAL) === 0) return sendError(partition, session, rid, handle, 0, ERROR.FORBIDDEN, 'no grant to signal on this log (right "s")');
  const log = leases.columns.logSlot[lease]!;
  let target = partition.logs.columns.firstLease[log]!;
  while (target !== NO_SLOT && leases.key1[target] !== toHandle) target = leases.columns.nextOnLog[target]!;
  if (target === NO_SLOT) {
    return sendError(partition, session, rid, handle, 0, ERROR.NOT_ATTACHED, `handle ${toHandle} is not attached to this log (it left, or never joined)`, { toHandle });
  }
  const device = partition.deviceBytes[partition.sessions.columns.device[partition.sessions.find(session, 0)]!]!;
  const output = partition.rings.output;
  const at = reserveOutput(partition, leases.key0[target]!, SIGNALED_HEADER_BYTES + device.length + payloadLength);
  writeSignaledHeader(output.view, at, toHandle, handle, device.length, payloadLength);
  output.bytes.set(device, at + SIGNALED_HEADER_BYTES);
  copyRingBytes(input, payload, output, at + SIGNALED_HEADER_BYTES + device.length, payloadLength);
  writeEmptyOk(output.view, reserveOutput(partition, session, EMPTY_OK_BYTES), rid);
}
