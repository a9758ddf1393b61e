import { en, type Key } from './en.ts';
import { zh } from './zh.ts';
import { ja } from './ja.ts';
import { format } from './format.ts';

export type { Key };
export { format };
/** The languages of the project's seed documents; each dictionary must have every key of en (i18n.test.ts). */
export const LANGUAGES = { en: 'English', 'zh-CN': '简体中文', ja: '日本語' } as const;
export type Lang = keyof typeof LANGUAGES;
const DICTIONARIES: Record<Lang, Record<Key, string>> = { en, 'zh-CN': zh, ja };
const STORAGE_KEY = 'ferry.lang';
/** Shown instead of a key missing from a dictionary; the browser test fails on any. */
export const MISSING = '⟦missing:';

function initial(): Lang {
  const saved = typeof localStorage === 'undefined' ? null : localStorage.getItem(STORAGE_KEY);
  if (saved && saved in LANGUAGES) return saved as Lang;
  const nav = typeof navigator === 'undefined' ? 'en' : navigator.language;
  if (nav.startsWith('zh')) return 'zh-CN';
  if (nav.startsWith('ja')) return 'ja';
  return 'en';
}

class I18n {
  lang = $state<Lang>(initial());

  set(lang: Lang): void {
    this.lang = lang;
    localStorage.setItem(STORAGE_KEY, lang);
    document.documentElement.lang = lang;
  }

  t(key: Key, vars?: Record<string, string | number>): string {
    const text = DICTIONARIES[this.lang][key] as string | undefined;
    return text === undefined ? `${MISSING}${key}⟧` : format(text, vars);
  }

  /** For keys built at run time (a job state, an error code): null when there is none. */
  maybe(key: string, vars?: Record<string, string | number>): string | null {
    return key in en ? this.t(key as Key, vars) : null;
  }

  /** A key built at run time that must exist (states, phases): the marker shows if it does not. */
  dyn(key: string, vars?: Record<string, string | number>): string {
    return this.maybe(key, vars) ?? `${MISSING}${key}⟧`;
  }
}

export const i18n = new I18n();
export const t = (key: Key, vars?: Record<string, string | number>): string => i18n.t(key, vars);
