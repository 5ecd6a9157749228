// Types of bench/peers/install.js, for the TypeScript tests.
export declare const PEERS: ReadonlyArray<{ binary: string; pkg: string }>;
export declare function findBinary(binary: string): string | null;
export interface FoundPeers {
  'nats-server': string | null;
  'redis-server': string | null;
  /** Debian packages this call installed (empty when everything was there). */
  installed: string[];
}
export declare function ensurePeers(options?: { quiet?: boolean; log?: (line: string) => void }): Promise<FoundPeers>;
export declare function peerVersions(): { nats: string | null; redis: string | null };
