/**
 * Word lists behind the merge rules. Kept short and general: each entry is a common English
 * abbreviation, not a fix for one test sentence.
 */

/**
 * How an abbreviation followed by a period behaves before a capitalised word.
 * - `prefix`: precedes a name or noun phrase (titles, "vs.", "e.g."); joins the next word unless that word
 *   clearly starts a new sentence (see {@link SENTENCE_STARTERS}).
 * - `numeric`: a reference that precedes a number ("No. 5", "Fig. 3", "pp. 10"); joins only before a digit.
 * - `month`, `day`: abbreviated date words; join before a digit (a day also before a month name).
 *
 * Abbreviations that often end a sentence ("etc.", "Inc.", "Ltd.", "Co.", "Jr.", "a.m.", "U.S.") are deliberately
 * absent: ICU already keeps them before a lowercase word and splits before a capitalised one, which is the
 * right call for them.
 */
export type AbbreviationKind = 'prefix' | 'numeric' | 'month' | 'day';

const PREFIX = [
  // titles and ranks
  'mr', 'mrs', 'ms', 'mx', 'messrs', 'mmes', 'dr', 'prof', 'rev', 'fr', 'hon', 'pres', 'gov', 'sen', 'rep',
  'gen', 'col', 'lt', 'capt', 'cmdr', 'cdr', 'maj', 'sgt', 'cpl', 'pvt', 'adm', 'brig', 'supt', 'insp', 'det',
  'atty', 'amb', 'sec', 'st', 'mt', 'ft',
  // Latin and connective abbreviations that never end a sentence
  'vs', 'v', 'e.g', 'i.e', 'cf', 'viz', 'approx', 'appx', 'ca', 'c', 'incl', 'esp', 'a.k.a', 'resp', 'est',
];
const NUMERIC = [
  'no', 'nos', 'nr', 'fig', 'figs', 'eq', 'eqs', 'ch', 'chap', 'vol', 'vols', 'p', 'pp', 'art', 'ref', 'op', 'tab', 'pt',
];
const MONTHS = ['jan', 'feb', 'mar', 'apr', 'jun', 'jul', 'aug', 'sep', 'sept', 'oct', 'nov', 'dec'];
const DAYS = ['mon', 'tue', 'tues', 'wed', 'thu', 'thur', 'thurs', 'fri', 'sat', 'sun'];

const ABBREVIATIONS = new Map<string, AbbreviationKind>();
for (const w of PREFIX) ABBREVIATIONS.set(w, 'prefix');
for (const w of NUMERIC) ABBREVIATIONS.set(w, 'numeric');
for (const w of MONTHS) ABBREVIATIONS.set(w, 'month');
for (const w of DAYS) ABBREVIATIONS.set(w, 'day');

/** Kind of the abbreviation `word` (the text before the final period, e.g. `"e.g"`, `"Mr"`), if it is one. */
export function abbreviationKind(word: string): AbbreviationKind | undefined {
  if (word.length === 0 || word.length > 7) return undefined;
  // A single capital is an initial ("John F. Kennedy"), handled by its own rule; only "v.", "c.", "p." qualify.
  if (word.length === 1 && word !== word.toLowerCase()) return undefined;
  const kind = ABBREVIATIONS.get(word.toLowerCase());
  // Capitalised only: "Sat." and "Mar." are dates, "sat." and "mar." are verbs.
  if ((kind === 'month' || kind === 'day') && !/^\p{Lu}/u.test(word)) return undefined;
  return kind;
}

/** English month names, full and abbreviated, after which an abbreviated day keeps going ("Sat. Jan. 4"). */
export const MONTH_NAMES = new Set([
  'January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November',
  'December', 'Jan', 'Feb', 'Mar', 'Apr', 'Jun', 'Jul', 'Aug', 'Sep', 'Sept', 'Oct', 'Nov', 'Dec',
]);

/**
 * Capitalised words that almost always begin a new sentence rather than continue a name.
 * Used to split after a title or an initial when a name is not what follows ("option B. It works").
 */
export const SENTENCE_STARTERS = new Set([
  'I', 'You', 'He', 'She', 'It', 'We', 'They', 'This', 'That', 'These', 'Those', 'There', 'Here', 'The', 'A', 'An',
  'My', 'Your', 'His', 'Her', 'Its', 'Our', 'Their', 'But', 'And', 'Or', 'So', 'Yet', 'Then', 'Now', 'However',
  'Also', 'If', 'When', 'While', 'Where', 'What', 'Who', 'Why', 'How', 'Which', 'In', 'On', 'At', 'For', 'As',
  'After', 'Before', 'Because', 'Although', 'Though', 'Please', 'Thanks', 'Thank', 'Yes', 'No', 'Let', 'Is', 'Are',
  'Was', 'Were', 'Do', 'Does', 'Did', 'Could', 'Would', 'Should', 'Have', 'Has', 'Had', 'Not', 'All', 'Some',
  'Many', 'Most', 'Each', 'Every', 'Meanwhile', 'Finally', 'Next', 'First', 'Today', 'Tomorrow', 'Yesterday',
  'Still', 'Just', 'Sure', 'Okay', 'Ok', 'Well', 'Oh', 'Hi', 'Hello', 'To', 'From', 'With', 'By', 'Of',
]);

/** Lowercase words that may directly precede a name with an initial ("by J. Smith", "and F. Scott"). */
export const NAME_LEAD_WORDS = new Set([
  'by', 'of', 'to', 'from', 'with', 'and', 'or', 'for', 'as', 'like', 'than', 'between', 'including', 'said',
  'says', 'told', 'wrote', 'dear', 'called', 'named', 'meet', 'met', 'ask', 'asked', 'thank', 'thanked',
]);

/**
 * German month names: after "der 3." or "am 1." a period marks an ordinal day, not a sentence end. Months
 * spelled like English ones also need a German article or preposition before the number.
 */
export const GERMAN_MONTHS = new Set([
  'Januar', 'Jänner', 'Februar', 'März', 'April', 'Mai', 'Juni', 'Juli', 'August', 'September', 'Oktober',
  'November', 'Dezember',
]);
export const GERMAN_MONTHS_SPELLED_AS_ENGLISH = new Set(['April', 'August', 'September', 'November']);
export const GERMAN_DATE_LEAD_WORDS = new Set([
  'der', 'den', 'dem', 'am', 'vom', 'zum', 'bis', 'ab', 'seit', 'ist', 'vor', 'nach',
]);
