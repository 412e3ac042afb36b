// The admin page, in a real browser: a non-staff user is turned away; the superuser made by
// `roster createsuperuser` sets up TOTP (staff need a second factor), signs in with the
// password and then a code (made here by an RFC 6238 implementation of this script's own,
// over Node's HMAC), finds users by a prefix, opens one, deactivates them
// (their session stops working at once), reactivates them, ends their sessions, sends a
// reset link (it reaches the email output, never the page) and reads the audit trail.
//
// Usage: ROSTER_URL=http://127.0.0.1:PORT ROSTER_STDOUT=server.log ROSTER_ADMIN=name
// ROSTER_ADMIN_PASSWORD=… node admin-e2e.mjs (the server runs without --smtp-url; needs
// playwright-core and /usr/bin/chromium, which .ci/run installs)
import { readFileSync } from "node:fs";
import { chromium } from "playwright-core";
import { totp } from "./totp.mjs";

const base = process.env.ROSTER_URL;
const stdoutFile = process.env.ROSTER_STDOUT;
const admin = process.env.ROSTER_ADMIN;
const adminPassword = process.env.ROSTER_ADMIN_PASSWORD;
if (!base || !stdoutFile || !admin || !adminPassword) throw new Error("set ROSTER_URL, ROSTER_STDOUT, ROSTER_ADMIN, ROSTER_ADMIN_PASSWORD");

let failed = false;
const check = (ok, what, detail) => {
  console.log(`${ok ? "ok  " : "FAIL"} ${what}${ok ? "" : `: ${detail}`}`);
  if (!ok) failed = true;
};
const gql = async (query, variables, token) => {
  const headers = { "content-type": "application/json", accept: "application/graphql-response+json" };
  if (token) headers.authorization = `Bearer ${token}`;
  const r = await fetch(`${base}/graphql`, { method: "POST", headers, body: JSON.stringify({ query, variables }) });
  return r.json();
};
const password = "correct horse battery staple";
const register = (username) => gql("mutation R($i: RegisterInput!) { register(input: $i) { id } }",
  { i: { username, email: `${username}@example.com`, password } });
const login = async (identifier) => (await gql("mutation L($i: LoginInput!) { login(input: $i) { token } }",
  { i: { identifier, password } })).data?.login?.token;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  for (const name of ["alice", "alister", "bob"]) {
    const r = await register(name);
    check(typeof r.data?.register?.id === "string", `register ${name}`, JSON.stringify(r));
  }
  // The superuser sets up TOTP over the API first (staff need a second factor).
  const chiefToken = (await gql("mutation L($i: LoginInput!) { login(input: $i) { token } }",
    { i: { identifier: admin, password: adminPassword } })).data?.login?.token;
  const started = await gql("mutation { startTotpEnrollment { secret } }", {}, chiefToken);
  const secret = started.data?.startTotpEnrollment?.secret;
  check(typeof secret === "string", "the superuser starts a TOTP enrolment", JSON.stringify(started));
  const confirmed = await gql("mutation C($c: String!) { confirmTotpEnrollment(code: $c) }", { c: totp(secret, 0) }, chiefToken);
  check(confirmed.data?.confirmTotpEnrollment?.length === 10, "a code from this script's own TOTP confirms it", JSON.stringify(confirmed));

  const aliceToken = await login("alice");
  const me = async () => (await gql("{ me { username } }", {}, aliceToken)).data?.me?.username;
  check(await me() === "alice", "alice is signed in", "");

  const page = await (await browser.newContext()).newPage();
  const external = [];
  page.on("request", (q) => { if (!q.url().startsWith(base)) external.push(q.url()); });
  const consoleErrors = [];
  page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(m.text()); });
  const response = await page.goto(`${base}/admin`);
  const csp = response.headers()["content-security-policy"] || "";
  check(csp.includes("default-src 'none'") && csp.includes("frame-ancestors 'none'"), "the page is served under a strict CSP", csp);

  // Not staff: turned away, nothing shown.
  await page.fill("#identifier", "bob");
  await page.fill("#password", password);
  await page.click("#signin-submit");
  await page.waitForSelector("#status.error");
  check((await page.textContent("#status")).includes("FORBIDDEN"), "a user who is not staff is refused", await page.textContent("#status"));
  check(await page.isHidden("#search-panel"), "and sees no user", "");

  await page.fill("#identifier", admin);
  await page.fill("#password", adminPassword);
  await page.click("#signin-submit");
  await page.waitForSelector("#second-step:not([hidden])");
  check(await page.isHidden("#search-panel"), "the password alone shows no user", "");
  await page.fill("#code", "000000");
  await page.click("#code-submit");
  await page.waitForSelector("#status.error");
  check((await page.textContent("#status")).includes("BAD_USER_INPUT"), "a wrong code is refused, and may be retried", await page.textContent("#status"));
  await page.fill("#code", totp(secret, 1));
  await page.click("#code-submit");
  await page.waitForSelector("#search-panel:not([hidden])");
  check((await page.textContent("#who")) === admin, "the superuser signs in", await page.textContent("#who"));

  await page.fill("#query", "ALI");
  await page.click("#find");
  await page.waitForFunction(() => document.querySelectorAll("#results tbody tr").length === 2);
  const names = await page.$$eval("#results tbody tr td:first-child", (tds) => tds.map((t) => t.textContent));
  check(JSON.stringify(names) === JSON.stringify(["alice", "alister"]), "a prefix finds alice and alister, not bob", JSON.stringify(names));

  await page.click("#results tbody tr:first-child button.open");
  await page.waitForFunction(() => document.getElementById("user-name").textContent === "alice");
  check((await page.textContent('[data-fact="Password"]')) === "argon2id", "the user's facts show the hash's format, not the hash", await page.textContent('[data-fact="Password"]'));
  check((await page.locator("#user-sessions li").count()) === 1, "alice's session is listed", "");

  await page.click("#deactivate");
  await page.waitForFunction(() => document.getElementById("status").textContent.includes("Deactivated"));
  check(await me() === undefined, "alice's session stops working at once", "");
  await page.waitForFunction(() => [...document.querySelectorAll("#audit tbody tr td:nth-child(2)")].some((t) => t.textContent === "user.deactivated"));
  check(true, "the audit trail shows the deactivation", "");

  await page.click("#reactivate");
  await page.waitForFunction(() => document.getElementById("status").textContent.includes("Reactivated"));
  const again = await login("alice");
  check(typeof again === "string", "reactivated, alice signs in again", "");
  await page.click("#end-sessions");
  await page.waitForFunction(() => document.getElementById("status").textContent.includes("session(s) ended"));
  check((await gql("{ me { username } }", {}, again)).data?.me === null, "ending her sessions signs her out", "");

  await page.click("#send-reset");
  await page.waitForFunction(() => document.getElementById("status").textContent.includes("reset link"));
  let printed = false;
  for (let i = 0; i < 100 && !printed; i++) {
    printed = /reset-password\?token=[A-Za-z0-9_-]{43}/.test(readFileSync(stdoutFile, "utf8"));
    if (!printed) await new Promise((r) => setTimeout(r, 100));
  }
  check(printed, "the reset link goes out by email", "");
  check(!/token=/.test(await page.content()), "and never appears on the page", "");
  const trail = await page.$$eval("#audit tbody tr td:nth-child(2)", (tds) => tds.map((t) => t.textContent));
  check(["user.password_reset_sent", "user.sessions_ended", "user.reactivated", "user.deactivated"].every((a) => trail.includes(a)), "every action is in the trail", JSON.stringify(trail));

  await page.click("#signout");
  await page.waitForSelector("#signin-panel:not([hidden])");
  check(true, "signing out returns to the sign-in form", "");
  check(external.length === 0, "no request leaves the server", external.join(", "));
  check(consoleErrors.length === 0, "no console error (the CSP blocked nothing)", consoleErrors.join(" | "));
} catch (e) {
  check(false, "the walk-through ran", e.stack || e);
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
