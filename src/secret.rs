//! The server secret: the one value outside the database that seals what must not be usable
//! from a dump alone (the access-token signing keys, TOTP secrets, recovery codes, webhook
//! secrets). Every purpose gets its own key,
//! derived from the secret with HKDF-SHA256 (RFC 5869), so one purpose's key says nothing
//! of another's.

use std::path::{Path, PathBuf};

use ring::aead;
use zeroize::Zeroizing;

/// Shortest secret accepted, in bytes: 256 bits if it is random text such as
/// `openssl rand -base64 32` prints (44 characters); anything shorter is a typo or a password.
pub const MIN_SECRET_BYTES: usize = 32;
/// Longest secret accepted (a file of more is not a secret file).
pub const MAX_SECRET_BYTES: usize = 4096;

/// The server secret. Never printed, wiped from memory when dropped.
#[derive(Clone)]
pub struct ServerSecret(Zeroizing<Vec<u8>>);

impl std::fmt::Debug for ServerSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerSecret(<redacted>)")
    }
}

/// Where the process's secret came from; said once at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretOrigin {
    /// `--secret-key-file` or `ROSTER_SECRET_KEY`.
    Configured,
    /// No secret configured: the development secret kept beside the SQLite file.
    DevelopmentFile(PathBuf),
    /// No secret configured, on an in-memory database: a random one for this process.
    Ephemeral,
}

impl ServerSecret {
    /// The secret as written (a file's trailing line break dropped). Refused, without
    /// quoting it: shorter than [`MIN_SECRET_BYTES`] or longer than [`MAX_SECRET_BYTES`].
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim_end_matches(['\n', '\r']);
        if text.len() < MIN_SECRET_BYTES {
            return Err(format!(
                "the secret key is {} bytes; it needs at least {MIN_SECRET_BYTES} random ones \
                 (make one with `openssl rand -base64 32`)",
                text.len()
            ));
        }
        if text.len() > MAX_SECRET_BYTES {
            return Err(format!(
                "the secret key is longer than {MAX_SECRET_BYTES} bytes: is this the right file?"
            ));
        }
        Ok(Self(Zeroizing::new(text.as_bytes().to_vec())))
    }

    /// Reads a secret file (`--secret-key-file`).
    pub fn read(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map(Zeroizing::new)
            .map_err(|e| format!("cannot read --secret-key-file {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("--secret-key-file {}: {e}", path.display()))
    }

    /// 256 random bits from the OS, as base64url text.
    pub fn generate() -> Self {
        use base64::Engine as _;
        let mut bytes = Zeroizing::new([0u8; 32]);
        getrandom::fill(bytes.as_mut()).expect("the OS random source works");
        let text = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes.as_ref());
        Self(Zeroizing::new(text.into_bytes()))
    }

    /// The secret this process uses: the configured one; else, on a SQLite file, the
    /// development secret beside it (`<file>.secret`, created on first use, owner-only); else,
    /// on an in-memory SQLite database, a random one that dies with the process; else none
    /// (PostgreSQL without a configured secret: access tokens are unavailable).
    pub fn resolve(
        configured: Option<Self>,
        database_url: &str,
        sqlite_file: Option<&Path>,
    ) -> Result<Option<(Self, SecretOrigin)>, String> {
        if let Some(secret) = configured {
            return Ok(Some((secret, SecretOrigin::Configured)));
        }
        if let Some(file) = sqlite_file {
            let path = development_file(file);
            return Self::development(&path)
                .map(|s| Some((s, SecretOrigin::DevelopmentFile(path))));
        }
        if database_url.starts_with("sqlite:") {
            return Ok(Some((Self::generate(), SecretOrigin::Ephemeral)));
        }
        Ok(None)
    }

    /// Reads the development secret, or creates it: written whole to a private temporary
    /// file (mode 0600), then hard-linked into place, which never replaces a file a
    /// concurrent process put there first and never leaves a half-written one.
    fn development(path: &Path) -> Result<Self, String> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        if !path.exists() {
            let temp = {
                let mut name = path.as_os_str().to_owned();
                name.push(format!(".{}.tmp", uuid::Uuid::now_v7().simple()));
                std::path::PathBuf::from(name)
            };
            let secret = Self::generate();
            let written = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&temp)
                .and_then(|mut file| {
                    file.write_all(&secret.0)?;
                    file.write_all(b"\n")?;
                    file.sync_all()
                })
                .and_then(|()| std::fs::hard_link(&temp, path));
            let _ = std::fs::remove_file(&temp);
            match written {
                Ok(()) => return Ok(secret),
                // Another process linked its own first: use that one.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(format!("cannot create {}: {e}", path.display())),
            }
        }
        Self::read_private(path)
    }

    /// Reads the development secret only if it is a regular file of this user's that nobody
    /// else may read (not a link someone planted beside the database).
    fn read_private(path: &Path) -> Result<Self, String> {
        use std::io::Read as _;
        use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .map_err(|e| format!("cannot read the development secret {}: {e}", path.display()))?;
        let meta = file
            .metadata()
            .map_err(|e| format!("cannot read the development secret {}: {e}", path.display()))?;
        // SAFETY: geteuid has no preconditions and cannot fail.
        let me = unsafe { libc::geteuid() };
        if !meta.is_file() || meta.uid() != me || meta.mode() & 0o077 != 0 {
            return Err(format!(
                "the development secret {} must be a regular file of this user's that only \
                 they can read (mode 0600); remove it to make a new one (access tokens signed \
                 with it stop verifying), or set --secret-key-file",
                path.display()
            ));
        }
        let mut text = Zeroizing::new(String::new());
        file.read_to_string(&mut text)
            .map_err(|e| format!("cannot read the development secret {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("the development secret {}: {e}", path.display()))
    }

    /// A [`Sealer`] for one purpose.
    pub fn sealer(&self, purpose: &'static str) -> Sealer {
        Sealer(std::sync::Arc::new(self.sealing_key(purpose)))
    }

    /// The HMAC-SHA256 key for one purpose, derived as [`Self::sealing_key`] is.
    pub fn mac_key(&self, purpose: &'static str) -> ring::hmac::Key {
        let salt = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, b"roster server secret");
        let info = [purpose.as_bytes()];
        let prk = salt.extract(&self.0);
        let okm = prk
            .expand(&info, ring::hmac::HMAC_SHA256)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        ring::hmac::Key::from(okm)
    }

    /// The AEAD key for one purpose: HKDF-SHA256 of the secret, `info` naming the purpose.
    pub(crate) fn sealing_key(&self, purpose: &'static str) -> aead::LessSafeKey {
        let salt = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, b"roster server secret");
        let info = [purpose.as_bytes()];
        let prk = salt.extract(&self.0);
        let okm = prk
            .expand(&info, &aead::CHACHA20_POLY1305)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        aead::LessSafeKey::new(aead::UnboundKey::from(okm))
    }
}

/// Seals small secrets with one purpose's key (ChaCha20-Poly1305, a random nonce each time,
/// the owner's id as associated data so a sealed value moved to another row does not open).
#[derive(Clone)]
pub struct Sealer(std::sync::Arc<aead::LessSafeKey>);

/// What a sealed value starts with (the format's version).
const SEALED: &str = "sealed1:";

impl Sealer {
    /// `sealed1:` + base64url(nonce ‖ ciphertext ‖ tag).
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<String, &'static str> {
        use base64::Engine;
        let mut nonce = [0u8; aead::NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|_| "no OS randomness")?;
        let mut buffer = Zeroizing::new(plaintext.to_vec());
        self.0
            .seal_in_place_append_tag(
                aead::Nonce::assume_unique_for_key(nonce),
                aead::Aad::from(aad),
                &mut *buffer,
            )
            .map_err(|_| "sealing failed")?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buffer);
        Ok(format!(
            "{SEALED}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(out)
        ))
    }

    /// The plaintext of a value [`Sealer::seal`] made with this key and `aad`; `None` for
    /// anything else (another secret, another row, a tampered value).
    pub fn open(&self, sealed: &str, aad: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        use base64::Engine;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(sealed.strip_prefix(SEALED)?)
            .ok()?;
        if bytes.len() < aead::NONCE_LEN {
            return None;
        }
        let (nonce, ciphertext) = bytes.split_at(aead::NONCE_LEN);
        let nonce = aead::Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buffer = Zeroizing::new(ciphertext.to_vec());
        let plain = self
            .0
            .open_in_place(nonce, aead::Aad::from(aad), &mut buffer)
            .ok()?;
        Some(Zeroizing::new(plain.to_vec()))
    }
}

/// `<file>.secret`, beside the SQLite database file.
pub fn development_file(sqlite_file: &Path) -> PathBuf {
    let mut name = sqlite_file.as_os_str().to_owned();
    name.push(".secret");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_huge_secrets_are_refused_without_being_quoted() {
        let short = ServerSecret::parse("hunter2-hunter2").unwrap_err();
        assert!(short.contains("at least 32"), "{short}");
        assert!(!short.contains("hunter2"), "{short}");
        assert!(ServerSecret::parse(&"x".repeat(MAX_SECRET_BYTES + 1)).is_err());
        let ok = ServerSecret::parse(&format!("{}\n", "k".repeat(32))).unwrap();
        assert_eq!(
            ok.0.len(),
            32,
            "the file's line break is not part of the secret"
        );
        assert_eq!(format!("{ok:?}"), "ServerSecret(<redacted>)");
    }

    #[test]
    fn the_development_secret_is_created_once_owner_only_and_read_back() {
        use std::os::unix::fs::PermissionsExt as _;
        let db = std::env::temp_dir().join(format!("secret_{}.db", uuid::Uuid::now_v7()));
        let url = format!("sqlite://{}?mode=rwc", db.display());
        let (first, origin) = ServerSecret::resolve(None, &url, Some(&db))
            .unwrap()
            .unwrap();
        let path = development_file(&db);
        assert_eq!(origin, SecretOrigin::DevelopmentFile(path.clone()));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (again, _) = ServerSecret::resolve(None, &url, Some(&db))
            .unwrap()
            .unwrap();
        assert_eq!(*first.0, *again.0);
        std::fs::remove_file(&path).unwrap();
        // A development secret others may read, or a link planted in its place, is refused.
        std::fs::write(&path, format!("{}\n", "k".repeat(40))).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let refused = ServerSecret::resolve(None, &url, Some(&db)).unwrap_err();
        assert!(refused.contains("mode 0600"), "{refused}");
        std::fs::remove_file(&path).unwrap();
        let elsewhere = std::env::temp_dir().join(format!("planted_{}", uuid::Uuid::now_v7()));
        std::fs::write(&elsewhere, format!("{}\n", "k".repeat(40))).unwrap();
        std::fs::set_permissions(&elsewhere, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &path).unwrap();
        assert!(
            ServerSecret::resolve(None, &url, Some(&db)).is_err(),
            "a symlink is not read"
        );
        std::fs::remove_file(&path).unwrap();
        std::fs::remove_file(&elsewhere).unwrap();
        // PostgreSQL without a configured secret has none; a configured one always wins.
        assert!(
            ServerSecret::resolve(None, "postgres://h/db", None)
                .unwrap()
                .is_none()
        );
        let given = ServerSecret::generate();
        let (chosen, origin) = ServerSecret::resolve(Some(given.clone()), &url, Some(&db))
            .unwrap()
            .unwrap();
        assert_eq!((*chosen.0).clone(), (*given.0).clone());
        assert_eq!(origin, SecretOrigin::Configured);
        assert!(!development_file(&db).exists());
    }

    #[test]
    fn each_purpose_gets_its_own_key() {
        let secret = ServerSecret::generate();
        let seal = |purpose| {
            let key = secret.sealing_key(purpose);
            let mut data = b"same plaintext".to_vec();
            key.seal_in_place_append_tag(
                aead::Nonce::assume_unique_for_key([0; 12]),
                aead::Aad::empty(),
                &mut data,
            )
            .unwrap();
            data
        };
        assert_ne!(seal("a"), seal("b"));
        assert_eq!(seal("a"), seal("a"));
    }
}
