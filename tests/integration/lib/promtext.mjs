// A strict reader of the Prometheus text exposition format (0.0.4), with the
// checks `promtool check metrics` makes: every family has HELP and TYPE
// before its samples, its samples are together, no series twice, counters
// end in _total and never go below 0, histogram buckets are sorted and
// cumulative with +Inf equal to _count. Throws an Error naming the line on
// the first problem.
//
//   const page = parsePromText(text);
//   page.value('luaparty_messages_in_total{party="main"}')   // a number, or undefined
//   page.sum('luaparty_messages_in_total')                   // over every label set
//   page.families.get('luaparty_rooms').type                  // 'gauge'

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

function parseValue(s, where) {
  if (s === '+Inf') return Infinity;
  if (s === '-Inf') return -Infinity;
  if (s === 'NaN') return NaN;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(s)) throw new Error(`${where}: "${s}" is not a number`);
  return Number(s);
}

/** 'a="x",b="y"' -> [['a','x'],['b','y']] (escapes \\ \" \n). */
function parseLabels(s, where) {
  const out = [];
  let i = 0;
  while (i < s.length) {
    const eq = s.indexOf('=', i);
    if (eq < 0) throw new Error(`${where}: a label without '='`);
    const name = s.slice(i, eq);
    if (!LABEL.test(name)) throw new Error(`${where}: bad label name "${name}"`);
    if (s[eq + 1] !== '"') throw new Error(`${where}: label ${name}'s value is not quoted`);
    let v = '';
    let j = eq + 2;
    for (; j < s.length && s[j] !== '"'; j++) {
      if (s[j] === '\\') {
        j++;
        if (s[j] === 'n') v += '\n';
        else if (s[j] === '\\' || s[j] === '"') v += s[j];
        else throw new Error(`${where}: bad escape \\${s[j]} in label ${name}`);
      } else if (s[j] === '\n') {
        throw new Error(`${where}: a newline in label ${name}`);
      } else {
        v += s[j];
      }
    }
    if (j >= s.length) throw new Error(`${where}: label ${name}'s value is not closed`);
    if (out.some(([n]) => n === name)) throw new Error(`${where}: label ${name} twice`);
    out.push([name, v]);
    i = j + 1;
    if (i < s.length) {
      if (s[i] !== ',') throw new Error(`${where}: expected ',' after label ${name}`);
      i++;
    }
  }
  return out;
}

/** The family a sample belongs to (histogram/summary samples have suffixes). */
function familyOf(name, families) {
  if (families.has(name)) return name;
  for (const suffix of ['_bucket', '_sum', '_count']) {
    const base = name.endsWith(suffix) ? name.slice(0, -suffix.length) : null;
    if (base && families.has(base) && ['histogram', 'summary'].includes(families.get(base).type)) return base;
  }
  return name;
}

export function parsePromText(text) {
  if (!text.endsWith('\n')) throw new Error('the page does not end with a newline');
  const families = new Map(); // name -> {help, type, samples: [{name, labels, value}]}
  const series = new Map();   // 'name{labels}' -> value
  const done = new Set();     // families whose samples have ended
  let current = null;
  const lines = text.split('\n');
  lines.pop();
  lines.forEach((line, k) => {
    const where = `line ${k + 1} (${line.slice(0, 80)})`;
    if (line === '') throw new Error(`${where}: an empty line`);
    const fam = (name) => {
      if (!families.has(name)) families.set(name, { name, help: undefined, type: undefined, samples: [] });
      return families.get(name);
    };
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
      if (!m) return; // a plain comment
      const [, what, name, rest] = m;
      if (!NAME.test(name)) throw new Error(`${where}: bad metric name`);
      const f = fam(name);
      if (f.samples.length) throw new Error(`${where}: ${what} after the family's samples`);
      if (what === 'HELP') {
        if (f.help !== undefined) throw new Error(`${where}: a second HELP`);
        f.help = rest;
      } else {
        if (f.type !== undefined) throw new Error(`${where}: a second TYPE`);
        if (!TYPES.has(rest)) throw new Error(`${where}: unknown type "${rest}"`);
        f.type = rest;
      }
      return;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: (-?\d+))?$/.exec(line);
    if (!m) throw new Error(`${where}: not a sample line`);
    const [, name, labelText = '', valueText] = m;
    const labels = parseLabels(labelText, where);
    const value = parseValue(valueText, where);
    const familyName = familyOf(name, families);
    const f = families.get(familyName);
    if (!f || !f.type) throw new Error(`${where}: a sample before its family's TYPE`);
    if (f.help === undefined) throw new Error(`${where}: family ${familyName} has no HELP`);
    if (done.has(familyName)) throw new Error(`${where}: family ${familyName}'s samples are not together`);
    if (current && current !== familyName) done.add(current);
    current = familyName;
    const key = `${name}${labels.length ? `{${labels.map(([n, v]) => `${n}="${v}"`).join(',')}}` : ''}`;
    if (series.has(key)) throw new Error(`${where}: series ${key} twice`);
    series.set(key, value);
    f.samples.push({ name, labels: Object.fromEntries(labels), value });
    if (f.type === 'counter') {
      if (!familyName.endsWith('_total')) throw new Error(`${where}: counter ${familyName} should end in _total`);
      if (!(value >= 0)) throw new Error(`${where}: a counter below 0`);
    }
  });
  for (const f of families.values()) {
    if (!f.samples.length) continue;
    if (f.type === 'histogram') checkHistogram(f);
  }
  return {
    families,
    series,
    value: (key) => series.get(key),
    sum: (name) => [...series.entries()].filter(([k]) => k === name || k.startsWith(`${name}{`)).reduce((a, [, v]) => a + v, 0),
  };
}

function checkHistogram(f) {
  const buckets = f.samples.filter((s) => s.name === `${f.name}_bucket`);
  const count = f.samples.find((s) => s.name === `${f.name}_count`);
  const sum = f.samples.find((s) => s.name === `${f.name}_sum`);
  if (!buckets.length || !count || !sum) throw new Error(`histogram ${f.name}: needs _bucket, _sum and _count`);
  let lastLe = -Infinity;
  let lastN = 0;
  for (const b of buckets) {
    if (b.labels.le === undefined) throw new Error(`histogram ${f.name}: a bucket without le`);
    const le = parseValue(b.labels.le, `histogram ${f.name}`);
    if (!(le > lastLe)) throw new Error(`histogram ${f.name}: le="${b.labels.le}" is not above the bucket before`);
    if (b.value < lastN) throw new Error(`histogram ${f.name}: le="${b.labels.le}" counts less than the bucket before`);
    lastLe = le;
    lastN = b.value;
  }
  if (lastLe !== Infinity) throw new Error(`histogram ${f.name}: the last bucket is not le="+Inf"`);
  if (lastN !== count.value) throw new Error(`histogram ${f.name}: +Inf counts ${lastN}, _count says ${count.value}`);
}
