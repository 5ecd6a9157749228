// A bare uWebSockets.js echo server: every binary message goes straight back. It is the
// reference ceiling for bench/load.js: what the transport alone costs on this machine.
//
//   node bench/echo-server.js [--host 127.0.0.1] [--port 0]
//
// Prints `echo ready ws://HOST:PORT/` on stdout once listening; exits on SIGTERM/SIGINT.
import { parseArgs } from 'node:util';
import uWS from 'uWebSockets.js';
import { serveUntilSignal } from './reference-server.js';

const { values } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string', default: '0' },
  },
});

// The package silently falls back to a pure-JS implementation when the native addon does
// not load; a ceiling measured on that would be meaningless, so say so loudly.
if (typeof uWS.SSLApp !== 'function') {
  console.error('echo-server: uWebSockets.js native addon NOT loaded (JS fallback in use); figures are not a uWS reference');
}

const app = uWS.App().ws('/*', {
  compression: uWS.DISABLED,
  maxPayloadLength: 64 * 1024 * 1024,
  maxBackpressure: 64 * 1024 * 1024,
  closeOnBackpressureLimit: false,
  idleTimeout: 0,
  sendPingsAutomatically: false,
  message: (ws, message, isBinary) => {
    // `message` is only valid during the callback; send() copies it into the socket buffer.
    ws.send(message, isBinary, false);
  },
});

serveUntilSignal(app, 'echo', values.host, values.port);
