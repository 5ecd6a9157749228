// A throwing callback of the app must not abort the frames that follow it in the same
// message; its error is rethrown on its own, where the host reports uncaught errors.
export function callSafely(callback: () => void): void {
  try {
    callback();
  } catch (error) {
    queueMicrotask(() => {
      throw error;
    });
  }
}
