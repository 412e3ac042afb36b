// RFC 6238 codes for the browser walks, over Node's own HMAC (not roster's code): RFC 4648
// base32 → bytes, and the code `offset` steps from now (SHA-1, 6 digits, 30 s).
import { createHmac } from "node:crypto";

export const base32 = (text) => {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = 0, value = 0;
  const out = [];
  for (const c of text.replace(/=+$/, "")) {
    value = (value << 5) | alphabet.indexOf(c);
    bits += 5;
    if (bits >= 8) { out.push((value >>> (bits - 8)) & 255); bits -= 8; value &= (1 << bits) - 1; }
  }
  return Buffer.from(out);
};

export const totp = (secret, offset) => {
  const message = Buffer.alloc(8);
  message.writeBigUInt64BE(BigInt(Math.floor(Date.now() / 1000 / 30) + offset));
  const mac = createHmac("sha1", base32(secret)).update(message).digest();
  const at = mac[mac.length - 1] & 15;
  const binary = ((mac[at] & 127) << 24) | (mac[at + 1] << 16) | (mac[at + 2] << 8) | mac[at + 3];
  return String(binary % 1000000).padStart(6, "0");
};
