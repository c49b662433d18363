// Browser tests of the privacy officers' console, in Debian's Chromium driven by Playwright.
//
// tests/console.rs starts a real `doelpoort demo` (a fresh PKI, a copy of the policies), makes a
// few exchanges through it, and runs this script with the addresses and files below in the
// environment. The script clicks through every page as an officer would and checks each one
// against the command-line tool that computes the same thing:
//   - "Mag ik dit zien?" against `doelpoort policy explain`, for every consumer × purpose ×
//     operation of the demo's policies (and more without a case);
//   - the art. 15 report (page, CSV, JSON) against `doelpoort audit query`;
//   - the policy history's impact report after a real policy change on disk;
//   - axe-core on every page: no serious or critical violation (WCAG 2.1 A/AA rules);
//   - a BSN typed into the console never appears in a URL the browser requested.
// It exits non-zero with a list of failures; it never skips.
import { chromium } from 'playwright-core';
import { createRequire } from 'node:module';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const require = createRequire(import.meta.url);
const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set (tests/console.rs sets it)`);
  return value;
};
const CONSOLE = env('CONSOLE_URL').replace(/\/$/, '');
const BIN = env('DOELPOORT_BIN');
const POLICIES = env('POLICIES_DIR');
const AUDIT = env('AUDIT_DIR');
const BSN = env('SUBJECT_BSN'); // has exchanges in the log
const QUIET_BSN = env('QUIET_BSN'); // typed into the console only
const SHOTS = process.env.SCREENSHOT_DIR || '';
const failures = [];
const check = (ok, message) => {
  if (!ok) failures.push(message);
};
const requestedUrls = [];

function cli(args) {
  return execFileSync(BIN, args, { encoding: 'utf8', maxBuffer: 64 << 20 });
}

async function screenshot(page, name, fullPage = true) {
  if (!SHOTS) return;
  fs.mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage });
}

const axeSource = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
async function accessible(page, label) {
  await page.evaluate(axeSource);
  const result = await page.evaluate(() =>
    // eslint-disable-next-line no-undef
    axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } }),
  );
  const serious = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  for (const v of serious) {
    failures.push(`axe on ${label}: ${v.id} (${v.impact}): ${v.help} — ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join('; ')}`);
  }
  return result;
}

// ---- "Mag ik dit zien?" against `policy explain` --------------------------------------------

function parseExplain(text) {
  const decision = /^decision:\s+(.*)$/m.exec(text)[1];
  const grant = /^grant:\s+(\S+)/m.exec(text);
  const released = [...text.matchAll(/^ {2}released {2}(\S+)/gm)].map((m) => m[1]).sort();
  const withheld = [...text.matchAll(/^ {2}withheld {2}(\S+)/gm)].map((m) => m[1]).sort();
  const deny = /^DENY (\S+) \((\d+)\)/.exec(decision);
  return {
    verdict: decision.startsWith('ALLOW') ? 'ALLOW' : 'DENY',
    code: deny ? deny[1] : '',
    grant: grant ? grant[1] : '',
    released,
    withheld,
  };
}

async function askConsole(page, q) {
  await page.goto(`${CONSOLE}/mag-ik-dit-zien`);
  await page.selectOption('#consumer', q.consumer);
  await page.selectOption('#purpose', q.purpose);
  await page.selectOption('#operation', q.operation);
  await page.fill('#case_id', q.caseId || '');
  await page.fill('#actor', q.actor || '');
  await page.fill('#bsn', q.bsn);
  const [response] = await Promise.all([page.waitForNavigation(), page.click('form.ask button[type=submit]')]);
  const answer = page.locator('#answer');
  if ((await answer.count()) === 0) {
    throw new Error(`no answer for ${JSON.stringify({ ...q, bsn: '…' })}: ${response.status()} ${(await page.locator('main').textContent()).slice(0, 400)}`);
  }
  const verdict = await answer.getAttribute('data-verdict');
  const text = async (sel) => ((await page.locator(sel).count()) ? (await page.locator(sel).first().textContent()).trim() : '');
  const rows = await page.locator('#fields tr[data-field]').evaluateAll((trs) =>
    trs.map((tr) => [tr.getAttribute('data-field'), tr.getAttribute('data-released')]),
  );
  return {
    verdict,
    code: await text('#denial-code'),
    grant: await text('#grant-id'),
    released: rows.filter((r) => r[1] === 'yes').map((r) => r[0]).sort(),
    withheld: rows.filter((r) => r[1] === 'no').map((r) => r[0]).sort(),
  };
}

function askCli(q, operations) {
  const op = operations.get(q.operation);
  const requestPath = `/${q.operation.split('/')[0]}${op.template.replace('{bsn}', q.bsn)}`;
  const args = ['policy', 'explain', POLICIES, '--consumer', q.consumer, '--request', `${op.method} ${requestPath}`,
    '-H', `Doelbinding-Purpose: ${q.purpose}`, '-H', `Doelbinding-Data-Subject: bsn=${q.bsn}`];
  if (q.caseId) args.push('-H', `Doelbinding-Case-Id: ${q.caseId}`);
  if (q.actor) args.push('-H', `Doelbinding-Actor: ${q.actor}`);
  if (op.method !== 'GET') {
    const body = path.join(process.env.TMPDIR || '/tmp', `console-body-${process.pid}.json`);
    fs.writeFileSync(body, JSON.stringify({ bsn: q.bsn }));
    args.push('--body', body);
  }
  return parseExplain(cli(args));
}

async function decisionForm(page) {
  await page.goto(`${CONSOLE}/mag-ik-dit-zien`);
  const options = async (sel) => page.locator(`${sel} option`).evaluateAll((os) => os.map((o) => [o.value, o.textContent]));
  const consumers = (await options('#consumer')).map((o) => o[0]);
  const purposes = (await options('#purpose')).map((o) => o[0]);
  const operations = new Map(
    (await options('#operation')).map(([key, label]) => {
      // "uwv/inkomen — GET /v1/personen/{bsn}/inkomen (title)"
      const m = /— (\S+) (\S+)/.exec(label);
      return [key, { method: m[1], template: m[2] }];
    }),
  );
  check(consumers.length >= 2 && purposes.length >= 5 && operations.size >= 5, `decision form offers too little: ${consumers} ${purposes} ${[...operations.keys()]}`);
  const questions = [];
  for (const consumer of consumers) {
    for (const purpose of purposes) {
      for (const operation of operations.keys()) {
        questions.push({ consumer, purpose, operation, caseId: 'casus-2026-0001', actor: 'medewerker-0042', bsn: BSN });
      }
    }
    for (const operation of operations.keys()) {
      questions.push({ consumer, purpose: purposes[0], operation, bsn: BSN }); // no case, no actor
    }
  }
  let allowed = 0;
  let denied = 0;
  for (const q of questions) {
    const shown = await askConsole(page, q);
    const expected = askCli(q, operations);
    const same = JSON.stringify(shown) === JSON.stringify(expected);
    check(same, `decision differs for ${JSON.stringify({ ...q, bsn: '…' })}:\n  console ${JSON.stringify(shown)}\n  cli     ${JSON.stringify(expected)}`);
    if (expected.verdict === 'ALLOW') allowed += 1;
    else denied += 1;
  }
  check(allowed >= 3 && denied >= 3, `the comparison should cover both answers (allowed ${allowed}, denied ${denied})`);
  console.log(`decision form: ${questions.length} questions compared with policy explain (${allowed} allowed, ${denied} denied)`);

  // The documented screenshot: an allowed question with released and withheld fields.
  await askConsole(page, { consumer: 'wijkteam-rotterdam', purpose: 'wams-onderzoek', operation: 'uwv/inkomen', caseId: 'casus-2026-0001', actor: 'medewerker-0042', bsn: BSN });
  check((await page.locator('.verdict.allow').count()) === 1, 'the allowed answer is shown as allowed');
  await accessible(page, 'decision answer');
  await screenshot(page, '3-mag-ik-dit-zien');
  // A BSN that fails the elfproef is refused by the form itself, and not echoed into a URL.
  await page.goto(`${CONSOLE}/mag-ik-dit-zien`);
  await page.fill('#bsn', '123456789');
  await Promise.all([page.waitForNavigation(), page.click('form.ask button[type=submit]')]);
  check((await page.locator('#decision-error').count()) === 1, 'an invalid BSN gets an error');
}

// ---- art. 15 --------------------------------------------------------------------------------

async function art15(page, context) {
  await page.goto(`${CONSOLE}/inzage`);
  await accessible(page, 'inzage form');
  await page.fill('#bsn', BSN);
  await Promise.all([page.waitForNavigation(), page.click('form.ask button[type=submit]')]);
  const shownIds = await page.locator('#report-rows tr[data-transaction-id]').evaluateAll((trs) =>
    trs.map((tr) => tr.getAttribute('data-transaction-id')),
  );
  const lookup = (await page.locator('#lookup-transaction').textContent()).trim();
  const rows = JSON.parse(cli(['audit', 'query', AUDIT, '--subject', BSN, '--format', 'json']));
  const cliIds = rows.map((r) => r.transaction_id);
  check(JSON.stringify(shownIds) === JSON.stringify(cliIds), `art. 15 page ≠ audit query:\n  page ${shownIds}\n  cli  ${cliIds}`);
  check(rows.filter((r) => r.purpose !== 'art-15-verzoek').length >= 2, `the report should hold the demo's exchanges: ${JSON.stringify(rows)}`);
  const own = rows.find((r) => r.transaction_id === lookup);
  check(own && own.purpose === 'art-15-verzoek' && own.operation === 'console/art-15-report', `the look-up itself is recorded: ${JSON.stringify(own)}`);
  // Each row shows what audit query says.
  const cells = await page.locator('#report-rows tbody tr').evaluateAll((trs) =>
    trs.map((tr) => [tr.querySelector('time').getAttribute('datetime'), ...[...tr.cells].slice(1).map((c) => c.textContent.trim())]));
  rows.forEach((r, i) => {
    const c = cells[i] || [];
    check(c[0] === r.time && c[1] === r.consumer && c[2] === r.purpose && c[3] === r.legal_basis && c[7] === r.case_id,
      `art. 15 row ${i} differs: ${JSON.stringify(c)} vs ${JSON.stringify(r)}`);
  });
  await accessible(page, 'art. 15 report');
  await screenshot(page, '4-inzage-art15');
  // Printable: the menu and the form are left out.
  await page.emulateMedia({ media: 'print' });
  check(!(await page.locator('header.site nav').isVisible()), 'the menu is hidden when printing');
  check(await page.locator('#report').isVisible(), 'the letter is printed');
  await page.emulateMedia({ media: 'screen' });

  // Downloads: the same rows as audit query, in its own formats.
  for (const format of ['csv', 'json']) {
    await page.goto(`${CONSOLE}/inzage`);
    await page.fill('#bsn', BSN);
    await page.selectOption('#format', format);
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('form.ask button[type=submit]')]);
    const file = await download.path();
    const got = fs.readFileSync(file, 'utf8');
    const want = cli(['audit', 'query', AUDIT, '--subject', BSN, '--format', format]);
    check(got === want, `art. 15 ${format} download ≠ audit query --format ${format}:\n${got}\n---\n${want}`);
    check(download.suggestedFilename() === `inzage-art15.${format}`, `download name ${download.suggestedFilename()}`);
  }

  // A person without exchanges: an empty report (and their look-up recorded).
  await page.goto(`${CONSOLE}/inzage`);
  await page.fill('#bsn', QUIET_BSN);
  await Promise.all([page.waitForNavigation(), page.click('form.ask button[type=submit]')]);
  check((await page.locator('#report-count').textContent()).trim() === '1', 'a quiet person\'s report lists only the look-up itself');

  // A form posted from another site is refused, even with the officer's certificate.
  const forged = await context.request.post(`${CONSOLE}/inzage`, {
    headers: { Origin: 'https://elders.example', 'Sec-Fetch-Site': 'cross-site' },
    form: { bsn: BSN },
  });
  check(forged.status() === 403, `a cross-site post is refused (got ${forged.status()})`);
  check(!(await forged.text()).includes(BSN), 'the refusal reveals nothing');
}

// ---- policy history -------------------------------------------------------------------------

async function history(page) {
  await page.goto(`${CONSOLE}/beleid`);
  const before = await page.locator('#versions tr[data-version]').count();
  check(before === 1, `one policy version at start (got ${before})`);
  // A privacy officer narrows a grant: the district team no longer sees since when a benefit runs.
  const file = path.join(POLICIES, 'grants', 'wijkteam-rotterdam.yaml');
  const yaml = fs.readFileSync(file, 'utf8');
  const line = /^ {6}uitkeringen\[\*\]\.ingangsdatum: year.*\n/m;
  check(line.test(yaml), 'the grant to narrow is in the policies');
  fs.writeFileSync(file, yaml.replace(line, ''));
  const deadline = Date.now() + 20000;
  let versions = before;
  while (versions < 2 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 300));
    await page.goto(`${CONSOLE}/beleid`);
    versions = await page.locator('#versions tr[data-version]').count();
  }
  check(versions === 2, `the reload shows a second version (got ${versions})`);
  const change = page.locator('article.change[data-consumer="wijkteam-rotterdam"][data-operation="uwv/inkomen"]');
  check((await change.count()) === 1, 'the impact report names the narrowed grant');
  check((await change.locator('[data-lost="uitkeringen[*].ingangsdatum"]').count()) === 1, 'the lost field is listed');
  check((await page.locator('article.change').count()) === 1, 'nothing else changed');
  await accessible(page, 'policy history');
  await screenshot(page, '6-beleidshistorie');
  // And the decision form now answers with the new version.
  await askConsole(page, { consumer: 'wijkteam-rotterdam', purpose: 'wams-onderzoek', operation: 'uwv/inkomen', caseId: 'casus-2026-0001', actor: 'x', bsn: BSN });
  const released = await page.locator('#fields tr[data-released="yes"]').evaluateAll((trs) => trs.map((t) => t.getAttribute('data-field')));
  check(!released.includes('uitkeringen[*].ingangsdatum'), 'the decision follows the new version');
}

// ---- the rest of the pages ------------------------------------------------------------------

async function pages(page) {
  await page.goto(`${CONSOLE}/`);
  check((await page.locator('html').getAttribute('lang')) === 'nl', 'Dutch by default');
  // Keyboard: the first Tab lands on the skip link.
  await page.keyboard.press('Tab');
  check((await page.evaluate(() => document.activeElement.className)) === 'skip', 'the first Tab reaches the skip link');
  await accessible(page, 'overview');
  await screenshot(page, '0-overzicht');

  // Click through the menu, as an officer would.
  await page.click('nav >> text=Doelen en grants');
  check((await page.locator('h1').textContent()).includes('Doelen en grants'), 'purposes page');
  check((await page.locator('section.purpose').count()) >= 5, 'every purpose is shown');
  check((await page.locator('#grant-wijkteam-uwv-inkomen-onderzoek .rationale').textContent()).includes('Wams'), 'a grant shows its legal reasoning');
  await accessible(page, 'purposes');
  await screenshot(page, '1-doelen-en-grants', false);
  // A field links to its schema.
  await page.click('#grant-wijkteam-uwv-inkomen-onderzoek a[href*="/schema/"] >> nth=0');
  check(page.url().includes('/schema/') && (await page.locator('table tr[id]').count()) > 3, 'a field links to its schema page');
  await accessible(page, 'schema');

  await page.click('nav >> text=Wie ziet wat');
  const total = await page.locator('#matrix tbody tr').count();
  const cliRows = cli(['policy', 'matrix', POLICIES]).split('\n').filter((l) => /^\| [a-z]/.test(l) && !l.startsWith('| consumer')).length;
  check(total === cliRows, `the matrix shows every grant (${total} rows, policy matrix has ${cliRows})`);
  await page.selectOption('#filter-consumer', 'schuldhulp-utrecht');
  await Promise.all([page.waitForNavigation(), page.click('form.filter button')]);
  const filtered = await page.locator('#matrix tbody tr td:first-child').allTextContents();
  check(filtered.length > 0 && filtered.length < total && filtered.every((c) => c === 'schuldhulp-utrecht'), `the matrix filters by consumer: ${filtered}`);
  await accessible(page, 'matrix');
  await screenshot(page, '2-wie-ziet-wat', false);

  await page.click('nav >> text=Auditlog');
  check((await page.locator('#chains tr[data-chain="ok"]').count()) === 1, 'the audit chain verifies');
  const verify = cli(['audit', 'verify', AUDIT]);
  const records = (await page.locator('#chains tr[data-chain] td:nth-child(3)').textContent()).trim();
  check(verify.includes(`${records} record`), `the page's record count matches audit verify: ${records} vs ${verify.trim()}`);
  check((await page.locator('#writable').textContent()).trim() === 'ja', 'the log is writable');
  await accessible(page, 'audit health');
  await screenshot(page, '5-auditlog');

  await page.click('nav >> text=Zaken');
  const cases = await page.locator('section.case').evaluateAll((ss) => ss.map((s) => [s.dataset.case, s.dataset.status]));
  check(cases.some(([id, st]) => id === 'casus-2026-0001' && st === 'open'), `the register shows the demo's open case: ${cases}`);
  check(cases.some(([id, st]) => id === 'casus-2026-0002' && st === 'closed'), `and its closed case: ${cases}`);
  check(!(await page.content()).includes(BSN), 'the register shows no BSN');
  await accessible(page, 'cases');
  await screenshot(page, '7-zaken', false);

  // English is one click away, and stays on while navigating.
  await page.click('text=English');
  check((await page.locator('html').getAttribute('lang')) === 'en', 'English page');
  await page.click('nav >> text=Purposes and grants');
  check((await page.locator('h1').textContent()).includes('Purposes and grants'), 'English persists across the menu');
  await accessible(page, 'purposes (en)');
}

// ---- run ------------------------------------------------------------------------------------

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const origin = new URL(CONSOLE).origin;
try {
  const context = await browser.newContext({
    clientCertificates: [{ origin, certPath: env('OFFICER_CERT'), keyPath: env('OFFICER_KEY') }],
    viewport: { width: 1280, height: 900 },
    acceptDownloads: true,
  });
  const page = await context.newPage();
  page.on('request', (r) => requestedUrls.push(r.url()));
  const violations = [];
  page.on('console', (m) => { if (/Content Security Policy/i.test(m.text())) violations.push(m.text()); });

  await pages(page);
  await decisionForm(page);
  await art15(page, context);
  await history(page);

  check(violations.length === 0, `the pages break their own CSP: ${violations}`);
  const leaked = requestedUrls.filter((u) => u.includes(BSN) || u.includes(QUIET_BSN));
  check(leaked.length === 0, `a BSN appeared in a URL: ${leaked}`);
  console.log(`${requestedUrls.length} requests, none with a BSN in the URL`);

  // Someone else's certificate (a consumer's, from the same CA) is refused.
  const stranger = await browser.newContext({
    clientCertificates: [{ origin, certPath: env('STRANGER_CERT'), keyPath: env('STRANGER_KEY') }],
  });
  const refused = await (await stranger.newPage()).goto(`${CONSOLE}/doelen`);
  check(refused.status() === 403, `a consumer's certificate is refused (got ${refused.status()})`);
  await stranger.close();
} finally {
  await browser.close();
}

if (failures.length) {
  console.error(`${failures.length} failure(s):\n- ${failures.join('\n- ')}`);
  process.exit(1);
}
console.log('console browser tests: all passed');
