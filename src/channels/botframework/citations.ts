/**
 * Citations on Teams: conversion to `ClientCitation`, the `[docN]` → `[N]` marker rewrite, and the
 * filter that keeps only the citations a text refers to (`reference/teams-ai.md` §1.4–1.6).
 * @module
 */

import type { ClientCitation, SensitivityUsageInfo } from './activity.ts';

/**
 * A citation as an action or a model gives it. Both Teams AI's input shape (`content`, `title`,
 * `url`, `filepath`) and Sluice's `Citation` (`snippet`, `title`, `url`, `position`) are read; a
 * ready `ClientCitation` (`'@type': 'Claim'`) passes through.
 */
export interface CitationInput {
  /** The `[n]` the text uses for it; by default the next free number. */
  position?: number;
  title?: string | null;
  url?: string | null;
  /** Excerpt shown on hover (Sluice's name). */
  snippet?: string | null;
  /** Excerpt shown on hover (Teams AI's name). */
  content?: string | null;
  filepath?: string | null;
  /** Up to 3 keywords, 28 characters each. */
  keywords?: string[];
  /** One of Teams' icon names, e.g. "PDF", "Microsoft Word". */
  icon?: string;
  /** A stringified Adaptive Card shown in a modal. */
  card?: string;
  usageInfo?: SensitivityUsageInfo;
  [key: string]: unknown;
}

/** The service renders at most 20 citations and rejects more with 400. */
export const MAX_CITATIONS = 20;
/** Longest citation title Teams accepts. */
export const MAX_CITATION_NAME = 80;
/** Longest citation abstract Teams documents. */
export const MAX_CITATION_ABSTRACT = 160;

/** Clips `text` to `max` characters, on a word boundary when one is near, ending with "...". */
export function clip(text: string, max: number): string {
  if (text.length <= max) return text;
  const room = max - 3;
  const cut = text.slice(0, room);
  const space = cut.lastIndexOf(' ');
  return `${(space > room * 0.6 ? cut.slice(0, space) : cut).trimEnd()}...`;
}

function isClientCitation(value: unknown): value is ClientCitation {
  return typeof value === 'object' && value !== null && (value as { '@type'?: unknown })['@type'] === 'Claim';
}

/** Converts one citation; `position` is used unless the input has its own. */
export function toClientCitation(input: CitationInput | ClientCitation, position: number): ClientCitation {
  if (isClientCitation(input)) return input;
  const pos = typeof input.position === 'number' && Number.isInteger(input.position) && input.position > 0 ? input.position : position;
  const title = typeof input.title === 'string' && input.title.trim() !== '' ? input.title.trim() : `Document #${pos}`;
  const appearance: ClientCitation['appearance'] = { '@type': 'DigitalDocument', name: clip(title, MAX_CITATION_NAME) };
  const excerpt = input.snippet ?? input.content;
  if (typeof excerpt === 'string' && excerpt.trim() !== '') appearance.abstract = clip(excerpt.trim(), MAX_CITATION_ABSTRACT);
  if (typeof input.url === 'string' && input.url !== '') appearance.url = input.url;
  if (typeof input.card === 'string') {
    appearance.text = input.card;
    appearance.encodingFormat = 'application/vnd.microsoft.card.adaptive';
  }
  if (typeof input.icon === 'string') appearance.image = { '@type': 'ImageObject', name: input.icon };
  if (Array.isArray(input.keywords)) {
    appearance.keywords = input.keywords.filter((k) => typeof k === 'string').slice(0, 3).map((k) => k.slice(0, 28));
  }
  if (input.usageInfo !== undefined) appearance.usageInfo = input.usageInfo;
  return { '@type': 'Claim', position: pos, appearance };
}

const DOC_MARKER = /\[docs?(\d+)\]/gi;

/** Rewrites Azure OpenAI's `[docN]` / `[docsN]` markers to `[N]`, as Teams AI does. */
export function formatCitationMarkers(text: string): string {
  return text.includes('[') ? text.replace(DOC_MARKER, '[$1]') : text;
}

const MARKER = /\[(\d{1,4})\]/g;

/** The positions `[n]` that occur in `text`. */
export function referencedPositions(text: string): Set<number> {
  const found = new Set<number>();
  if (!text.includes('[')) return found;
  for (const match of text.matchAll(MARKER)) found.add(Number(match[1]));
  return found;
}

const PARTIAL_MARKER = /\[(?:d(?:o(?:cs?)?)?)?\d{0,4}$/i;

/**
 * Length of a marker cut in half at the end of `text` (`"[do"`, `"[doc1"`, `"[1"`). Intermediate
 * updates hold it back: once complete it may be rewritten (`[doc1]` → `[1]`), and each update must
 * start with the text of the one before.
 */
export function partialMarkerLength(text: string): number {
  const tail = text.slice(-10);
  const match = PARTIAL_MARKER.exec(tail);
  return match === null ? 0 : match[0].length;
}

/**
 * The citations to put on an activity whose text is `text`: those it references, unique by
 * position, in position order, at most {@link MAX_CITATIONS}. With `allIfNone`, a text that
 * references none gets all of them (Teams AI's final message does that).
 */
export function citationsFor(citations: readonly ClientCitation[], text: string, allIfNone = false): ClientCitation[] {
  if (citations.length === 0) return [];
  const used = referencedPositions(text);
  const seen = new Set<number>();
  const out: ClientCitation[] = [];
  for (const citation of citations) {
    if (seen.has(citation.position)) continue;
    if (used.has(citation.position) || (allIfNone && used.size === 0)) {
      seen.add(citation.position);
      out.push(citation);
    }
  }
  if (allIfNone && used.size > 0 && out.length === 0) return citationsFor(citations, '', true);
  out.sort((a, b) => a.position - b.position);
  return out.length > MAX_CITATIONS ? out.slice(0, MAX_CITATIONS) : out;
}
