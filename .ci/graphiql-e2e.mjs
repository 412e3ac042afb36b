// The README's first session, in a real browser: open GraphiQL, register, log in, see `me`,
// change the password, log out — by pressing GraphiQL's run button and picking each
// operation of the example document, as the README tells a new user to. Also checks what the browser did with the session cookie
// (HttpOnly: invisible to page scripts; Secure, yet accepted from http://127.0.0.1).
//
// Usage: ROSTER_URL=http://127.0.0.1:PORT node graphiql-e2e.mjs   (needs playwright-core and
// /usr/bin/chromium; .ci/run installs both)
import { chromium } from "playwright-core";

const base = process.env.ROSTER_URL;
if (!base) throw new Error("set ROSTER_URL");

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
let failed = false;
const check = (ok, what, detail) => {
  console.log(`${ok ? "ok  " : "FAIL"} ${what}${ok ? "" : `: ${detail}`}`);
  if (!ok) failed = true;
};
try {
  const context = await browser.newContext();
  const page = await context.newPage();
  const external = [];
  page.on("request", (r) => { if (!r.url().startsWith(base)) external.push(r.url()); });
  await page.goto(`${base}/graphql`);
  await page.waitForSelector(".graphiql-query-editor .CodeMirror", { timeout: 20000 });

  // Press ▶ and pick the operation from its menu, as the README tells a new user to; return
  // the answer GraphiQL shows.
  const run = async (name) => {
    const answered = page.waitForResponse((r) => r.url() === `${base}/graphql`
      && r.request().method() === "POST"
      && JSON.parse(r.request().postData() || "{}").operationName === name);
    await page.click(".graphiql-execute-button");
    await page.click(`[role=menuitem]:text-is("${name}")`);
    await answered;
    await page.waitForFunction(() => {
      const cm = document.querySelector(".graphiql-response .CodeMirror");
      return cm && cm.CodeMirror.getValue().trim().startsWith("{");
    });
    const text = await page.evaluate(() =>
      document.querySelector(".graphiql-response .CodeMirror").CodeMirror.getValue());
    // Cleared, so the next wait sees the next answer.
    await page.evaluate(() =>
      document.querySelector(".graphiql-response .CodeMirror").CodeMirror.setValue(""));
    return JSON.parse(text);
  };

  let r = await run("Register");
  check(r.data?.register?.username === "ada", "Register", JSON.stringify(r));

  r = await run("Login");
  check(r.data?.login?.user?.username === "ada" && typeof r.data?.login?.token === "string",
    "Login (identifier ADA)", JSON.stringify(r));

  const cookies = await context.cookies();
  const session = cookies.find((c) => c.name === "__Host-roster_session");
  check(session && session.httpOnly && session.secure && session.sameSite === "Lax" && session.path === "/",
    "the browser kept an HttpOnly, Secure, SameSite=Lax __Host- cookie from http://127.0.0.1", JSON.stringify(cookies));
  const visible = await page.evaluate(() => document.cookie);
  check(!visible.includes("roster_session"), "page scripts cannot read the session cookie", visible);

  r = await run("Me");
  check(r.data?.me?.username === "ada" && r.data?.sessions?.[0]?.current === true,
    "Me: me and sessions answer for the cookie's user", JSON.stringify(r));

  r = await run("ChangePassword");
  check(r.data?.changePassword?.username === "ada", "ChangePassword", JSON.stringify(r));
  r = await run("Me");
  check(r.data?.me?.username === "ada", "still signed in after changing the password", JSON.stringify(r));

  r = await run("Logout");
  check(r.data?.logout === true, "Logout", JSON.stringify(r));
  const after = (await context.cookies()).find((c) => c.name === "__Host-roster_session");
  check(!after, "logout removed the cookie", JSON.stringify(after));

  r = await run("Me");
  check(r.errors?.[0]?.extensions?.code === "UNAUTHENTICATED" && r.errors?.[0]?.path?.[0] === "sessions",
    "Me after logout: anonymous, sessions answers UNAUTHENTICATED", JSON.stringify(r));

  r = await run("Login");
  check(r.errors?.[0]?.extensions?.code === "INVALID_CREDENTIALS",
    "Login with the old password is refused", JSON.stringify(r));

  check(external.length === 0, "no request left the server", external.join(", "));
} finally {
  await browser.close();
}
if (failed) process.exit(1);
console.log("GraphiQL end-to-end: all checks passed");
