// Where static data ends: the driver places its arena above this address.

/** First byte above the module's static data (the arena may start at or after it). */
export function heapBase(): usize {
  return __heap_base;
}
