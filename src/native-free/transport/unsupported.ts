// Members of the uWS API outside the subset this transport provides (docs/NATIVE-FREE.md,
// "Transport"): tailgrove never calls them. They exist so the objects type as uWS's own,
// and throw when called rather than behave differently from uWS.
export function unsupported(member: string): never {
  throw new Error(`uws-compat: ${member} is outside the uWS subset this transport provides; tailgrove never calls it`);
}
