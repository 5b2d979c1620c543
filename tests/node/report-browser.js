// Opens a load-test HTML report in headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core; no browser is downloaded), records every request the page makes, reads what
// each chart drew, and saves a screenshot. Prints one JSON document on stdout:
//   { "title", "requests": [url...], "charts": [{ "id", "width", "height",
//     "legend": [{ "run", "line", "color", "width", "points", "polylines" }] }] }
// where `points` counts the vertices of the chart's polylines drawn in that legend entry's
// color and width, as the browser parsed them.
//
//   node tests/node/report-browser.js REPORT.html SHOT.png [--width 1280] [--height 900] [--clip]
//
// --clip takes only the first viewport (for the README's picture) instead of the whole page.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const { chromium } = require('playwright-core');

function option(args, name, fallback) {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? Number(args[i + 1]) : fallback;
}

async function main() {
  const args = process.argv.slice(2);
  const [report, shot] = args;
  if (!report || !shot) {
    console.error('usage: node report-browser.js REPORT.html SHOT.png [--width W] [--height H] [--clip]');
    process.exit(2);
  }
  const executable = process.env.CHROMIUM || '/usr/bin/chromium';
  if (!fs.existsSync(executable)) {
    console.error(`${executable} is missing: install Debian's chromium (apt-get install -y chromium)`);
    process.exit(3);
  }
  const width = option(args, '--width', 1280);
  const height = option(args, '--height', 900);
  // A fresh profile each time: nothing cached or remembered from another run.
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'scmarket-ws-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: executable,
    headless: true,
    viewport: { width, height },
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  try {
    const page = context.pages()[0] || (await context.newPage());
    const requests = [];
    page.on('request', (r) => requests.push(r.url()));
    await page.goto('file://' + path.resolve(report), { waitUntil: 'load' });
    const charts = await page.evaluate(() =>
      [...document.querySelectorAll('figure.chart')].map((fig) => {
        const svg = fig.querySelector('svg');
        const box = svg ? svg.getBoundingClientRect() : { width: 0, height: 0 };
        const polylines = svg ? [...svg.querySelectorAll('polyline')] : [];
        const legend = [...fig.querySelectorAll('ul.legend li')].map((li) => {
          const mine = polylines.filter(
            (p) =>
              (p.getAttribute('stroke') || '').toUpperCase() === li.dataset.color.toUpperCase() &&
              p.getAttribute('stroke-width') === li.dataset.width,
          );
          return {
            run: li.dataset.run,
            line: li.dataset.line,
            color: li.dataset.color,
            width: Number(li.dataset.width),
            points: mine.reduce((n, p) => n + p.points.numberOfItems, 0),
            polylines: mine.length,
          };
        });
        return { id: fig.dataset.chart, width: box.width, height: box.height, legend };
      }),
    );
    await page.screenshot({ path: shot, fullPage: !args.includes('--clip') });
    console.log(JSON.stringify({ title: await page.title(), requests, charts }));
  } finally {
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : String(e));
  process.exit(1);
});
