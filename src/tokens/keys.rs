//! The signing keys in the database (`signing_keys`), shared by every process of a fleet.
//!
//! A key pair is made by ring (P-256), its PKCS#8 private half sealed with ChaCha20-Poly1305
//! under a key derived from the server secret, the key id bound in as associated data (a
//! sealed key copied onto another row does not open).
//!
//! `roster keys rotate` adds a key in one transaction with the retirement of the keys before
//! it. The new key is published in the JWKS at once and signs from [`ACTIVATION_DELAY`]
//! later (or at once with `--now`), on every process at the same moment: each mint reads
//! which key signs now (one indexed query, no cache to go stale). The delay is what lets a
//! verifier that cached the key set meet the new key there before any token carries it. A
//! retired key stays in the JWKS for [`PUBLISHED_AFTER_RETIREMENT`] — longer than any token
//! lives — and its private half is then wiped.

use std::time::Duration;

use chrono::{DateTime, Utc};
use ring::aead;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, QueryOrder,
};
use zeroize::Zeroizing;

use super::jwt::b64;
use crate::entity::signing_key;
use crate::secret::ServerSecret;

/// The HKDF purpose of the key that seals signing keys.
const SEALING_PURPOSE: &str = "roster signing keys v1";
/// The HKDF purpose of the key that vouches for published public keys.
const PUBLISHING_PURPOSE: &str = "roster jwks v1";
/// The sealed form's version prefix.
const SEALED_PREFIX: &str = "v1:";

/// The longest an access token lives (`--jwt-ttl` is capped at this).
pub const MAX_TOKEN_TTL: Duration = Duration::from_secs(3600);
/// How long a rotated-in key is published before it signs: the JWKS's `Cache-Control`
/// (60 s), so a shared cache has served the new set, plus jose's default refetch cooldown
/// (30 s), so a verifier that met an unknown `kid` can fetch again, plus 30 s of margin.
pub const ACTIVATION_DELAY: Duration = Duration::from_secs(120);
/// How long a retired key stays published: the longest token life, plus five minutes for
/// clocks that disagree and a token signed in the instant of the rotation.
pub const PUBLISHED_AFTER_RETIREMENT: Duration = Duration::from_secs(3600 + 300);

/// A key pair ready to sign.
pub struct SigningKey {
    pub kid: String,
    pub pair: EcdsaKeyPair,
}

/// Why the keys cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(transparent)]
    Db(#[from] DbErr),
    /// The secret does not open the key: another secret sealed it (or the row was altered).
    #[error(
        "the server secret does not open signing key {kid}: this is not the secret that sealed \
         it. Start with that secret (every process of a fleet needs the same one), or, to move \
         to this secret, run `roster keys rotate --replace-secret` with it (the old keys stay \
         published until their tokens expire)"
    )]
    WrongSecret { kid: String },
    #[error("a signing key could not be made: {0}")]
    Crypto(&'static str),
}

/// The keys' state as `roster keys list` shows it (never key material).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    pub kid: String,
    pub created_at: DateTime<Utc>,
    pub active_from: DateTime<Utc>,
    pub retired_at: Option<DateTime<Utc>>,
    pub state: KeyState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// Signs new tokens now.
    Active,
    /// Rotated in: published, signs from `active_from`.
    Next,
    /// Live but older than the active key (two processes made a first key at once):
    /// published, never used.
    Standby,
    /// Retired: still published until the tokens it signed have expired.
    Retiring { published_until: DateTime<Utc> },
    /// Out of the JWKS; its private half is wiped.
    Retired,
}

impl KeyState {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Next => "next",
            Self::Standby => "standby",
            Self::Retiring { .. } => "retiring",
            Self::Retired => "retired",
        }
    }
}

fn retention() -> chrono::Duration {
    chrono::Duration::from_std(PUBLISHED_AFTER_RETIREMENT).expect("a small duration")
}

/// Reads and writes `signing_keys` with one secret.
#[derive(Clone)]
pub struct KeyStore {
    db: DatabaseConnection,
    sealing: std::sync::Arc<aead::LessSafeKey>,
    publishing: std::sync::Arc<ring::hmac::Key>,
}

impl KeyStore {
    pub fn new(db: DatabaseConnection, secret: &ServerSecret) -> Self {
        Self {
            db,
            sealing: std::sync::Arc::new(secret.sealing_key(SEALING_PURPOSE)),
            publishing: std::sync::Arc::new(secret.mac_key(PUBLISHING_PURPOSE)),
        }
    }

    /// The MAC that lets a row's public key be published.
    fn public_mac(&self, kid: &str, algorithm: &str, public_jwk: &str) -> String {
        let mut context = ring::hmac::Context::with_key(&self.publishing);
        for part in [kid, algorithm, public_jwk] {
            context.update(&(part.len() as u64).to_be_bytes());
            context.update(part.as_bytes());
        }
        hex(context.sign().as_ref())
    }

    fn vouches_for(&self, row: &signing_key::Model) -> bool {
        let Some(mac) = row.public_mac.as_deref() else {
            return false;
        };
        let expected = self.public_mac(&row.kid, &row.algorithm, &row.public_jwk);
        // Constant time: the MAC is a secret-keyed value an attacker may probe for.
        subtle::ConstantTimeEq::ct_eq(mac.as_bytes(), expected.as_bytes()).into()
    }

    /// Keys made before `public_mac` existed get theirs once their private half proves to
    /// open with this secret and to match the published public key.
    async fn vouch_for_older_keys(&self) -> Result<(), DbErr> {
        let rows = signing_key::Entity::find()
            .filter(signing_key::Column::PublicMac.is_null())
            .filter(signing_key::Column::PrivateKey.is_not_null())
            .all(&self.db)
            .await?;
        for row in rows {
            if self.open(&row).is_ok() {
                let mac = self.public_mac(&row.kid, &row.algorithm, &row.public_jwk);
                signing_key::Entity::update_many()
                    .col_expr(signing_key::Column::PublicMac, Expr::value(mac))
                    .filter(signing_key::Column::Kid.eq(row.kid))
                    .exec(&self.db)
                    .await?;
            }
        }
        Ok(())
    }

    /// How many keys still hold a private half (sealed by some secret).
    pub async fn count_sealed(db: &DatabaseConnection) -> Result<u64, DbErr> {
        use sea_orm::PaginatorTrait as _;
        signing_key::Entity::find()
            .filter(signing_key::Column::PrivateKey.is_not_null())
            .count(db)
            .await
    }

    /// At start-up: opens the active key with this secret (refusing a wrong one), or makes
    /// the first key; wipes private halves no longer needed. Returns the active key.
    pub async fn prepare(&self) -> Result<SigningKey, KeyError> {
        self.wipe_expired(&self.db).await?;
        self.vouch_for_older_keys().await?;
        match self.signing_row(&self.db).await? {
            Some(row) => self.open(&row),
            None => {
                let now = Utc::now();
                let (row, key) = self.generate(now, now)?;
                signing_key::Entity::insert(row).exec(&self.db).await?;
                tracing::info!(kid = %key.kid, "made the first access-token signing key");
                Ok(key)
            }
        }
    }

    /// Retires every live key and adds a new one that signs from now on, in one
    /// transaction. Returns the new key's id.
    ///
    /// The new key signs from [`ACTIVATION_DELAY`] from now, or at once with `immediately`
    /// (a leaked key: verifiers that cached the set may refuse new tokens for a minute or
    /// two, until they refetch it); the keys before it sign until then.
    ///
    /// Refused when this secret does not open the key signing now, unless `replace_secret`:
    /// a rotation with the wrong secret by mistake would leave every process of the fleet
    /// unable to open the new key. Replacing the secret signs at once: a process restarted
    /// with the new secret can open only the new key, so it must be the one that signs.
    pub async fn rotate(
        &self,
        replace_secret: bool,
        immediately: bool,
    ) -> Result<KeyInfo, KeyError> {
        let immediately = immediately || replace_secret;
        let now = Utc::now();
        let active_from = if immediately {
            now
        } else {
            now + chrono::Duration::from_std(ACTIVATION_DELAY).expect("a small duration")
        };
        let (row, key) = self.generate(now, active_from)?;
        let txn = crate::txn::begin_writing(&self.db).await?;
        if txn.get_database_backend() == sea_orm::DbBackend::Postgres {
            // One rotation at a time: a second one waits and then retires the first's key,
            // instead of leaving it live beside its own.
            txn.execute_unprepared("SELECT pg_advisory_xact_lock(7275890111)")
                .await?;
        }
        if !replace_secret && let Some(active) = self.signing_row(&txn).await? {
            self.open(&active)?;
        }
        if replace_secret {
            // The new secret vouches for the keys published now, so the tokens they signed
            // keep verifying (`roster keys list` shows which, beforehand).
            let published = signing_key::Entity::find()
                .filter(
                    sea_orm::Condition::any()
                        .add(signing_key::Column::RetiredAt.is_null())
                        .add(signing_key::Column::RetiredAt.gt(now - retention())),
                )
                .all(&txn)
                .await?;
            for row in published {
                let mac = self.public_mac(&row.kid, &row.algorithm, &row.public_jwk);
                signing_key::Entity::update_many()
                    .col_expr(signing_key::Column::PublicMac, Expr::value(mac))
                    .filter(signing_key::Column::Kid.eq(row.kid))
                    .exec(&txn)
                    .await?;
            }
        }
        signing_key::Entity::update_many()
            .col_expr(signing_key::Column::RetiredAt, Expr::value(active_from))
            .filter(
                sea_orm::Condition::any()
                    .add(signing_key::Column::RetiredAt.is_null())
                    .add(signing_key::Column::RetiredAt.gt(active_from)),
            )
            .exec(&txn)
            .await?;
        signing_key::Entity::insert(row).exec(&txn).await?;
        self.wipe_expired(&txn).await?;
        crate::audit::record(
            &txn,
            &crate::audit::Who::system(),
            "signing_key.rotated",
            None,
            &crate::audit::Origin::default(),
            Some(serde_json::json!({
                "kid": key.kid, "signs_from": active_from, "replace_secret": replace_secret,
            })),
        )
        .await?;
        txn.commit().await?;
        Ok(KeyInfo {
            kid: key.kid,
            created_at: now,
            active_from,
            retired_at: None,
            state: if immediately {
                KeyState::Active
            } else {
                KeyState::Next
            },
        })
    }

    /// The key that signs now, sealed (one indexed query). `None` if there is none.
    pub async fn signing_sealed(&self) -> Result<Option<signing_key::Model>, DbErr> {
        self.signing_row(&self.db).await
    }

    async fn signing_row(
        &self,
        db: &impl ConnectionTrait,
    ) -> Result<Option<signing_key::Model>, DbErr> {
        let now = Utc::now();
        let live = signing_key::Entity::find()
            .filter(
                sea_orm::Condition::any()
                    .add(signing_key::Column::RetiredAt.is_null())
                    .add(signing_key::Column::RetiredAt.gt(now)),
            )
            .order_by_desc(signing_key::Column::ActiveFrom)
            .order_by_desc(signing_key::Column::Kid)
            .all(db)
            .await?;
        Ok(signing_of(live, now))
    }

    /// Opens a stored key with this store's secret.
    pub fn open(&self, row: &signing_key::Model) -> Result<SigningKey, KeyError> {
        let wrong = || KeyError::WrongSecret {
            kid: row.kid.clone(),
        };
        let sealed = row
            .private_key
            .as_deref()
            .and_then(|s| s.strip_prefix(SEALED_PREFIX))
            .ok_or_else(wrong)?;
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(sealed)
            .map_err(|_| wrong())?;
        if bytes.len() < aead::NONCE_LEN {
            return Err(wrong());
        }
        let (nonce, ciphertext) = bytes.split_at(aead::NONCE_LEN);
        let nonce = aead::Nonce::try_assume_unique_for_key(nonce).map_err(|_| wrong())?;
        let mut buffer = Zeroizing::new(ciphertext.to_vec());
        let pkcs8 = self
            .sealing
            .open_in_place(nonce, aead::Aad::from(row.kid.as_bytes()), &mut buffer)
            .map_err(|_| wrong())?;
        let pair = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            pkcs8,
            &ring::rand::SystemRandom::new(),
        )
        .map_err(|_| wrong())?;
        // The key id is the public key's thumbprint: a sealed key moved onto another row's id
        // fails the AEAD already; this also catches a row whose id was made up.
        if PublicJwk::of(&pair)
            .map(|jwk| jwk.thumbprint())
            .ok()
            .as_deref()
            != Some(&row.kid)
        {
            return Err(wrong());
        }
        Ok(SigningKey {
            kid: row.kid.clone(),
            pair,
        })
    }

    /// Takes a key out of the JWKS at once and wipes its private half: for a key that
    /// leaked (`roster keys revoke`). Tokens it signed stop verifying. If it was the key
    /// that signs, the next token is signed by the next live key, or a new one made then.
    /// `false` when there is no such key.
    pub async fn revoke(&self, kid: &str) -> Result<bool, KeyError> {
        let long_ago = Utc::now() - retention() - chrono::Duration::seconds(1);
        let txn = sea_orm::TransactionTrait::begin(&self.db).await?;
        let done = signing_key::Entity::update_many()
            .col_expr(signing_key::Column::RetiredAt, Expr::value(long_ago))
            .col_expr(
                signing_key::Column::PrivateKey,
                Expr::value(Option::<String>::None),
            )
            .filter(signing_key::Column::Kid.eq(kid))
            .exec(&txn)
            .await?;
        if done.rows_affected == 0 {
            txn.rollback().await?;
            return Ok(false);
        }
        crate::audit::record(
            &txn,
            &crate::audit::Who::system(),
            "signing_key.revoked",
            None,
            &crate::audit::Origin::default(),
            Some(serde_json::json!({ "kid": kid })),
        )
        .await?;
        txn.commit().await?;
        Ok(true)
    }

    /// The public keys a verifier may meet, as a JWK Set document: live keys and keys
    /// retired less than [`PUBLISHED_AFTER_RETIREMENT`] ago, each only if this secret vouches
    /// for it (a row written into the database by anyone else is never published).
    pub async fn jwks(&self) -> Result<String, DbErr> {
        let rows = signing_key::Entity::find()
            .filter(
                sea_orm::Condition::any()
                    .add(signing_key::Column::RetiredAt.is_null())
                    .add(signing_key::Column::RetiredAt.gt(Utc::now() - retention())),
            )
            .order_by_desc(signing_key::Column::ActiveFrom)
            .order_by_desc(signing_key::Column::Kid)
            .all(&self.db)
            .await?;
        let mut published = Vec::with_capacity(rows.len());
        for row in rows {
            if self.vouches_for(&row) {
                published.push(row.public_jwk);
            } else {
                tracing::warn!(kid = %row.kid, "a signing key the server secret does not vouch for is not published");
            }
        }
        // Each one a JWK this module wrote as JSON (and vouched for).
        Ok(format!("{{\"keys\":[{}]}}", published.join(",")))
    }

    /// A new key pair, and its row with the private half sealed.
    fn generate(
        &self,
        now: DateTime<Utc>,
        active_from: DateTime<Utc>,
    ) -> Result<(signing_key::ActiveModel, SigningKey), KeyError> {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| KeyError::Crypto("generating a P-256 key failed"))?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .map_err(|_| KeyError::Crypto("reading a generated key failed"))?;
        let jwk = PublicJwk::of(&pair)?;
        let kid = jwk.thumbprint();
        let mut nonce = [0u8; aead::NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|_| KeyError::Crypto("no OS randomness"))?;
        let mut buffer = Zeroizing::new(pkcs8.as_ref().to_vec());
        self.sealing
            .seal_in_place_append_tag(
                aead::Nonce::assume_unique_for_key(nonce),
                aead::Aad::from(kid.as_bytes()),
                &mut *buffer,
            )
            .map_err(|_| KeyError::Crypto("sealing a key failed"))?;
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&buffer);
        let public_jwk = jwk.to_json(&kid);
        let row = signing_key::ActiveModel {
            kid: Set(kid.clone()),
            algorithm: Set("ES256".into()),
            public_mac: Set(Some(self.public_mac(&kid, "ES256", &public_jwk))),
            public_jwk: Set(public_jwk),
            private_key: Set(Some(format!("{SEALED_PREFIX}{}", b64(&sealed)))),
            created_at: Set(now),
            active_from: Set(active_from),
            retired_at: Set(None),
        };
        Ok((row, SigningKey { kid, pair }))
    }

    /// Private halves of keys out of the JWKS are of no use to anyone: gone.
    async fn wipe_expired(&self, db: &impl ConnectionTrait) -> Result<(), DbErr> {
        signing_key::Entity::update_many()
            .col_expr(
                signing_key::Column::PrivateKey,
                Expr::value(Option::<String>::None),
            )
            .filter(signing_key::Column::RetiredAt.lt(Utc::now() - retention()))
            .filter(signing_key::Column::PrivateKey.is_not_null())
            .exec(db)
            .await?;
        Ok(())
    }
}

/// Of the live keys (newest `active_from` first), the one that signs at `now`: the newest
/// already active; if none is yet (every key was rotated in moments ago), the one that
/// activates first, rather than no token at all.
fn signing_of(live: Vec<signing_key::Model>, now: DateTime<Utc>) -> Option<signing_key::Model> {
    let first_pending = live.iter().rposition(|k| k.active_from > now);
    match live.iter().position(|k| k.active_from <= now) {
        Some(i) => live.into_iter().nth(i),
        None => first_pending.and_then(|i| live.into_iter().nth(i)),
    }
}

/// Every key, newest first, with its state.
pub async fn list(db: &DatabaseConnection) -> Result<Vec<KeyInfo>, DbErr> {
    let rows = signing_key::Entity::find()
        .order_by_desc(signing_key::Column::ActiveFrom)
        .order_by_desc(signing_key::Column::Kid)
        .all(db)
        .await?;
    let now = Utc::now();
    let live = |k: &signing_key::Model| k.retired_at.is_none_or(|at| at > now);
    let signing =
        signing_of(rows.iter().filter(|k| live(k)).cloned().collect(), now).map(|k| k.kid);
    Ok(rows
        .into_iter()
        .map(|row| {
            let state = if signing.as_deref() == Some(row.kid.as_str()) {
                KeyState::Active
            } else if live(&row) && row.active_from > now {
                KeyState::Next
            } else if live(&row) {
                KeyState::Standby
            } else {
                match row.retired_at {
                    Some(at) if at + retention() > now => KeyState::Retiring {
                        published_until: at + retention(),
                    },
                    _ => KeyState::Retired,
                }
            };
            KeyInfo {
                kid: row.kid,
                created_at: row.created_at,
                active_from: row.active_from,
                retired_at: row.retired_at,
                state,
            }
        })
        .collect())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An EC public key as a JWK (RFC 7517/7518).
struct PublicJwk {
    x: String,
    y: String,
}

impl PublicJwk {
    fn of(pair: &EcdsaKeyPair) -> Result<Self, KeyError> {
        // ring gives the uncompressed point: 0x04 ‖ x (32 bytes) ‖ y (32 bytes).
        let point = pair.public_key().as_ref();
        if point.len() != 65 || point[0] != 4 {
            return Err(KeyError::Crypto("unexpected public key encoding"));
        }
        Ok(Self {
            x: b64(&point[1..33]),
            y: b64(&point[33..]),
        })
    }

    /// RFC 7638: SHA-256 of the required members in lexicographic order, no whitespace.
    fn thumbprint(&self) -> String {
        use sha2::Digest as _;
        let canonical = format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            self.x, self.y
        );
        b64(&sha2::Sha256::digest(canonical.as_bytes()))
    }

    fn to_json(&self, kid: &str) -> String {
        serde_json::json!({
            "kty": "EC",
            "crv": "P-256",
            "x": self.x,
            "y": self.y,
            "kid": kid,
            "use": "sig",
            "alg": "ES256",
        })
        .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_id_is_the_rfc_7638_thumbprint() {
        // RFC 7515 appendix A.3's P-256 key; the expected value is jose's
        // `calculateJwkThumbprint` of the same JWK (Node, 2026-12-07).
        let jwk = PublicJwk {
            x: "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU".into(),
            y: "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0".into(),
        };
        assert_eq!(
            jwk.thumbprint(),
            "oKIywvGUpTVTyxMQ3bwIIeQUudfr_CkLMjCE19ECD-U"
        );
    }
}
