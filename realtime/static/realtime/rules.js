// Recurrence rules in words, from the canonical text the API returns: a plain word ("weekly")
// or RRULE text ("FREQ=MONTHLY;BYDAY=-1FR" -> "every month on the last Friday").

const UNITS = { DAILY: "day", WEEKLY: "week", MONTHLY: "month", YEARLY: "year" };
const WORDS = { DAILY: "daily", WEEKLY: "weekly", MONTHLY: "monthly", YEARLY: "yearly" };
const DAYS = { MO: "Monday", TU: "Tuesday", WE: "Wednesday", TH: "Thursday", FR: "Friday", SA: "Saturday", SU: "Sunday" };
const ORDINALS = ["", "first", "second", "third", "fourth", "fifth"];
const MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];

function list(items) {
  if (items.length <= 1) return items.join("");
  return `${items.slice(0, -1).join(", ")} and ${items[items.length - 1]}`;
}

function nth(n) {
  const tens = n % 100;
  const suffix = tens >= 11 && tens <= 13 ? "th" : { 1: "st", 2: "nd", 3: "rd" }[n % 10] || "th";
  return `${n}${suffix}`;
}

function weekday(part) {
  const match = /^([+-]?\d+)?(MO|TU|WE|TH|FR|SA|SU)$/.exec(part);
  if (!match) return part;
  const day = DAYS[match[2]];
  if (!match[1]) return day;
  const n = Number(match[1]);
  if (n === -1) return `the last ${day}`;
  if (n < -1) return `the ${ORDINALS[-n] || nth(-n)} to last ${day}`;
  return `the ${ORDINALS[n] || nth(n)} ${day}`;
}

function monthDay(value) {
  const n = Number(value);
  if (n === -1) return "the last day";
  if (n < -1) return `the ${nth(-n)} to last day`;
  return `the ${nth(n)}`;
}

function untilDate(value) {
  const match = /^(\d{4})(\d{2})(\d{2})/.exec(value);
  if (!match) return value;
  return `${Number(match[3])} ${MONTHS[Number(match[2]) - 1].slice(0, 3)} ${match[1]}`;
}

/** Parse RRULE text into {FREQ, INTERVAL, ...}; null when it is not RRULE text. */
export function parseRule(text) {
  const body = String(text).trim().replace(/^RRULE:/i, "");
  if (!/FREQ=/i.test(body)) return null;
  const parts = {};
  for (const item of body.split(";")) {
    const [key, value] = item.split("=");
    if (key && value !== undefined) parts[key.trim().toUpperCase()] = value.trim().toUpperCase();
  }
  return parts;
}

/** The rule in words, or null for a task that does not repeat. */
export function describeRule(text) {
  if (!text || String(text).toLowerCase() === "none") return null;
  const word = String(text).trim().toUpperCase();
  if (WORDS[word]) return WORDS[word];
  const rule = parseRule(text);
  if (!rule || !UNITS[rule.FREQ]) return String(text);
  const interval = Number(rule.INTERVAL || 1);
  const unit = UNITS[rule.FREQ];
  const days = rule.BYDAY ? rule.BYDAY.split(",") : [];
  const monthDays = rule.BYMONTHDAY ? rule.BYMONTHDAY.split(",") : [];
  const months = rule.BYMONTH ? rule.BYMONTH.split(",").map((m) => MONTHS[Number(m) - 1] || m) : [];
  const weekdaysOnly = days.length === 5 && ["MO", "TU", "WE", "TH", "FR"].every((d) => days.includes(d));

  let words;
  if (rule.FREQ === "WEEKLY" && interval === 1 && weekdaysOnly) words = "every weekday";
  else words = interval === 1 ? `every ${unit}` : `every ${interval} ${unit}s`;
  if (!(rule.FREQ === "WEEKLY" && interval === 1 && weekdaysOnly)) {
    const on = [...days.map(weekday), ...monthDays.map(monthDay)];
    if (on.length) words += ` on ${list(on)}`;
  }
  if (months.length) words += days.length || monthDays.length ? ` of ${list(months)}` : ` in ${list(months)}`;
  if (rule.COUNT) words += `, ${rule.COUNT} ${rule.COUNT === "1" ? "time" : "times"}`;
  if (rule.UNTIL) words += `, until ${untilDate(rule.UNTIL)}`;
  return words;
}
