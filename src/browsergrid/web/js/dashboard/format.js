// Numbers, durations and times as the dashboard shows them; null/undefined shows as a dash.
import { strings } from './strings.js';

// Intl formatters for the language of `strings` (strings.locale), made again when the language changes.
let made = null;
function formats() {
  const { locale } = strings;
  if (made?.locale !== locale) {
    made = {
      locale,
      integer: new Intl.NumberFormat(locale, { maximumFractionDigits: 0 }),
      oneDecimal: new Intl.NumberFormat(locale, {
        minimumFractionDigits: 1,
        maximumFractionDigits: 1,
      }),
      clock: new Intl.DateTimeFormat(locale, {
        hour: '2-digit',
        minute: '2-digit',
        second: '2-digit',
        hourCycle: 'h23',
      }),
      hourMinute: new Intl.DateTimeFormat(locale, {
        hour: '2-digit',
        minute: '2-digit',
        hourCycle: 'h23',
      }),
      dateTime: new Intl.DateTimeFormat(locale, {
        dateStyle: 'medium',
        timeStyle: 'medium',
        hourCycle: 'h23',
      }),
    };
  }
  return made;
}

const missing = (value) => value === null || value === undefined || Number.isNaN(value);

// 1234567 -> "1,234,567" (in Spanish "1.234.567")
export function formatCount(value) {
  return missing(value) ? strings.none : formats().integer.format(value);
}

// Small values keep one decimal ("2.5"), large ones are whole ("1,830"); exactly 0 is "0".
export function formatDecimal(value) {
  if (missing(value)) return strings.none;
  if (value === 0) return '0';
  return Math.abs(value) < 10
    ? formats().oneDecimal.format(value)
    : formats().integer.format(value);
}

export const formatRate = formatDecimal;
export const formatMs = formatDecimal;

// A length of time, compact: "42 s", "3 min", "2 h 05 min", "3 d 4 h". Negative clamps to 0.
export function formatDuration(seconds) {
  if (missing(seconds)) return strings.none;
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return strings.seconds(s);
  if (s < 3600) return strings.minutes(Math.floor(s / 60));
  if (s < 86400) return strings.hoursMinutes(Math.floor(s / 3600), Math.floor((s % 3600) / 60));
  return strings.daysHours(Math.floor(s / 86400), Math.floor((s % 86400) / 3600));
}

// How long ago `at` was, seen at `now` (both Unix seconds): "just now" under 5 s, else "3 min ago".
export function formatAgo(at, now) {
  if (missing(at) || missing(now)) return strings.none;
  const age = now - at;
  return age < 5 ? strings.justNow : strings.ago(formatDuration(age));
}

// Unix seconds -> local wall-clock time "14:03:27".
export function formatClock(at) {
  return missing(at) ? strings.none : formats().clock.format(new Date(at * 1000));
}

// Unix seconds -> local date and time, for tooltips.
export function formatDateTime(at) {
  return missing(at) ? strings.none : formats().dateTime.format(new Date(at * 1000));
}

// Unix seconds -> "14:03", for the chart's time axis.
export function formatClockShort(at) {
  return missing(at) ? strings.none : formats().hourMinute.format(new Date(at * 1000));
}
