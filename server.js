// The server entry: node --max-old-space-size=4096 server.js [options]  (see --help).
import './dist/msgpack-pure.js';
import { main } from './dist/main.js';

await main(process.argv.slice(2));
