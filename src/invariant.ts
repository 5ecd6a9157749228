// Assertions for the core. Unlike node:assert, a call allocates nothing when it holds (no
// arguments object, no message built): messages are constant strings. A failure is a bug:
// it throws, and is never caught to carry on.
export class InvariantError extends Error {
  override name = 'InvariantError';
}

export function invariant(condition: boolean, message: string): asserts condition {
  if (!condition) throw new InvariantError(`invariant violated: ${message}`);
}
