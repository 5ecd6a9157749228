// msgpack for the metadata tables, from msgpackr's pure-JavaScript build: `msgpackr/pack`
// resolves to its index.js, which never loads the optional native `msgpackr-extract`.
// Loading this engine also turns msgpackr's native acceleration off for the rest of the
// process: any later `import 'msgpackr'` (the main entry, which would load the addon) reads
// this variable when it is first evaluated.
process.env.MSGPACKR_NATIVE_ACCELERATION_DISABLED = 'true';

export { pack, unpack } from 'msgpackr/pack';
