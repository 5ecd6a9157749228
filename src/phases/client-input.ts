// Phase: client input. Drain this worker's input ring up to what the IO thread had published
// when the batch began: session opens and closes, and frames (already validated on their
// prefix by the IO thread) dispatched by op.
import { invariant } from '../invariant.js';
import { PREFIX_BYTES } from '../constants.js';
import {
  ERROR,
  HEADER_OP,
  OP_ACK,
  OP_LEASE,
  OP_READ,
  OP_RELEASE,
  OP_SIGNAL,
  OP_TAIL,
  OP_UNTAIL,
  OP_WRITE,
  PREFIX_HEADER_LENGTH,
  PREFIX_PAYLOAD_LENGTH,
  PREFIX_SHARD,
} from '../net/protocol.js';
import {
  INPUT_CONTENT,
  INPUT_FRAMES,
  INPUT_KIND,
  INPUT_SESSION,
  INPUT_SESSION_CLOSE,
  INPUT_SESSION_GRANTS,
  INPUT_SESSION_OPEN,
  INPUT_SESSION_PAUSE,
  INPUT_SESSION_RESUME,
  INPUT_SESSION_REVOKE,
} from '../net/records.js';
import { ack, read, release, tail, untail, write } from './log-ops.js';
import { sendError } from './output.js';
import { closeSession, leaseLog, openSession, pauseSession, resumeSession, revokeSession, sendPresenceChanges, updateGrants } from './sessions.js';
import { signal } from './signals.js';
import type { Partition } from './state.js';

/** Process the input published so far. Returns the number of records processed. */
export function processClientInput(partition: Partition): number {
  const input = partition.rings.input;
  if (input.refresh() === 0) return 0;
  let records = 0;
  for (let offset = input.peek(); offset >= 0; offset = input.peek()) {
    const kind = input.view.getUint32(offset + INPUT_KIND, true);
    const session = input.view.getUint32(offset + INPUT_SESSION, true);
    const content = offset + INPUT_CONTENT;
    const contentLength = input.recordLength - INPUT_CONTENT;
    if (kind === INPUT_FRAMES) processFrames(partition, session, content, contentLength);
    else if (kind === INPUT_SESSION_OPEN) openSession(partition, session, input.bytes.subarray(content, content + contentLength));
    else if (kind === INPUT_SESSION_CLOSE) closeSession(partition, session);
    else if (kind === INPUT_SESSION_GRANTS) updateGrants(partition, session, input.bytes.subarray(content, content + contentLength));
    else if (kind === INPUT_SESSION_REVOKE) revokeSession(partition, session);
    else if (kind === INPUT_SESSION_PAUSE) pauseSession(partition, session);
    else if (kind === INPUT_SESSION_RESUME) resumeSession(partition, session);
    else invariant(false, `unknown input record kind ${kind}`);
    input.advance();
    records++;
  }
  input.release();
  sendPresenceChanges(partition);
  return records;
}

function processFrames(partition: Partition, session: number, start: number, length: number): void {
  const view = partition.rings.input.view;
  const end = start + length;
  let frame = start;
  while (frame < end) {
    const headerLength = view.getUint16(frame + PREFIX_HEADER_LENGTH, true);
    const payloadLength = view.getUint32(frame + PREFIX_PAYLOAD_LENGTH, true);
    const shard = view.getUint16(frame + PREFIX_SHARD, true);
    const header = frame + PREFIX_BYTES;
    const payload = header + headerLength;
    invariant(partition.ownsShard(shard), 'the IO thread routes frames to the shard owner');
    partition.frameShard = shard;
    switch (view.getUint8(header + HEADER_OP)) {
      case OP_WRITE:
        write(partition, session, header, payload, payloadLength);
        break;
      case OP_ACK:
        ack(partition, session, header);
        break;
      case OP_LEASE:
        leaseLog(partition, session, shard, header, payload, payloadLength);
        break;
      case OP_READ:
        read(partition, session, header);
        break;
      case OP_TAIL:
        tail(partition, session, header);
        break;
      case OP_UNTAIL:
        untail(partition, session, header);
        break;
      case OP_RELEASE:
        release(partition, session, header);
        break;
      case OP_SIGNAL:
        signal(partition, session, header, payload, payloadLength);
        break;
      default:
        sendError(partition, session, 0, 0, 0, ERROR.UNKNOWN_OP, `op ${view.getUint8(header + HEADER_OP)} is not handled by workers`);
    }
    frame = payload + payloadLength;
  }
  invariant(frame === end, 'frames fill their input record exactly');
}
