// A short, one-line view of a task's result for the page and its log: JSON, clipped.

export const PREVIEW_CHARS = 120;

// `value`: any JSON value an op returned. Strings are shown as JSON too ("abc", quoted), so that
// 1 and "1" look different; a value JSON cannot show (undefined) is named.
export function preview(value, maxChars = PREVIEW_CHARS) {
  let text;
  try {
    text = JSON.stringify(value);
  } catch {
    text = undefined;
  }
  if (text === undefined) text = String(value);
  return text.length > maxChars ? `${text.slice(0, maxChars)}…` : text;
}
