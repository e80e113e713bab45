/**
 * Asserts fn throws an error of the named class with a matching message. Compares the class by
 * name: errors made by native code come from Node's main realm, not Jest's sandbox realm, so
 * `instanceof RangeError` would be false even for a real RangeError.
 */
export function expectThrows(fn: () => unknown, name: 'TypeError' | 'RangeError' | 'Error', message: RegExp): void {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeDefined();
  expect((caught as Error).name).toBe(name);
  expect((caught as Error).message).toMatch(message);
}

/** The same for a rejected promise. */
export async function expectRejects(p: Promise<unknown>, name: 'TypeError' | 'RangeError' | 'Error', message: RegExp): Promise<void> {
  let caught: unknown;
  try {
    await p;
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeDefined();
  expect((caught as Error).name).toBe(name);
  expect((caught as Error).message).toMatch(message);
}
