// A bare uWebSockets.js pub/sub server: the baseline of the fan-out benchmark
// (`node bench/load.js --pubsub-only`). Sockets on /sub subscribe to one topic when they
// open; every binary message from a socket on /pub (or any other path) is published to that
// topic with `app.publish(topic, message, true)`, so it goes to every subscriber, once per
// message (uWS does not coalesce several publishes into one WebSocket message).
//
//   node bench/pubsub-server.js [--host 127.0.0.1] [--port 0] [--topic bench]
//
// Prints `pubsub ready ws://HOST:PORT/` on stdout once listening; exits on SIGTERM/SIGINT.
import { parseArgs } from 'node:util';
import uWS from 'uWebSockets.js';
import { serveUntilSignal } from './reference-server.js';

const { values } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string', default: '0' },
    topic: { type: 'string', default: 'bench' },
  },
});
const topic = values.topic;

// As in echo-server.js: a figure measured on the JS fallback would not be a uWS baseline.
if (typeof uWS.SSLApp !== 'function') {
  console.error('pubsub-server: uWebSockets.js native addon NOT loaded (JS fallback in use); figures are not a uWS reference');
}

const app = uWS.App();
app.ws('/*', {
  compression: uWS.DISABLED,
  maxPayloadLength: 64 * 1024 * 1024,
  // Publishes to a subscriber beyond this backpressure are dropped by uWS; the load
  // generator bounds what is in flight far below it.
  maxBackpressure: 256 * 1024 * 1024,
  closeOnBackpressureLimit: false,
  idleTimeout: 0,
  sendPingsAutomatically: false,
  upgrade: (res, req, context) => {
    res.upgrade(
      { subscriber: req.getUrl().startsWith('/sub') },
      req.getHeader('sec-websocket-key'),
      req.getHeader('sec-websocket-protocol'),
      req.getHeader('sec-websocket-extensions'),
      context,
    );
  },
  open: (ws) => {
    if (ws.getUserData().subscriber) ws.subscribe(topic);
  },
  message: (ws, message, isBinary) => {
    // `message` is only valid during the callback; publish() copies it to the subscribers.
    if (!ws.getUserData().subscriber) app.publish(topic, message, isBinary);
  },
});

serveUntilSignal(app, 'pubsub', values.host, values.port);
