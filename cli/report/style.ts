// The report's stylesheet, inlined into the page: no external fonts or files, readable in light and dark
// mode and on paper (which always gets the light palette). Status is always said in words and a symbol as well as in colour.
export const CSS = String.raw`
:root {
  color-scheme: light dark;
  --bg: #f5f6f8; --card: #ffffff; --ink: #1b2230; --muted: #5a6372; --line: #e1e4e9; --soft: #f0f2f5;
  --code: #f1f3f6; --code-ink: #1b2230; --accent: #2f6db5;
  --pass: #1d7a3a; --pass-bg: #e5f4ea; --fail: #b42318; --fail-bg: #fdecea; --error: #8f1d52; --error-bg: #fbe7f0; --warn: #8a5a00; --warn-bg: #fff3d6;
  --skip: #5a6372; --skip-bg: #eceef2; --shadow: 0 1px 2px rgba(16,24,40,.06), 0 1px 3px rgba(16,24,40,.08);
  --mono: ui-monospace, SFMono-Regular, Menlo, Consolas, Liberation Mono, monospace;
}
@media screen and (prefers-color-scheme: dark) {
  :root {
    --bg: #0e1116; --card: #161a21; --ink: #e4e7eb; --muted: #9aa3af; --line: #2a303a; --soft: #1d222a;
    --code: #1f252e; --code-ink: #e4e7eb; --accent: #7fb0ef;
    --pass: #6fcf8b; --pass-bg: #15321f; --fail: #ff8a7a; --fail-bg: #3b1714; --error: #f28fbf; --error-bg: #3a1428; --warn: #f0c060; --warn-bg: #36290c;
    --skip: #a0a8b4; --skip-bg: #232830; --shadow: none;
  }
}
* { box-sizing: border-box; }
html { background: var(--bg); }
body {
  margin: 0; color: var(--ink); background: var(--bg);
  font: 14px/1.55 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  -webkit-font-smoothing: antialiased;
}
main { max-width: 1140px; margin: 0 auto; padding: 20px 20px 56px; }
a { color: var(--accent); text-underline-offset: 2px; }
h1, h2, h3, h4 { line-height: 1.25; margin: 0; }
h2 { font-size: 20px; font-weight: 650; letter-spacing: -0.01em; }
h3 { font-size: 16px; font-weight: 650; }
h4 { font-size: 13px; font-weight: 650; text-transform: uppercase; letter-spacing: .05em; color: var(--muted); margin: 22px 0 8px; }
p { margin: 6px 0; }
code, pre, kbd { font-family: var(--mono); font-size: 12.5px; }
code { background: var(--code); color: var(--code-ink); padding: 1px 5px; border-radius: 4px; }
pre code { background: none; padding: 0; }
small, .muted { color: var(--muted); }
.num { font-variant-numeric: tabular-nums; text-align: right; white-space: nowrap; }
section { margin-top: 28px; }
[id] { scroll-margin-top: 48px; } /* clear of the sticky navigation */
section > h2 { margin-bottom: 4px; }
section > .intro { color: var(--muted); margin: 0 0 14px; max-width: 80ch; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 10px; box-shadow: var(--shadow); padding: 18px 20px; }

/* The verdict banner */
.banner { display: grid; grid-template-columns: 64px 1fr; gap: 18px; align-items: start; border-left: 6px solid var(--status); }
.banner.holds { --status: var(--pass); --status-bg: var(--pass-bg); }
.banner.violated, .banner.bad-input, .banner.internal-error { --status: var(--fail); --status-bg: var(--fail-bg); }
.banner .mark { width: 64px; height: 64px; border-radius: 50%; display: grid; place-items: center; font-size: 34px; font-weight: 700; color: var(--status); background: var(--status-bg); }
.banner .eyebrow { margin: 0; font-size: 12px; letter-spacing: .08em; text-transform: uppercase; color: var(--muted); font-weight: 600; }
.banner h1 { font-size: 26px; margin: 2px 0 4px; letter-spacing: -0.015em; }
.banner h1 .word { color: var(--status); }
.banner .lede { font-size: 15px; margin: 0 0 12px; }
.meta { display: flex; flex-wrap: wrap; gap: 8px 28px; margin: 0; }
.meta div { min-width: 0; }
.meta dt { font-size: 11px; text-transform: uppercase; letter-spacing: .06em; color: var(--muted); font-weight: 600; }
.meta dd { margin: 0; font-variant-numeric: tabular-nums; }
.meta .wide { flex-basis: 100%; }
.meta .wide code { white-space: pre-wrap; word-break: break-word; }
.tally { display: flex; gap: 8px; flex-wrap: wrap; margin-top: 12px; }
.policy-head .tally { margin-top: 6px; }

/* Navigation */
nav.toc { position: sticky; top: 0; z-index: 2; background: color-mix(in srgb, var(--bg) 92%, transparent); backdrop-filter: blur(6px); border-bottom: 1px solid var(--line); margin: 0 -20px; padding: 8px 20px; display: flex; gap: 4px 18px; flex-wrap: wrap; font-size: 13px; }
nav.toc a { color: var(--muted); text-decoration: none; font-weight: 550; }
nav.toc a:hover { color: var(--ink); }
nav.toc .fail-link { color: var(--fail); }
nav.toc .warn-link { color: var(--warn); }

/* Status badges: symbol + word + colour */
.badge { display: inline-flex; align-items: center; gap: 5px; padding: 1px 8px 1px 6px; border-radius: 999px; font-size: 12px; font-weight: 650; white-space: nowrap; border: 1px solid transparent; }
.badge.pass { color: var(--pass); background: var(--pass-bg); }
.badge.fail { color: var(--fail); background: var(--fail-bg); border-color: color-mix(in srgb, var(--fail) 35%, transparent); }
.badge.error { color: var(--error); background: var(--error-bg); border-color: color-mix(in srgb, var(--error) 35%, transparent); }
.badge.warn { color: var(--warn); background: var(--warn-bg); }
.badge.skipped { color: var(--skip); background: var(--skip-bg); }
.chip { display: inline-block; padding: 0 7px; border-radius: 4px; font-size: 11.5px; background: var(--soft); color: var(--muted); border: 1px solid var(--line); white-space: nowrap; }
.swatch { display: inline-block; width: 12px; height: 12px; border-radius: 3px; background: var(--policy); vertical-align: -1px; margin-right: 6px; }

/* Tables */
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { padding: 7px 10px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
thead th { font-size: 11.5px; text-transform: uppercase; letter-spacing: .05em; color: var(--muted); font-weight: 650; border-bottom: 2px solid var(--line); white-space: nowrap; }
tbody tr:last-child th, tbody tr:last-child td { border-bottom: none; }
tfoot td, tfoot th { border-top: 2px solid var(--line); border-bottom: none; color: var(--muted); }
.table-wrap { overflow-x: auto; }
table.summary td.cell { min-width: 150px; }
table.summary .cell .secs { display: block; color: var(--muted); font-size: 12px; margin-top: 2px; }
table.summary .cell a { font-weight: 600; }
table.summary th[scope=row] { white-space: nowrap; }
table.summary th[scope=row] small { display: block; font-weight: 500; }
table.summary td.covers { color: var(--muted); max-width: 34ch; }
table.summary tr.has-fail { background: color-mix(in srgb, var(--fail-bg) 45%, transparent); }
table.summary tr.has-warn { background: color-mix(in srgb, var(--warn-bg) 45%, transparent); }

/* Charts */
.grid { display: grid; gap: 16px; }
.grid.two { grid-template-columns: repeat(2, minmax(0, 1fr)); }
.grid.three { grid-template-columns: repeat(3, minmax(0, 1fr)); }
@media (max-width: 900px) { .grid.two, .grid.three { grid-template-columns: 1fr; } }
figure { margin: 0; min-width: 0; }
figure.chart { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 14px 14px 10px; box-shadow: var(--shadow); }
figure.chart svg { display: block; width: 100%; height: auto; color: var(--ink); overflow: visible; }
figure.chart figcaption { font-size: 12.5px; color: var(--muted); margin-top: 6px; border-top: 1px dashed var(--line); padding-top: 6px; }
figure.chart figcaption strong { color: var(--ink); font-weight: 600; }
.stack { display: grid; gap: 16px; margin-top: 16px; }

/* Per policy */
.policy { border-top: 4px solid var(--policy); padding-top: 14px; }
.policy-head { display: flex; flex-wrap: wrap; justify-content: space-between; gap: 10px 20px; align-items: flex-end; margin-bottom: 14px; }
.policy-head h2 { font-size: 22px; }
.kpis { display: flex; gap: 10px; flex-wrap: wrap; list-style: none; margin: 0; padding: 0; }
.kpis li { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 6px 12px; min-width: 120px; }
.kpis .v { display: block; font-size: 19px; font-weight: 700; font-variant-numeric: tabular-nums; color: var(--policy); }
.kpis .k { display: block; font-size: 11.5px; color: var(--muted); }

/* Failures */
.failure { border-left: 6px solid var(--fail); margin-top: 16px; }
.failure.error { border-left-color: var(--error); }
.failure.warn { border-left-color: var(--warn); }
.failure-head { display: flex; flex-wrap: wrap; gap: 6px 12px; align-items: baseline; }
.failure-head h3 { font-size: 19px; font-family: var(--mono); font-weight: 650; }
.failure .where { color: var(--muted); margin: 2px 0 12px; }
.protects { margin: 0 0 12px; padding: 10px 14px; background: var(--soft); border-radius: 8px; border: 1px solid var(--line); }
.protects .label { display: block; font-size: 11px; letter-spacing: .06em; text-transform: uppercase; color: var(--muted); font-weight: 650; }
.finding { padding: 10px 14px; border-radius: 8px; background: var(--fail-bg); border: 1px solid color-mix(in srgb, var(--fail) 30%, transparent); }
.finding .label { color: var(--fail); font-weight: 700; }
.replay { margin: 12px 0; }
.replay .label { font-size: 11px; letter-spacing: .06em; text-transform: uppercase; color: var(--muted); font-weight: 650; }
.codeblock { position: relative; display: flex; align-items: flex-start; gap: 8px; background: #1d232c; color: #e8ecf1; border-radius: 8px; padding: 10px 12px; margin-top: 4px; }
.codeblock code { color: inherit; background: none; padding: 0; }
.codeblock pre { margin: 0; flex: 1; white-space: pre-wrap; word-break: break-all; user-select: all; }
.codeblock pre::before { content: "$ "; color: #8a96a8; user-select: none; }
.codeblock button { font: 600 12px system-ui, sans-serif; border: 1px solid #4a5566; color: #e8ecf1; background: #2b3340; border-radius: 6px; padding: 3px 10px; cursor: pointer; }
.codeblock button:hover { background: #36404f; }
.facts { display: flex; flex-wrap: wrap; gap: 6px; margin: 10px 0 14px; }
.pair td:first-child { width: 90px; color: var(--muted); font-weight: 600; }

/* The trace, event by event */
details { margin-top: 12px; }
summary { cursor: pointer; font-weight: 600; }
details.sweeps { margin-top: 16px; }
.table-title { margin: 16px 0 4px; color: var(--muted); }
.table-title strong { color: var(--ink); }
table.events { font-family: var(--mono); font-size: 12px; margin-top: 8px; }
table.events td, table.events th { padding: 3px 10px; border-bottom: 1px solid var(--line); }
table.events td.line { color: var(--muted); width: 4.5em; }
table.events td.t { color: var(--muted); width: 6em; }
table.events td.ev { font-weight: 700; white-space: nowrap; width: 9em; }
table.events td.note { font-family: system-ui, sans-serif; color: var(--muted); font-style: italic; }
table.events .k { color: var(--muted); }
table.events tr.offending td { background: var(--fail-bg); color: var(--fail); }
table.events tr.offending td.line::before { content: "✗ "; font-weight: 700; }
table.events tr.cycle td.line::after { content: " ↻"; }
table.events tr.ev-alloc td.ev, table.events tr.ev-alloc_take td.ev { color: var(--pass); }
table.events tr.ev-free td.ev { color: #b25e09; }
@media screen and (prefers-color-scheme: dark) { table.events tr.ev-free td.ev { color: #f2a65a; } }

/* Self-test */
table.zoo td.fault { min-width: 28ch; }
table.zoo .replay-line { display: block; width: fit-content; white-space: nowrap; margin-top: 3px; font-size: 11.5px; color: var(--muted); }
.match { color: var(--pass); font-weight: 600; }
.mismatch { color: var(--warn); font-weight: 600; }

/* Sources */
.sources { margin: 0; }
.sources dt { font-weight: 650; margin-top: 10px; }
.sources dt:first-child { margin-top: 0; }
.sources dd { margin: 2px 0 0; }
.sources ul { margin: 4px 0; padding-left: 20px; }
footer { margin-top: 40px; color: var(--muted); font-size: 12px; text-align: center; }

@media print {
  :root { --bg: #fff; --card: #fff; --shadow: none; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  body { font-size: 11pt; }
  main { max-width: none; padding: 0; }
  nav.toc, .codeblock button { display: none !important; }
  .card, figure.chart, .failure, tr, .kpis li { break-inside: avoid; }
  section { break-before: auto; }
  .policy { break-before: page; }
  figure.chart { box-shadow: none; }
  .codeblock { background: #f1f3f6; color: #111; border: 1px solid #ccc; }
  a { color: inherit; }
}
`;

/** Progressive enhancement: the copy buttons appear only where a script may run; the code stays selectable. */
export const SCRIPT = String.raw`
for (const b of document.querySelectorAll('button[data-copy]')) {
  b.hidden = false;
  b.addEventListener('click', async () => {
    const el = document.getElementById(b.dataset.copy);
    try { await navigator.clipboard.writeText(el.textContent); b.textContent = 'Copied'; }
    catch { const r = document.createRange(); r.selectNodeContents(el); const s = getSelection(); s.removeAllRanges(); s.addRange(r); b.textContent = 'Press Ctrl+C'; }
    setTimeout(() => { b.textContent = 'Copy'; }, 1800);
  });
}
`;
