/**
 * A boundary detector: it reads a {@link TextBuffer} as text arrives and reports sentence split offsets
 * once they are certain. Decisions depend only on the text, never on how it was cut into deltas; that is
 * what makes streaming give the same sentences as segmenting the whole text.
 */
export interface SplitFinder {
  /**
   * Decides what the text received so far allows. Appends split offsets (absolute, ascending; a split is the
   * offset where the next sentence starts) to `out`. `final` means no more text will come.
   * @returns the offset before which every split has been reported.
   */
  scan(final: boolean, out: number[]): number;
  /**
   * Fast path for a delta just appended: returns true (and takes note) if the delta cannot change any
   * decision, so that {@link scan} need not run; false if a scan is needed.
   */
  skip(delta: string): boolean;
  /** Earliest offset the finder may still read; the buffer may drop text before it. */
  keepFrom(): number;
  reset(): void;
}
