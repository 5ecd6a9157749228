// The WebRTC example's page. Every tab leases the log demo/<room>; the leader (the first
// attached) opens an RTCPeerConnection with a data channel to each other tab. Offers, answers
// and ICE candidates travel as tailgrove signals (JSON in bytes); chat messages then go
// peer to peer over the data channels, never through tailgrove.
import { connect } from '/dist/client/index.js';

/** @typedef {import('../../dist/client/index.js').Attached} Attached */
/**
 * A connection with another tab, keyed by that tab's handle (handles change when a tab reconnects).
 * @typedef {object} Peer
 * @property {string} device
 * @property {RTCPeerConnection} connection
 * @property {RTCDataChannel | null} channel
 * @property {Promise<void>} inbox signals from the peer, applied one after the other
 */
/** A signal's content: one of the two. @typedef {{ description?: RTCSessionDescriptionInit, candidate?: RTCIceCandidateInit }} SignalMessage */

const params = new URLSearchParams(location.search);
const room = params.get('room') || 'room-1';
const device = params.get('device') || `tab-${Math.random().toString(36).slice(2, 8)}`;
const ice = params.get('ice');
const iceServers = ice ? [{ urls: ice }] : []; // tabs on one machine need no STUN
const encoder = new TextEncoder();
const decoder = new TextDecoder();

const statusView = /** @type {HTMLElement} */ (document.getElementById('status'));
const errorView = /** @type {HTMLElement} */ (document.getElementById('error'));
const presenceView = /** @type {HTMLUListElement} */ (document.getElementById('presence'));
const messagesView = /** @type {HTMLUListElement} */ (document.getElementById('messages'));
const form = /** @type {HTMLFormElement} */ (document.getElementById('send'));
const input = /** @type {HTMLInputElement} */ (document.getElementById('text'));

/** @type {Map<number, Peer>} */
const peers = new Map();

const log = await joinRoom().catch((error) => {
  report(error);
  throw error;
});
log.onSignal(onSignal);
log.onPresence(onPresence);
onPresence(log.presence); // the lease's own presence came before this listener
form.addEventListener('submit', sendMessage);

async function joinRoom() {
  const { tailgrove } = await fetch('/config.json').then((response) => response.json());
  const client = await connect(tailgrove, { token: fetchToken });
  return client.lease('demo', room);
}

/** The demo backend mints a token for this tab's device; called again on every reconnect and refresh. */
async function fetchToken() {
  const response = await fetch(`/token?device=${encodeURIComponent(device)}`);
  if (!response.ok) throw new Error(`GET /token answered ${response.status}: ${await response.text()}`);
  return response.text();
}

/** @param {readonly Attached[]} presence */
function onPresence(presence) {
  const attached = new Set(presence.map((other) => other.handle));
  for (const handle of peers.keys()) if (!attached.has(handle)) closePeer(handle);
  // The leader connects to everyone it has no connection with: new tabs, and every tab
  // right after it became the leader.
  if (log.isLeader) {
    for (const other of presence) if (other.handle !== log.handle && !peers.has(other.handle)) offer(other);
  }
  render();
}

/** @param {Attached} other */
function offer(other) {
  const peer = openPeer(other.handle, other.device);
  watchChannel(peer, peer.connection.createDataChannel('chat'));
  peer.inbox = peer.connection
    .setLocalDescription()
    .then(() => send(other.handle, { description: peer.connection.localDescription?.toJSON() }))
    .catch(unlessClosed(peer));
}

/** @param {import('../../dist/client/index.js').Signal} signal */
function onSignal({ from, device: sender, data }) {
  /** @type {SignalMessage} */
  const message = JSON.parse(decoder.decode(data));
  let peer = peers.get(from);
  if (message.description?.type === 'offer') {
    if (peer) closePeer(from); // the leader starts over: answer the new offer on a new connection
    const answering = openPeer(from, sender);
    answering.connection.addEventListener('datachannel', (event) => watchChannel(answering, event.channel));
    peer = answering;
    render();
  }
  // Signals between two tabs arrive in the order they were sent: a description before its
  // candidates. A candidate for a connection closed since then has nothing to do.
  if (peer) peer.inbox = peer.inbox.then(() => apply(peer, from, message)).catch(unlessClosed(peer));
}

/** @param {Peer} peer @param {number} from @param {SignalMessage} message */
async function apply({ connection }, from, { description, candidate }) {
  if (description) {
    await connection.setRemoteDescription(description);
    if (description.type === 'offer') {
      await connection.setLocalDescription();
      send(from, { description: connection.localDescription?.toJSON() });
    }
  } else if (candidate) {
    await connection.addIceCandidate(candidate);
  }
}

/** @param {number} handle @param {string} peerDevice @returns {Peer} */
function openPeer(handle, peerDevice) {
  const connection = new RTCPeerConnection({ iceServers });
  /** @type {Peer} */
  const peer = { device: peerDevice, connection, channel: null, inbox: Promise.resolve() };
  connection.addEventListener('icecandidate', ({ candidate }) => {
    if (candidate) send(handle, { candidate: candidate.toJSON() });
  });
  connection.addEventListener('connectionstatechange', render);
  peers.set(handle, peer);
  return peer;
}

/** @param {Peer} peer @param {RTCDataChannel} channel */
function watchChannel(peer, channel) {
  peer.channel = channel;
  channel.addEventListener('open', render);
  channel.addEventListener('close', render);
  channel.addEventListener('message', (event) => showMessage(peer.device, String(event.data), 'datachannel'));
}

/** @param {number} handle */
function closePeer(handle) {
  peers.get(handle)?.connection.close();
  peers.delete(handle);
}

/** @param {number} handle @param {SignalMessage} message */
function send(handle, message) {
  // NOT_ATTACHED (the peer left) and DISCONNECTED (we are reconnecting) need nothing: the
  // next presence closes the connection, and the leader offers again to new handles.
  log.signal(handle, encoder.encode(JSON.stringify(message))).catch((error) => {
    if (error.code !== 'NOT_ATTACHED' && error.code !== 'DISCONNECTED') report(error);
  });
}

/** @param {SubmitEvent} event */
function sendMessage(event) {
  event.preventDefault();
  const text = input.value.trim();
  if (!text) return;
  const open = [...peers.values()].filter((peer) => peer.channel?.readyState === 'open');
  for (const peer of open) peer.channel?.send(text);
  showMessage('me', text, open.length > 0 ? 'sent' : 'unsent');
  input.value = '';
}

/** @param {string} from @param {string} text @param {'datachannel' | 'sent' | 'unsent'} via */
function showMessage(from, text, via) {
  const item = document.createElement('li');
  item.dataset.from = from;
  item.dataset.via = via;
  item.textContent = via === 'unsent' ? `${from}: ${text} (no open data channel)` : `${from}: ${text}`;
  messagesView.append(item);
}

function render() {
  document.body.dataset.role = log.isLeader ? 'leader' : 'follower';
  statusView.textContent = `${device} in room ${room}: ${log.isLeader ? 'the leader' : `following ${log.leader?.device ?? 'nobody'}`}`;
  presenceView.replaceChildren(
    ...log.presence.map((other) => {
      const item = document.createElement('li');
      const peer = peers.get(other.handle);
      item.dataset.device = other.device;
      if (other.handle === log.leader?.handle) item.dataset.leader = '';
      if (peer?.channel) item.dataset.channel = peer.channel.readyState;
      const notes = [other.handle === log.leader?.handle && 'leader', other.handle === log.handle && 'this tab'];
      if (peer) notes.push(`${peer.connection.connectionState}, data channel ${peer.channel?.readyState ?? 'not yet'}`);
      item.textContent = [`${other.device} (handle ${other.handle})`, ...notes.filter(Boolean)].join(' · ');
      return item;
    }),
  );
}

/** Report a failed negotiation step, unless the connection was closed meanwhile (its peer left). @param {Peer} peer */
function unlessClosed(peer) {
  return (/** @type {unknown} */ error) => {
    if (peer.connection.signalingState !== 'closed') report(error);
  };
}

/** @param {unknown} error */
function report(error) {
  console.error(error);
  errorView.textContent = String(error);
}
