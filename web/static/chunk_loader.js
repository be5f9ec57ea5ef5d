// Fetches one chunk of the board (`GET /api/chunk/{cx}/{cy}.bin`): its RGB
// bytes and the `seq` and epoch they are as of. The browser's HTTP cache
// keeps the bytes and revalidates them by ETag (the server answers 304 for
// a chunk nobody wrote since), so reloading the chunks in view after a
// reconnect costs little when nothing changed.

/** A chunk answer that cannot be used: the status, or what was wrong. */
export class ChunkLoadError extends Error {
  constructor(cx, cy, reason) {
    super(`chunk (${cx}, ${cy}): ${reason}`);
    this.name = "ChunkLoadError";
  }
}

/**
 * The chunk (cx, cy) of `size`² pixels: {rgb, seq, epoch}, `rgb` row-major,
 * three bytes a pixel. Throws ChunkLoadError for an answer that is not one.
 * @param {AbortSignal} [signal]  aborts the fetch (the chunk was dropped)
 */
export async function fetchChunk(cx, cy, size, signal) {
  // "no-cache": use the cached bytes only after the server said (304) they
  // are current.
  const r = await fetch(`/api/chunk/${cx}/${cy}.bin`, { cache: "no-cache", signal });
  if (!r.ok) throw new ChunkLoadError(cx, cy, `answered ${r.status}`);
  const seq = Number(r.headers.get("x-canvas-seq"));
  const sent = Number(r.headers.get("x-canvas-chunk-size"));
  if (!(seq >= 0) || r.headers.get("x-canvas-seq") === null) throw new ChunkLoadError(cx, cy, "came without its seq");
  if (sent !== size) throw new ChunkLoadError(cx, cy, `is ${sent} pixels wide, expected ${size}`);
  const rgb = new Uint8Array(await r.arrayBuffer());
  if (rgb.length !== size * size * 3) throw new ChunkLoadError(cx, cy, `has ${rgb.length} bytes, expected ${size * size * 3}`);
  return { rgb, seq, epoch: r.headers.get("x-canvas-epoch") || "" };
}
