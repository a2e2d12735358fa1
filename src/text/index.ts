export { SentenceStream } from './sentence-stream.ts';
export { segmentText } from './segment-text.ts';
export type { SegmentOptions, SentenceStreamOptions } from './options.ts';
export { ACE_SENTENCE_PATTERN_SOURCE, acePattern } from './ace-pattern.ts';
