// Environment switches for tests (VHDSYNC_NO_NATIVE_SCAN, VHDSYNC_NO_NATIVE_LOG, ...), always
// put back as they were.

/** Runs `body` with `name` set to `value` (unset when undefined), restoring it afterwards. */
export async function withEnv<T>(name: string, value: string | undefined, body: () => Promise<T>): Promise<T> {
  const saved = process.env[name];
  setOrDelete(name, value);
  try {
    return await body();
  } finally {
    setOrDelete(name, saved);
  }
}

/** Sets `name` to `value` for the rest of test `t`. */
export function setEnvFor(t: { teardown: (fn: () => void) => void }, name: string, value: string): void {
  const saved = process.env[name];
  process.env[name] = value;
  t.teardown(() => setOrDelete(name, saved));
}

function setOrDelete(name: string, value: string | undefined): void {
  if (value === undefined) delete process.env[name];
  else process.env[name] = value;
}
