// The email links, in a real browser: register, take the confirmation link from the email
// the console transport printed, open it (nothing may happen until the button is pressed),
// confirm; then ask for a password reset, open that link, try a weak password, set a good
// one, and log in with it; then move the account to a new address (the old one is told),
// open the link sent to the new one, confirm, and log in with the new address.
//
// Usage: ROSTER_URL=http://127.0.0.1:PORT ROSTER_STDOUT=server.log node pages-e2e.mjs
// (the server runs without --smtp-url, its stdout in ROSTER_STDOUT; needs playwright-core
// and /usr/bin/chromium, which .ci/run installs)
import { readFileSync } from "node:fs";
import { chromium } from "playwright-core";

const base = process.env.ROSTER_URL;
const stdoutFile = process.env.ROSTER_STDOUT;
if (!base || !stdoutFile) throw new Error("set ROSTER_URL and ROSTER_STDOUT");

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
// The newest link to `path` in the printed emails, waiting for the `n`th one.
const link = async (path, n) => {
  const re = new RegExp(`${base.replace(/[.]/g, "\\.")}/${path}\\?token=[A-Za-z0-9_-]{43}`, "g");
  for (let i = 0; i < 100; i++) {
    const found = readFileSync(stdoutFile, "utf8").match(re) || [];
    if (found.length >= n) return found[n - 1];
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no ${path} link #${n} printed`);
};
const login = (password) => gql(
  "mutation L($i: LoginInput!) { login(input: $i) { token user { emailVerified } } }",
  { i: { identifier: "grace", password } });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const first = "correct horse battery staple";
  const r = await gql("mutation R($i: RegisterInput!) { register(input: $i) { username emailVerified } }",
    { i: { username: "grace", email: "grace@example.com", password: first } });
  check(r.data?.register?.emailVerified === false, "register (unverified)", JSON.stringify(r));

  const page = await (await browser.newContext()).newPage();
  const external = [];
  page.on("request", (q) => { if (!q.url().startsWith(base)) external.push(q.url()); });
  const consoleErrors = [];
  page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(m.text()); });

  const verifyLink = await link("verify-email", 1);
  await page.goto(verifyLink);
  await page.waitForSelector("#submit");
  let me = await login(first);
  check(me.data?.login?.user?.emailVerified === false, "opening the link verifies nothing by itself", JSON.stringify(me));
  await page.click("#submit");
  await page.waitForSelector("#status.ok");
  check((await page.textContent("#status")).includes("confirmed"), "the page confirms", await page.textContent("#status"));
  me = await login(first);
  check(me.data?.login?.user?.emailVerified === true, "emailVerified after the button", JSON.stringify(me));

  await page.goto(verifyLink);
  await page.click("#submit");
  await page.waitForSelector("#status.error");
  check((await page.textContent("#status")).includes("not valid"), "a used link says so", await page.textContent("#status"));

  const asked = await gql("mutation P($e: String!) { requestPasswordReset(email: $e) }", { e: "Grace@Example.com" });
  check(asked.data?.requestPasswordReset === true, "requestPasswordReset", JSON.stringify(asked));
  await page.goto(await link("reset-password", 1));
  await page.fill("#password", "password");
  await page.fill("#confirm", "password");
  await page.click("#submit");
  await page.waitForSelector("#status.error li");
  check((await page.textContent("#status")).includes("too common"), "a weak password is refused with the policy's words", await page.textContent("#status"));
  const second = "purple elephant dancing quietly";
  await page.fill("#password", second);
  await page.fill("#confirm", second);
  await page.click("#submit");
  await page.waitForSelector("#status.ok");
  check((await page.textContent("#status")).includes("changed"), "the page confirms the reset", await page.textContent("#status"));
  check((await login(first)).errors?.[0]?.extensions?.code === "INVALID_CREDENTIALS", "the old password no longer works", "");
  check(typeof (await login(second)).data?.login?.token === "string", "the new password works", "");

  // A new address: the old one is told, the new one gets the link; nothing changes until
  // the button is pressed on the page the link opens.
  const session = (await login(second)).data.login.token;
  const change = await gql("mutation C($i: RequestEmailChangeInput!) { requestEmailChange(input: $i) }",
    { i: { newEmail: "grace.hopper@example.org", password: second } }, session);
  check(change.data?.requestEmailChange === true, "requestEmailChange", JSON.stringify(change));
  const changeLink = await link("change-email", 1);
  for (let i = 0; i < 100 && !readFileSync(stdoutFile, "utf8").includes("A change of your email address was asked for"); i++) {
    await new Promise((r) => setTimeout(r, 100));
  }
  check(readFileSync(stdoutFile, "utf8").includes("A change of your email address was asked for"),
    "the old address is told", "");
  await page.goto(changeLink);
  await page.waitForSelector("#submit");
  const byNew = () => gql("mutation L($i: LoginInput!) { login(input: $i) { token } }",
    { i: { identifier: "grace.hopper@example.org", password: second } });
  check((await byNew()).errors?.[0]?.extensions?.code === "INVALID_CREDENTIALS",
    "opening the link changes nothing by itself", "");
  await page.click("#submit");
  await page.waitForSelector("#status.ok");
  check((await page.textContent("#status")).includes("now your account"), "the page confirms the new address", await page.textContent("#status"));
  check(typeof (await byNew()).data?.login?.token === "string", "the new address signs in", "");
  const stale = await gql("{ me { username } }", {}, session);
  check(stale.data?.me === null, "the change signed the other sessions out", JSON.stringify(stale));

  await page.goto(`${base}/reset-password`);
  check(await page.isDisabled("#submit"), "a link without a token disables the form", "");
  check(external.length === 0, "no request leaves the server", external.join(", "));
  check(consoleErrors.length === 0, "no console error (the CSP blocked nothing)", consoleErrors.join(" | "));
} catch (e) {
  check(false, "the walk-through ran", e.stack || e);
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
