// Members of the uWS API that tailgrove does not use: present so the objects are typed as
// uWS's own, and loud when called, never silently different.
export function unsupported(member: string): never {
  throw new Error(`uws-compat: ${member} is not implemented (tailgrove does not use it); it needs the native uWebSockets.js`);
}
