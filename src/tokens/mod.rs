//! Access tokens: short-lived JWTs (ES256) that let the team's other services verify who is
//! calling without asking roster, and the JWK Set they verify them with.
//!
//! A token is minted for the caller's session (`accessToken`), signed by the key every
//! process of a fleet shares ([`keys`]), and lives until its `exp` whatever happens to the
//! session: a logout does not recall it. Services that need revocation at once ask
//! `/auth/check` instead. Minting is limited per session.

/// Compact JWS framing and the ES256 signature.
pub mod jwt;
/// The signing keys in the database, sealed with the server secret.
pub mod keys;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::DatabaseConnection;

use crate::error::{AppError, FieldError};
use crate::ratelimit::KeyLimiter;
use crate::sessions::Caller;

pub use crate::secret::{Sealer, SecretOrigin, ServerSecret};
pub use keys::{KeyError, KeyStore, MAX_TOKEN_TTL};

/// Longest audience accepted, in bytes.
pub const MAX_AUDIENCE_BYTES: usize = 256;

/// A token's `aud`: 1–256 bytes, no control characters, no surrounding whitespace (a
/// service compares it byte for byte).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audience(String);

impl Audience {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        if raw.is_empty() {
            return Err(FieldError::new(
                "audience",
                crate::accounts::codes::REQUIRED,
                "Name the service the token is for.",
            ));
        }
        if raw.len() > MAX_AUDIENCE_BYTES || raw.trim() != raw || raw.chars().any(char::is_control)
        {
            return Err(FieldError::new(
                "audience",
                crate::accounts::codes::INVALID,
                format!(
                    "An audience is at most {MAX_AUDIENCE_BYTES} bytes, with no control \
                     characters or surrounding spaces."
                ),
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// How tokens are made (from `--jwt-*` and `--public-url`).
#[derive(Debug, Clone)]
pub struct TokenSettings {
    /// `iss`.
    pub issuer: String,
    /// At most [`MAX_TOKEN_TTL`].
    pub ttl: Duration,
    pub default_audience: Option<Audience>,
}

/// A minted token.
#[derive(Clone)]
pub struct AccessToken {
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

/// The token is a bearer credential: never in a log line.
impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Mints access tokens and publishes the JWKS. Cheap to clone. Without a server secret
/// (PostgreSQL and none configured) minting answers `ACCESS_TOKENS_UNAVAILABLE`.
#[derive(Clone)]
pub struct AccessTokens {
    signer: Option<Arc<Signer>>,
    metrics: crate::metrics::Metrics,
}

struct Signer {
    store: KeyStore,
    settings: TokenSettings,
    limiter: KeyLimiter,
    /// The last key opened: most mints find the same key id and skip the unsealing.
    opened: Mutex<Option<Arc<keys::SigningKey>>>,
    /// `--auth-check-jwt`: each session's token for `/auth/check`, reused while more than
    /// half its life is left (a signature per check would cost more than the check).
    for_checks: Mutex<std::collections::HashMap<uuid::Uuid, CheckToken>>,
    /// The id of the key that signs, as last read (each mint, and every minute): a check
    /// token of another key is signed again.
    signing_kid: Mutex<String>,
    /// The JWKS document and when it was read (served for [`JWKS_CACHE`]).
    jwks: Mutex<Option<(std::time::Instant, Arc<str>)>>,
}

/// A token handed to a proxy's check, and what it says (re-minted when the user changed).
struct CheckToken {
    token: Arc<str>,
    kid: String,
    fresh_until: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    said: (String, bool, Option<i64>, i16),
}

/// Sessions whose check token is kept; past it, expired ones go first, and a new session's
/// token is then not kept (its checks sign again: slower, never wrong).
pub const MAX_CHECK_TOKENS: usize = 10_000;

/// How long the JWKS document is served from memory: an unauthenticated endpoint should not
/// cost a query per request, and a rotated-in key is published two minutes before it signs.
pub const JWKS_CACHE: Duration = Duration::from_secs(1);

/// Why access tokens cannot be served at start-up.
#[derive(Debug, thiserror::Error)]
pub enum TokensError {
    #[error(
        "the database holds {0} access-token signing key(s) sealed with a server secret, and \
         none is configured: set --secret-key-file or ROSTER_SECRET_KEY to the fleet's secret"
    )]
    NoSecret(u64),
    #[error(transparent)]
    Keys(#[from] KeyError),
}

impl AccessTokens {
    /// Opens the keys with `secret` (making the first key if there is none), or, without a
    /// secret, checks that there is nothing to open.
    pub async fn open(
        db: DatabaseConnection,
        secret: Option<&ServerSecret>,
        settings: TokenSettings,
        limiter: KeyLimiter,
        metrics: crate::metrics::Metrics,
    ) -> Result<Self, TokensError> {
        let Some(secret) = secret else {
            let sealed = KeyStore::count_sealed(&db).await.map_err(KeyError::from)?;
            if sealed > 0 {
                return Err(TokensError::NoSecret(sealed));
            }
            return Ok(Self {
                signer: None,
                metrics,
            });
        };
        let store = KeyStore::new(db, secret);
        let active = store.prepare().await?;
        Ok(Self {
            signer: Some(Arc::new(Signer {
                store,
                settings,
                limiter,
                signing_kid: Mutex::new(active.kid.clone()),
                opened: Mutex::new(Some(Arc::new(active))),
                for_checks: Mutex::default(),
                jwks: Mutex::default(),
            })),
            metrics,
        })
    }

    /// Whether tokens can be minted (a server secret is configured).
    pub fn available(&self) -> bool {
        self.signer.is_some()
    }

    /// A token for the caller's session, for `audience` (or the default one).
    pub async fn mint(
        &self,
        caller: &Caller,
        audience: Option<&str>,
    ) -> Result<AccessToken, AppError> {
        let outcome = self.mint_inner(caller, audience).await;
        self.metrics.access_token(match &outcome {
            Ok(_) => "minted",
            Err(AppError::RateLimited { .. }) => "rate_limited",
            Err(AppError::InvalidInput(_)) => "invalid_audience",
            Err(AppError::AccessTokensUnavailable) => "unavailable",
            Err(_) => "error",
        });
        outcome
    }

    async fn mint_inner(
        &self,
        caller: &Caller,
        audience: Option<&str>,
    ) -> Result<AccessToken, AppError> {
        let signer = self
            .signer
            .as_ref()
            .ok_or(AppError::AccessTokensUnavailable)?;
        let audience = match (audience, &signer.settings.default_audience) {
            (Some(raw), _) => Audience::parse(raw),
            (None, Some(default)) => Ok(default.clone()),
            (None, None) => Audience::parse(""),
        }
        .map_err(|e| AppError::InvalidInput(vec![e]))?;
        signer
            .limiter
            .check(&caller.session.id.to_string())
            .await
            .map_err(|retry_after| AppError::RateLimited { retry_after })?;
        signer.sign(caller, audience).await
    }

    /// `--auth-check-jwt`: a token for the proxy's check of this caller, for the default
    /// audience. One per session, reused while more than half its life is left and the user
    /// is as it says; not charged to the session's minting limit (it is bounded by the
    /// reuse: two signatures per token lifetime).
    pub async fn for_check(&self, caller: &Caller) -> Result<Arc<str>, AppError> {
        let signer = self
            .signer
            .as_ref()
            .ok_or(AppError::AccessTokensUnavailable)?;
        let user = &caller.user;
        let said = (
            user.username.clone(),
            user.email_verified,
            user.legacy_id,
            caller.session.aal,
        );
        let now = Utc::now();
        let signing_kid = signer
            .signing_kid
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(kept) = signer
            .for_checks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&caller.session.id)
            .filter(|k| k.fresh_until > now && k.said == said && k.kid == signing_kid)
        {
            return Ok(kept.token.clone());
        }
        let audience = signer
            .settings
            .default_audience
            .clone()
            .ok_or_else(|| AppError::internal("--auth-check-jwt without a default audience"))?;
        let minted = signer.sign(caller, audience).await;
        self.metrics.access_token(match &minted {
            Ok(_) => "minted_for_check",
            Err(_) => "error",
        });
        let minted = minted?;
        let kid = jwt::kid_of(&minted.token).unwrap_or_default();
        let token: Arc<str> = Arc::from(minted.token);
        let half = (minted.expires_at - now) / 2;
        let mut kept = signer.for_checks.lock().unwrap_or_else(|e| e.into_inner());
        if kept.len() >= MAX_CHECK_TOKENS && !kept.contains_key(&caller.session.id) {
            kept.retain(|_, k| k.expires_at > now);
        }
        if kept.len() < MAX_CHECK_TOKENS || kept.contains_key(&caller.session.id) {
            kept.insert(
                caller.session.id,
                CheckToken {
                    token: token.clone(),
                    kid,
                    fresh_until: now + half,
                    expires_at: minted.expires_at,
                    said,
                },
            );
        }
        Ok(token)
    }
}

impl Signer {
    /// Signs a token for `caller` and `audience` with the key that signs now.
    async fn sign(&self, caller: &Caller, audience: Audience) -> Result<AccessToken, AppError> {
        let signer = self;
        let key = signer.current_key().await?;
        *signer.signing_kid.lock().unwrap_or_else(|e| e.into_inner()) = key.kid.clone();
        let now = Utc::now();
        let expires_at = now
            + chrono::Duration::from_std(signer.settings.ttl.min(MAX_TOKEN_TTL))
                .map_err(AppError::internal)?;
        let mut jti = [0u8; 16];
        getrandom::fill(&mut jti).map_err(|e| AppError::internal(e.to_string()))?;
        let user = &caller.user;
        let claims = jwt::Claims {
            iss: signer.settings.issuer.clone(),
            sub: user.id.to_string(),
            aud: audience.0,
            exp: expires_at.timestamp(),
            nbf: now.timestamp(),
            iat: now.timestamp(),
            jti: jwt::b64(&jti),
            sid: caller.session.id.to_string(),
            username: user.username.clone(),
            email_verified: user.email_verified,
            legacy_id: user.legacy_id,
            aal: caller.session.aal,
            amr: if caller.session.aal >= 2 {
                vec!["pwd", "otp"]
            } else {
                vec!["pwd"]
            },
        };
        let token = jwt::sign(&key.pair, &key.kid, &claims).map_err(AppError::internal)?;
        Ok(AccessToken {
            token,
            // The token's `exp` is whole seconds; say the same.
            expires_at: DateTime::from_timestamp(claims.exp, 0).unwrap_or(expires_at),
        })
    }
}

impl AccessTokens {
    /// The JWK Set: every key a live token may be signed by (none without a secret: no
    /// key can be vouched for). Read at most every [`JWKS_CACHE`].
    pub async fn jwks(&self) -> Result<Arc<str>, sea_orm::DbErr> {
        let Some(signer) = &self.signer else {
            return Ok(Arc::from(r#"{"keys":[]}"#));
        };
        if let Some((_, body)) = signer
            .jwks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .filter(|(at, _)| at.elapsed() < JWKS_CACHE)
        {
            return Ok(body.clone());
        }
        let body: Arc<str> = Arc::from(signer.store.jwks().await?);
        *signer.jwks.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((std::time::Instant::now(), body.clone()));
        Ok(body)
    }

    /// Every minute (the server's sweeper): learns which key signs now, so check tokens of
    /// a key rotated out or revoked elsewhere are signed again within the minute.
    pub async fn refresh(&self) {
        let Some(signer) = &self.signer else {
            return;
        };
        match signer.store.signing_sealed().await {
            Ok(Some(row)) => {
                *signer.signing_kid.lock().unwrap_or_else(|e| e.into_inner()) = row.kid;
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "reading the signing key failed"),
        }
    }

    /// Forgets idle rate-limit buckets and expired check tokens (the server's sweeper
    /// calls this every minute).
    pub fn forget_idle(&self) {
        if let Some(signer) = &self.signer {
            signer.limiter.forget_idle();
            let now = Utc::now();
            signer
                .for_checks
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|_, k| k.expires_at > now);
        }
    }
}

impl Signer {
    /// The key that signs now. Read from the database on every mint (one indexed query), so
    /// a rotation by `roster keys rotate` takes effect on every process at the same moment;
    /// unsealed only when the key id changes.
    async fn current_key(&self) -> Result<Arc<keys::SigningKey>, AppError> {
        let row = match self.store.signing_sealed().await? {
            Some(row) => row,
            None => {
                // Every key was retired by hand (SQL): make a new one rather than fail.
                let key = Arc::new(self.store.prepare().await.map_err(AppError::internal)?);
                *self.opened.lock().unwrap_or_else(|e| e.into_inner()) = Some(key.clone());
                return Ok(key);
            }
        };
        if let Some(key) = self
            .opened
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .filter(|k| k.kid == row.kid)
        {
            return Ok(key.clone());
        }
        let key = Arc::new(self.store.open(&row).map_err(AppError::internal)?);
        *self.opened.lock().unwrap_or_else(|e| e.into_inner()) = Some(key.clone());
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audiences_are_bounded_printable_and_trimmed() {
        assert_eq!(Audience::parse("billing").unwrap().as_str(), "billing");
        assert!(Audience::parse("https://api.example.com/").is_ok());
        assert_eq!(Audience::parse("").unwrap_err().code, "required");
        for bad in [
            " billing",
            "billing\n",
            "bil\u{0}ling",
            &"a".repeat(MAX_AUDIENCE_BYTES + 1),
        ] {
            assert_eq!(Audience::parse(bad).unwrap_err().code, "invalid", "{bad:?}");
        }
    }
}
