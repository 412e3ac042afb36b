// The README's first session, in a real browser: open GraphiQL, register, log in, see `me`,
// set up a second factor (the QR code it answers is rendered here and decoded by jsQR, a
// reader roster did not write; the codes come from this script's own RFC 6238 over Node's
// HMAC), log out and in with both steps, change the password, log out — by pressing
// GraphiQL's run button and picking each
// operation of the example document, as the README tells a new user to. Also checks what the browser did with the session cookie
// (HttpOnly: invisible to page scripts; Secure, yet accepted from http://127.0.0.1).
//
// Usage: ROSTER_URL=http://127.0.0.1:PORT node graphiql-e2e.mjs   (needs playwright-core,
// jsqr and /usr/bin/chromium; .ci/run installs them)
import { createRequire } from "node:module";
import { chromium } from "playwright-core";
import { totp } from "./totp.mjs";

const jsQrPath = createRequire(import.meta.url).resolve("jsqr");

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

  // The user edits a code into the document, as the README says.
  const typeCode = async (field, code) => {
    await page.evaluate(([field, code]) => {
      const cm = document.querySelector(".graphiql-query-editor .CodeMirror").CodeMirror;
      cm.setValue(cm.getValue().replace(new RegExp(`${field}\\(code: "\\d*"\\)`), `${field}(code: "${code}")`));
    }, [field, code]);
  };

  r = await run("StartTotp");
  const enrolment = r.data?.startTotpEnrollment;
  check(typeof enrolment?.secret === "string" && enrolment.otpauthUri.startsWith("otpauth://totp/"),
    "StartTotp answers a secret and an otpauth URI", JSON.stringify(r));
  // The QR code renders in the browser and reads back as the otpauth URI.
  const qrPage = await context.newPage();
  await qrPage.setContent(`<img id="qr" src="data:image/svg+xml;base64,${Buffer.from(enrolment.qrSvg).toString("base64")}">`);
  await qrPage.addScriptTag({ path: jsQrPath });
  const read = await qrPage.evaluate(async () => {
    const img = document.getElementById("qr");
    await img.decode();
    const size = 400;
    const canvas = document.createElement("canvas");
    canvas.width = size; canvas.height = size;
    const g = canvas.getContext("2d");
    g.fillStyle = "#fff"; g.fillRect(0, 0, size, size);
    g.drawImage(img, 20, 20, size - 40, size - 40);
    const data = g.getImageData(0, 0, size, size);
    return { width: img.naturalWidth, text: window.jsQR(data.data, size, size)?.data };
  });
  await qrPage.close();
  check(read.width > 0 && read.text === enrolment.otpauthUri,
    "the QR code renders and a QR reader gets the otpauth URI from it", JSON.stringify(read));

  await typeCode("confirmTotpEnrollment", totp(enrolment.secret, 0));
  r = await run("ConfirmTotp");
  check(r.data?.confirmTotpEnrollment?.length === 10, "ConfirmTotp with the app's code: ten recovery codes", JSON.stringify(r));

  r = await run("Logout");
  check(r.data?.logout === true, "Logout", JSON.stringify(r));
  r = await run("Login");
  check(r.data?.login?.mfaRequired === true && r.data?.login?.session?.aal === 1,
    "Login now waits for the second step", JSON.stringify(r));
  r = await run("Me");
  check(r.data?.me?.username === "ada" && r.errors?.[0]?.extensions?.code === "MFA_REQUIRED",
    "Me while waiting: me answers, sessions needs the second step", JSON.stringify(r));
  await typeCode("verifySecondFactor", totp(enrolment.secret, 1));
  r = await run("VerifySecondFactor");
  check(r.data?.verifySecondFactor?.session?.aal === 2, "VerifySecondFactor with the next code: aal 2", JSON.stringify(r));
  r = await run("Me");
  check(r.data?.me?.username === "ada" && r.data?.sessions?.[0]?.aal === 2,
    "Me: signed in with both steps (the new cookie)", JSON.stringify(r));

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
