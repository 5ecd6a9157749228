export { mintToken, createTokenVerifier, allows } from './auth/token.js';
export type { Claims, Grant, MintOptions } from './auth/token.js';
export { shardOf } from './net/protocol.js';
