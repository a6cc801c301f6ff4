// The language of the worker page and the dashboard: English or Spanish. ?lang= (a link
// shared with a class) first; else the choice made with a page's switch, remembered in
// localStorage and shared by both pages; else the first of the browser's languages
// (navigator.languages) that is one of ours; else English.

export const LANGUAGES = ['en', 'es'];
export const DEFAULT_LANGUAGE = 'en';
const STORAGE_KEY = 'browsergrid.language';

const ours = (tag) => {
  const base = String(tag || '')
    .toLowerCase()
    .split(/[-_]/)[0];
  return LANGUAGES.includes(base) ? base : null;
};

// ?lang= (a link shared with a class) wins over the remembered switch, which wins over the browser.
export function pickLanguage({ search = '', stored = null, preferred = [] } = {}) {
  return (
    ours(new URLSearchParams(search).get('lang'))
    ?? ours(stored)
    ?? preferred.map(ours).find((lang) => lang !== null)
    ?? DEFAULT_LANGUAGE
  );
}

export function storedLanguage(storage) {
  try {
    return storage?.getItem(STORAGE_KEY) ?? null;
  } catch {
    return null; // storage refused (a private window, a sandboxed frame): the browser's language
  }
}

export function rememberLanguage(storage, lang) {
  try {
    storage?.setItem(STORAGE_KEY, lang);
  } catch {
    // not remembered: the switch still works for this visit
  }
}

// Window.localStorage itself throws where storage is blocked (a sandboxed frame, some settings).
function storageOf(win) {
  try {
    return win.localStorage;
  } catch {
    return null;
  }
}

// The language of this page as it opens.
export function pageLanguage(win = globalThis) {
  return pickLanguage({
    search: win.location?.search ?? '',
    stored: storedLanguage(storageOf(win)),
    preferred: [...(win.navigator?.languages ?? []), win.navigator?.language].filter(Boolean),
  });
}
