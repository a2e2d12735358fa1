/**
 * Rich content (Rasa's message fields) as Bot Framework attachments, following the conventions
 * of Rasa's own Bot Framework channel: `image` → an image attachment, `buttons` → a hero card of
 * `imBack` buttons (the click sends the payload back as the user's message), `elements` → one hero
 * card each, `attachment` (a URL) → a hero card with an "open" button, and `custom` → an Adaptive
 * Card when it is one (`type: 'AdaptiveCard'`) or a ready attachment when it has a `contentType`.
 * Anything else in `custom` cannot be shown and is reported as skipped.
 * @module
 */

import type { Attachment } from './activity.ts';

/** Content type of an Adaptive Card attachment. */
export const ADAPTIVE_CARD = 'application/vnd.microsoft.card.adaptive';
/** Content type of a hero card attachment. */
export const HERO_CARD = 'application/vnd.microsoft.card.hero';

/** A card action (button). */
export interface CardAction {
  type: 'imBack' | 'messageBack' | 'openUrl' | 'postBack' | string;
  title: string;
  value: unknown;
  [key: string]: unknown;
}

/** Wraps an Adaptive Card (an object with `type: 'AdaptiveCard'`) as an attachment. */
export function adaptiveCard(card: Record<string, unknown>): Attachment {
  return { contentType: ADAPTIVE_CARD, content: card };
}

/** A hero card attachment. */
export function heroCard(content: { title?: string; subtitle?: string; text?: string; images?: { url: string }[]; buttons?: CardAction[] }): Attachment {
  const card: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(content)) if (value !== undefined && !(Array.isArray(value) && value.length === 0)) card[key] = value;
  return { contentType: HERO_CARD, content: card };
}

const IMAGE_TYPES: Readonly<Record<string, string>> = {
  png: 'image/png',
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  gif: 'image/gif',
  webp: 'image/webp',
  svg: 'image/svg+xml',
  bmp: 'image/bmp',
};

function fileName(url: string): string {
  const path = url.split(/[?#]/, 1)[0] ?? url;
  const last = path.slice(path.lastIndexOf('/') + 1);
  try {
    return decodeURIComponent(last) || url;
  } catch {
    return last || url;
  }
}

/** An image attachment for a URL (the type is guessed from the extension, PNG by default). */
export function imageAttachment(url: string): Attachment {
  const ext = /\.([a-z0-9]+)$/i.exec(url.split(/[?#]/, 1)[0] ?? '')?.[1]?.toLowerCase();
  return { contentType: (ext !== undefined ? IMAGE_TYPES[ext] : undefined) ?? 'image/png', contentUrl: url, name: fileName(url) };
}

/** Maps a Rasa button (`{ title, payload }`, or `{ title, url }`) to a card action. */
export function toCardAction(button: Record<string, unknown>): CardAction | undefined {
  const title = typeof button.title === 'string' ? button.title : undefined;
  const url = typeof button.url === 'string' ? button.url : undefined;
  const payload = typeof button.payload === 'string' ? button.payload : undefined;
  if (title === undefined && payload === undefined && url === undefined) return undefined;
  if (url !== undefined) return { type: 'openUrl', title: title ?? url, value: url };
  return { type: 'imBack', title: title ?? payload ?? '', value: payload ?? title };
}

function actions(buttons: unknown): CardAction[] {
  if (!Array.isArray(buttons)) return [];
  const out: CardAction[] = [];
  for (const b of buttons) {
    if (typeof b !== 'object' || b === null) continue;
    const action = toCardAction(b as Record<string, unknown>);
    if (action !== undefined) out.push(action);
  }
  return out;
}

function isAttachment(value: unknown): value is Attachment {
  return typeof value === 'object' && value !== null && typeof (value as { contentType?: unknown }).contentType === 'string';
}

/** What {@link attachmentsFromContent} produced, and the fields it had to leave out. */
export interface MappedContent {
  attachments: Attachment[];
  /** Fields that carried something no attachment can show (e.g. arbitrary `custom` JSON). */
  skipped: string[];
}

/** The attachments for the rich fields of a chunk or message (its `text` is not included). */
export function attachmentsFromContent(content: Record<string, unknown>): MappedContent {
  const attachments: Attachment[] = [];
  const skipped: string[] = [];
  const image = typeof content.image === 'string' && content.image !== '' ? content.image : undefined;
  const buttons = actions(content.buttons);
  if (image !== undefined) attachments.push(imageAttachment(image));
  if (buttons.length > 0) attachments.push(heroCard({ buttons }));
  if (Array.isArray(content.elements)) {
    for (const element of content.elements) {
      if (typeof element !== 'object' || element === null) continue;
      const e = element as Record<string, unknown>;
      const card = heroCard({
        title: typeof e.title === 'string' ? e.title : undefined,
        subtitle: typeof e.subtitle === 'string' ? e.subtitle : undefined,
        images: typeof e.image_url === 'string' ? [{ url: e.image_url }] : undefined,
        buttons: actions(e.buttons),
      });
      if (Object.keys(card.content as object).length > 0) attachments.push(card);
    }
  }
  if (typeof content.attachment === 'string' && content.attachment !== '') {
    const url = content.attachment;
    attachments.push(heroCard({ buttons: [{ type: 'openUrl', title: fileName(url), value: url }] }));
  }
  const custom = content.custom;
  if (typeof custom === 'object' && custom !== null && !Array.isArray(custom) && Object.keys(custom).length > 0) {
    const c = custom as Record<string, unknown>;
    if (c.type === 'AdaptiveCard') attachments.push(adaptiveCard(c));
    else if (isAttachment(c)) attachments.push(c);
    else if (Array.isArray(c.attachments) && c.attachments.every(isAttachment)) attachments.push(...(c.attachments as Attachment[]));
    else skipped.push('custom');
  }
  return { attachments, skipped };
}
