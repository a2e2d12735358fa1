/**
 * The not-yet-discarded tail of a text stream, addressed by absolute offsets from the start of the stream.
 *
 * V8 builds `a += b` as a rope and copies the whole rope into a flat string the first time a character of it is
 * read. Reading a growing buffer on every push is therefore quadratic. Two measures avoid that:
 * - reads at or after the last delta go to the delta itself;
 * - text that must still be emitted but is no longer read (the start of a long sentence) is moved out of the
 *   read window into {@link held}, a rope that is only flattened when a chunk is cut from it.
 */
export class TextBuffer {
  /** Text from {@link base} to {@link end}: the window that finders read. */
  text = '';
  /** Absolute offset of `text[0]`. */
  base = 0;
  /** Absolute offset just past the last character received. */
  end = 0;
  /** Text from {@link heldStart} to {@link base}, kept for output only. */
  held = '';
  heldStart = 0;
  #tail = '';
  #tailStart = 0;

  append(delta: string): void {
    this.text += delta;
    this.#tail = delta;
    this.#tailStart = this.end;
    this.end += delta.length;
  }

  /** UTF-16 code unit at absolute offset `p` (`NaN` outside the buffer). */
  code(p: number): number {
    if (p >= this.#tailStart) return this.#tail.charCodeAt(p - this.#tailStart);
    return p >= this.base ? this.text.charCodeAt(p - this.base) : this.held.charCodeAt(p - this.heldStart);
  }

  slice(from: number, to: number): string {
    const base = this.base;
    if (from >= base) return this.text.slice(from - base, to - base);
    const h = this.held.slice(from - this.heldStart, to - this.heldStart);
    return to <= base ? h : h + this.text.slice(0, to - base);
  }

  /**
   * Frees text: nothing before `outFrom` is needed any more, and nothing before `readFrom` (≥ base) will be
   * read character by character, only sliced for output.
   */
  release(outFrom: number, readFrom: number): void {
    const base = this.base;
    if (readFrom <= base) return;
    if (outFrom >= readFrom) {
      this.held = '';
    } else if (outFrom >= base) {
      this.held = this.text.slice(outFrom - base, readFrom - base);
    } else {
      const h = outFrom > this.heldStart ? this.held.slice(outFrom - this.heldStart) : this.held;
      this.held = h + this.text.slice(0, readFrom - base);
    }
    this.heldStart = Math.min(Math.max(outFrom, this.heldStart), readFrom);
    this.text = this.text.slice(readFrom - base);
    this.base = readFrom;
    if (this.#tailStart < readFrom) {
      this.#tail = this.text.slice(0, this.#tailStart + this.#tail.length - readFrom);
      this.#tailStart = readFrom;
    }
  }

  clear(): void {
    this.text = this.held = this.#tail = '';
    this.base = this.end = this.heldStart = this.#tailStart = 0;
  }
}
