// Listen and stop for the bare uWS reference servers (echo, pub/sub): print
// `<name> ready ws://HOST:PORT/` once listening, close the port and exit on SIGTERM/SIGINT.
import uWS from 'uWebSockets.js';

export function serveUntilSignal(app, name, host, port) {
  let listenSocket = null;
  app.listen(host, Number(port), (token) => {
    if (!token) {
      console.error(`${name}-server: cannot listen on ${host}:${port}`);
      process.exit(1);
    }
    listenSocket = token;
    console.log(`${name} ready ws://${host}:${uWS.us_socket_local_port(token)}/`);
  });
  const stop = () => {
    if (listenSocket) uWS.us_listen_socket_close(listenSocket);
    listenSocket = null;
    // Open connections would keep the loop alive; a reference server has nothing to flush.
    setTimeout(() => process.exit(0), 50);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
