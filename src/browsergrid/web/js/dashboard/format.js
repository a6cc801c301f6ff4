// Numbers, durations and times as the dashboard shows them; null/undefined shows as a dash.
import { strings } from './strings.js';

const integer = new Intl.NumberFormat(strings.locale, { maximumFractionDigits: 0 });
const oneDecimal = new Intl.NumberFormat(strings.locale, { minimumFractionDigits: 1, maximumFractionDigits: 1 });
const clock = new Intl.DateTimeFormat(strings.locale, { hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' });
const hourMinute = new Intl.DateTimeFormat(strings.locale, { hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
const dateTime = new Intl.DateTimeFormat(strings.locale, { dateStyle: 'medium', timeStyle: 'medium', hourCycle: 'h23' });

const missing = (value) => value === null || value === undefined || Number.isNaN(value);

// 1234567 -> "1,234,567"
export function formatCount(value) {
  return missing(value) ? strings.none : integer.format(value);
}

// Small values keep one decimal ("2.5"), large ones are whole ("1,830"); exactly 0 is "0".
export function formatDecimal(value) {
  if (missing(value)) return strings.none;
  if (value === 0) return '0';
  return Math.abs(value) < 10 ? oneDecimal.format(value) : integer.format(value);
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
  return missing(at) ? strings.none : clock.format(new Date(at * 1000));
}

// Unix seconds -> local date and time, for tooltips.
export function formatDateTime(at) {
  return missing(at) ? strings.none : dateTime.format(new Date(at * 1000));
}

// Unix seconds -> "14:03", for the chart's time axis.
export function formatClockShort(at) {
  return missing(at) ? strings.none : hourMinute.format(new Date(at * 1000));
}
