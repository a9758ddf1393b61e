/**
 * Names come from sources, agents and people (host names, user names, filesystem labels, paths): one holding
 * right-to-left letters or a bidirectional control such as U+202E RIGHT-TO-LEFT OVERRIDE would otherwise reorder
 * the sentence around it (an override reverses everything after it, to the end of the paragraph). Isolated between
 * U+2068 FIRST STRONG ISOLATE and U+2069 POP DIRECTIONAL ISOLATE, it keeps its own direction and cannot leak into the
 * text around it; the PDI also ends any override or embedding the name opened. Names shown on their own (a table
 * cell, a heading) are isolated by a <bdi> element instead.
 *
 * Only strings that can reorder anything get the two marks: in this UI's left-to-right languages, text of
 * left-to-right letters, digits and punctuation renders the same with or without them, and text copied from the page
 * (an address, a disk name) should not carry invisible characters it does not need.
 */
const FSI = '\u2068';
const PDI = '\u2069';

/** Right-to-left scripts (Hebrew, Arabic, Syriac, Thaana, NKo, … and their presentation forms) and the bidi controls. */
const REORDERS = /[\u0590-\u08FF\uFB1D-\uFDFF\uFE70-\uFEFE\u{10800}-\u{10FFF}\u{1E800}-\u{1EFFF}]|\p{Bidi_Control}/u;

export function needsIsolation(text: string): boolean {
  return REORDERS.test(text);
}

/** The text between FSI and PDI when it could reorder what surrounds it; as it is otherwise. */
export function isolate(text: string): string {
  return needsIsolation(text) ? `${FSI}${text}${PDI}` : text;
}
