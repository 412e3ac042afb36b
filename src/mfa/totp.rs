//! TOTP (RFC 6238) over HOTP (RFC 4226): HMAC-SHA1 from `ring`, the RFCs' dynamic truncation,
//! compared in constant time.
//!
//! Our own ~40 lines rather than a TOTP crate: a code must be accepted at most once per user,
//! which needs the time step that matched (the crates answer yes or no), and devices brought
//! over from Django carry their own step, digits, `t0` and drift (django-otp), which the
//! crates either lack or refuse for secrets shorter than 128 bits. The primitive itself
//! (HMAC-SHA1) is `ring`'s; the RFCs' test vectors hold this code to them.

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// A device's shared secret (20 bytes for the devices roster makes, as RFC 4226 recommends;
/// imported ones may differ), wiped when dropped.
#[derive(Clone)]
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    /// 160 random bits from the OS.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = Zeroizing::new(vec![0u8; 20]);
        getrandom::fill(bytes.as_mut_slice())?;
        Ok(Self(bytes))
    }

    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// RFC 4648 base32 without padding: what authenticator apps take.
    pub fn base32(&self) -> Zeroizing<String> {
        Zeroizing::new(data_encoding::BASE32_NOPAD.encode(&self.0))
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// How a device counts: roster's own are 6 digits every 30 s from the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    pub digits: u32,
    /// Seconds per step.
    pub step: i64,
    /// The Unix time of step 0.
    pub t0: i64,
    /// Steps the device's clock is known to be off (django-otp's `drift`).
    pub drift: i64,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            digits: 6,
            step: 30,
            t0: 0,
            drift: 0,
        }
    }
}

/// Steps accepted either side of now (RFC 6238's recommended network-delay allowance).
pub const WINDOW: i64 = 1;

/// HOTP value of `counter`, as `digits` decimal digits (RFC 4226 §5.3).
pub fn hotp(secret: &Secret, counter: u64, digits: u32) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret.as_bytes());
    let tag = ring::hmac::sign(&key, &counter.to_be_bytes());
    let mac = tag.as_ref();
    let offset = usize::from(mac[mac.len() - 1] & 0x0f);
    let binary = u32::from_be_bytes([
        mac[offset],
        mac[offset + 1],
        mac[offset + 2],
        mac[offset + 3],
    ]) & 0x7fff_ffff;
    let modulus = 10u64.pow(digits);
    format!(
        "{:0width$}",
        u64::from(binary) % modulus,
        width = digits as usize
    )
}

/// The time step of `unix_time` for `params` (drift included).
/// Saturating: an imported device's `t0` and drift come from another database, and no value
/// of theirs may overflow (a panic in a debug build, a wrapped step in a release one).
pub fn step_at(params: &Params, unix_time: i64) -> i64 {
    unix_time
        .saturating_sub(params.t0)
        .div_euclid(params.step.max(1))
        .saturating_add(params.drift)
}

/// The code a device shows at `unix_time`.
pub fn code_at(secret: &Secret, params: &Params, unix_time: i64) -> String {
    let step = step_at(params, unix_time);
    hotp(secret, u64::try_from(step).unwrap_or(0), params.digits)
}

/// The step `code` was made for, within [`WINDOW`] steps of `unix_time`, if it is one; steps
/// at or before `after` (the last one used) never match again. Every candidate is compared, in
/// constant time, so the answer's timing does not say which one matched.
pub fn matching_step(
    secret: &Secret,
    params: &Params,
    code: &str,
    unix_time: i64,
    after: Option<i64>,
) -> Option<i64> {
    let code = code.trim();
    if code.len() != params.digits as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let now = step_at(params, unix_time);
    let mut found = None;
    for step in now.saturating_sub(WINDOW)..=now.saturating_add(WINDOW) {
        let Ok(counter) = u64::try_from(step) else {
            continue;
        };
        let expected = hotp(secret, counter, params.digits);
        let equal: bool = expected.as_bytes().ct_eq(code.as_bytes()).into();
        if equal && after.is_none_or(|used| step > used) && found.is_none() {
            found = Some(step);
        }
    }
    found
}

/// The `otpauth://` URI authenticator apps read from a QR code (Google's Key URI format).
pub fn otpauth_uri(secret: &Secret, issuer: &str, account: &str) -> Zeroizing<String> {
    let enc = |s: &str| {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    Zeroizing::new(format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits=6&period=30",
        enc(issuer),
        enc(account),
        secret.base32().as_str(),
        enc(issuer)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_from_another_database_never_overflow() {
        let secret = Secret::from_bytes(vec![7; 20]);
        for (t0, drift) in [(i64::MIN, i64::MAX), (i64::MAX, i64::MIN), (0, i64::MAX)] {
            let params = Params {
                digits: 6,
                step: 30,
                t0,
                drift,
            };
            // Tests build with overflow checks: an overflow would panic here.
            let _ = step_at(&params, i64::MAX);
            let _ = code_at(&secret, &params, 0);
            let _ = matching_step(&secret, &params, "123456", i64::MIN, None);
        }
    }

    /// RFC 6238 Appendix B, SHA-1 (the 20-byte ASCII secret, 8 digits).
    #[test]
    fn the_rfc_6238_test_vectors_hold() {
        let secret = Secret::from_bytes(b"12345678901234567890".to_vec());
        let params = Params {
            digits: 8,
            ..Params::default()
        };
        for (time, code) in [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ] {
            assert_eq!(code_at(&secret, &params, time), code, "T = {time}");
        }
    }

    /// RFC 4226 Appendix D: HOTP values 0–9 of the same secret, 6 digits.
    #[test]
    fn the_rfc_4226_test_vectors_hold() {
        let secret = Secret::from_bytes(b"12345678901234567890".to_vec());
        let expected = [
            "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583",
            "399871", "520489",
        ];
        for (counter, code) in expected.iter().enumerate() {
            assert_eq!(hotp(&secret, counter as u64, 6), *code);
        }
    }

    #[test]
    fn a_code_matches_within_one_step_and_never_at_or_before_the_last_used_one() {
        let secret = Secret::generate().unwrap();
        let params = Params::default();
        let now = 1_800_000_000;
        let code = code_at(&secret, &params, now);
        let step = step_at(&params, now);
        assert_eq!(
            matching_step(&secret, &params, &code, now, None),
            Some(step)
        );
        assert_eq!(
            matching_step(&secret, &params, &code, now + 30, None),
            Some(step)
        );
        assert_eq!(
            matching_step(&secret, &params, &code, now - 30, None),
            Some(step)
        );
        assert_eq!(matching_step(&secret, &params, &code, now + 60, None), None);
        assert_eq!(
            matching_step(&secret, &params, &code, now, Some(step)),
            None,
            "replay"
        );
        assert_eq!(
            matching_step(&secret, &params, &code, now, Some(step - 1)),
            Some(step)
        );
        for bad in ["", "12345", "1234567", "12a456", "١٢٣٤٥٦"] {
            assert_eq!(
                matching_step(&secret, &params, bad, now, None),
                None,
                "{bad:?}"
            );
        }
        assert_eq!(format!("{secret:?}"), "Secret(<redacted>)");
    }
}
