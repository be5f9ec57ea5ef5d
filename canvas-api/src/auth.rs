//! Identity that cannot be forged: signed session tokens, the claim each
//! session holds on its username, and how many sessions one IP may get.
//!
//! A token is `v1.<b64url username>.<session id>.<expiry ms>.<b64url sig>`,
//! the signature an HMAC-SHA256 over everything before it. Verifying needs
//! only the secret, so any pod (gateway or canvas-api) checks a token
//! without a round trip; the claim (`canvas:session:<username>`, or a map in
//! the single process) only decides who may be *issued* a name.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use plumbing::redis::Connection;
use protocol::names::canvas as keys;
use protocol::username::is_valid_username;
use sha2::Sha256;

use crate::client_ip::{ForwardedForWatch, client_ip};
use crate::clock::now_ms;
use crate::config::{AuthArgs, AuthMode};
use crate::error::ApiError;
use crate::gateway_proof::GatewayKey;

type HmacSha256 = Hmac<Sha256>;

/// Longer than any token this code issues; a longer one is not even parsed.
const MAX_TOKEN_LEN: usize = 256;
/// The session id of the tokens earlier gateways minted for their own
/// calls (never a claim on a name).
const INTERNAL_SESSION: &str = "gateway";
/// The file, in `DATA_DIR`, holding the generated secret of the single
/// process.
pub const SECRET_FILE: &str = "auth-secret";
/// One issuance window.
const ISSUE_WINDOW: Duration = Duration::from_secs(3600);

/// Why a token was refused. The `reason` goes into the 4001 close frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("malformed session token")]
    Malformed,
    #[error("session token signature does not match (forged, or signed with another secret)")]
    BadSignature,
    #[error("session token expired; get a new one from POST /api/session")]
    Expired,
}

impl TokenError {
    pub fn reason(self) -> &'static str {
        match self {
            TokenError::Malformed => "malformed session token",
            TokenError::BadSignature => "session token signature does not match",
            TokenError::Expired => "session token expired",
        }
    }
}

impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> Self {
        ApiError::Unauthorized(e.to_string())
    }
}

/// What a valid token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub username: String,
    pub session_id: String,
    pub expires_at: u64,
}

/// Everything identity needs. Cheap to clone.
#[derive(Clone)]
pub struct Auth(Arc<AuthInner>);

struct AuthInner {
    mode: AuthMode,
    key: HmacSha256,
    /// Signs and checks gateways' placement proofs.
    gateway_key: GatewayKey,
    ttl: Duration,
    claims: Claims,
    sessions_per_hour: u32,
    issued: Mutex<HashMap<IpAddr, (Instant, u32)>>,
    trusted: Vec<ipnet::IpNet>,
    forwarded_for: Arc<ForwardedForWatch>,
}

enum Claims {
    Redis(Connection),
    /// Username → (session id, until when).
    Local(Mutex<HashMap<String, (String, Instant)>>),
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("the OS has randomness");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

impl Auth {
    /// Resolves the secret (configured, or made and shared through Redis or
    /// `data_dir`) and sets up claims. `redis` is `None` for the single
    /// process without Redis.
    pub async fn start(
        args: &AuthArgs,
        redis: Option<Connection>,
        data_dir: Option<&Path>,
    ) -> anyhow::Result<Auth> {
        args.validate().map_err(anyhow::Error::msg)?;
        let secret = match (&args.secret, &redis, data_dir) {
            (Some(secret), _, _) => secret.clone().into_bytes(),
            (None, Some(conn), _) => shared_secret(conn.clone()).await?,
            (None, None, Some(dir)) => file_secret(dir)?,
            (None, None, None) => anyhow::bail!(
                "AUTH_SECRET is required when there is no Redis to share a generated one through"
            ),
        };
        Ok(Auth::new(
            args.mode,
            &secret,
            Duration::from_secs(args.session_ttl_secs),
            match redis {
                Some(conn) => Claims::Redis(conn),
                None => Claims::Local(Mutex::default()),
            },
            args.sessions_per_hour_per_ip,
            args.trusted().map_err(anyhow::Error::msg)?,
        ))
    }

    /// An `Auth` for one process, with this secret (tests, tools).
    pub fn local(mode: AuthMode, secret: &[u8], ttl: Duration) -> Auth {
        Auth::new(
            mode,
            secret,
            ttl,
            Claims::Local(Mutex::default()),
            0,
            Vec::new(),
        )
    }

    fn new(
        mode: AuthMode,
        secret: &[u8],
        ttl: Duration,
        claims: Claims,
        sessions_per_hour: u32,
        trusted: Vec<ipnet::IpNet>,
    ) -> Auth {
        Auth(Arc::new(AuthInner {
            mode,
            key: HmacSha256::new_from_slice(secret).expect("HMAC takes any key length"),
            gateway_key: GatewayKey::from_secret(secret),
            ttl,
            claims,
            sessions_per_hour,
            issued: Mutex::default(),
            trusted,
            forwarded_for: Arc::default(),
        }))
    }

    pub fn required(&self) -> bool {
        self.0.mode == AuthMode::Required
    }

    /// `TRUSTED_PROXIES`, for [`crate::client_ip::client_ip`].
    pub fn trusted_proxies(&self) -> &[ipnet::IpNet] {
        &self.0.trusted
    }

    /// The client's IP ([`client_ip`] with `TRUSTED_PROXIES`).
    pub fn client_ip(&self, peer: IpAddr, headers: &axum::http::HeaderMap) -> IpAddr {
        client_ip(peer, headers, &self.0.trusted)
    }

    /// Counts requests that came with an untrusted `X-Forwarded-For`: the
    /// accept loop shows it every request, `/metrics` renders it.
    pub fn forwarded_for_watch(&self) -> &Arc<ForwardedForWatch> {
        &self.0.forwarded_for
    }

    fn sign(&self, payload: &str) -> String {
        let mut mac = self.0.key.clone();
        mac.update(payload.as_bytes());
        B64.encode(mac.finalize().into_bytes())
    }

    fn token(&self, username: &str, session_id: &str, expires_at: u64) -> String {
        let payload = format!("v1.{}.{session_id}.{expires_at}", B64.encode(username));
        let sig = self.sign(&payload);
        format!("{payload}.{sig}")
    }

    /// The key of gateways' placement proofs: a gateway signs the
    /// placements it makes for connections it has already identified, so
    /// canvas-api need not trust a bare username or client IP (nor the
    /// gateway hold its clients' tokens).
    pub fn gateway_key(&self) -> &GatewayKey {
        &self.0.gateway_key
    }

    /// Checks a token's signature (in constant time) and expiry.
    pub fn verify(&self, token: &str) -> Result<Session, TokenError> {
        self.verify_at(token, now_ms())
    }

    fn verify_at(&self, token: &str, now: u64) -> Result<Session, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed);
        }
        let (payload, sig) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
        let mut parts = payload.split('.');
        let (Some("v1"), Some(user), Some(session_id), Some(expiry), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(TokenError::Malformed);
        };
        let sig = B64.decode(sig).map_err(|_| TokenError::Malformed)?;
        let mut mac = self.0.key.clone();
        mac.update(payload.as_bytes());
        mac.verify_slice(&sig)
            .map_err(|_| TokenError::BadSignature)?;
        // Signed by us, so well formed unless the secret leaked; checked
        // anyway, as everything a client sends is.
        let username = B64
            .decode(user)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .filter(|u| is_valid_username(u))
            .ok_or(TokenError::Malformed)?;
        let expires_at: u64 = expiry.parse().map_err(|_| TokenError::Malformed)?;
        if expires_at <= now {
            return Err(TokenError::Expired);
        }
        Ok(Session {
            username,
            session_id: session_id.to_owned(),
            expires_at,
        })
    }

    /// `POST /api/session`: a token for `username`, unless another live
    /// session holds the name. `current` is the token the caller presented
    /// (`Authorization: Bearer`): when it is the live session of this name,
    /// the session is renewed rather than refused.
    pub async fn issue(
        &self,
        username: &str,
        current: Option<&str>,
        client: IpAddr,
    ) -> Result<(String, u64), ApiError> {
        if !is_valid_username(username) {
            return Err(ApiError::InvalidUsername(
                "a username is 1-32 letters, digits, '_' or '-'".into(),
            ));
        }
        // A stale or foreign token renews nothing, but is no error: the
        // caller simply asks for a fresh session.
        let renewing = current
            .and_then(|token| self.verify(token).ok())
            .filter(|s| s.username == username && s.session_id != INTERNAL_SESSION)
            .map(|s| s.session_id);
        self.count_issuance(client)?;
        let session_id = renewing.clone().unwrap_or_else(|| random_hex(12));
        let ttl = self.0.ttl;
        self.claim(username, &session_id, renewing.as_deref(), ttl)
            .await?;
        let expires_at = now_ms() + ttl.as_millis() as u64;
        Ok((self.token(username, &session_id, expires_at), expires_at))
    }

    /// Counts one issuance for `client`, or refuses it past the hourly
    /// limit. Fixed windows per IP, pruned as they end.
    fn count_issuance(&self, client: IpAddr) -> Result<(), ApiError> {
        let limit = self.0.sessions_per_hour;
        if limit == 0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut issued = self.0.issued.lock().expect("not poisoned");
        if issued.len() > 10_000 {
            issued.retain(|_, (start, _)| now.duration_since(*start) < ISSUE_WINDOW);
        }
        // One client per IPv4 address or IPv6 /64, as every per-IP limit.
        let entry = issued
            .entry(crate::client_ip::limit_key(client))
            .or_insert((now, 0));
        if now.duration_since(entry.0) >= ISSUE_WINDOW {
            *entry = (now, 0);
        }
        if entry.1 >= limit {
            let left = ISSUE_WINDOW.saturating_sub(now.duration_since(entry.0));
            return Err(ApiError::RateLimited {
                message: format!(
                    "at most {limit} sessions per hour from one address; retry in {} s",
                    left.as_secs().max(1)
                ),
                retry_after_ms: left.as_millis().max(1) as u64,
            });
        }
        entry.1 += 1;
        Ok(())
    }

    /// Takes the name for `session_id` if nobody holds it, or `renewing`
    /// (the caller's current session) does.
    async fn claim(
        &self,
        username: &str,
        session_id: &str,
        renewing: Option<&str>,
        ttl: Duration,
    ) -> Result<(), ApiError> {
        let taken = |retry_after_ms: u64| ApiError::UsernameTaken {
            username: username.to_owned(),
            retry_after_ms: retry_after_ms.max(1),
        };
        match &self.0.claims {
            Claims::Redis(conn) => {
                let script = redis::Script::new(CLAIM_LUA);
                let mut conn = conn.clone();
                let left: i64 = script
                    .key(format!("{}{username}", keys::SESSION_CLAIM_PREFIX))
                    .arg(session_id)
                    .arg(renewing.unwrap_or(""))
                    .arg(ttl.as_millis() as u64)
                    .invoke_async(&mut conn)
                    .await
                    .map_err(|e| ApiError::Unavailable(format!("Redis: {e}")))?;
                if left >= 0 {
                    return Err(taken(left as u64));
                }
                Ok(())
            }
            Claims::Local(map) => {
                let now = Instant::now();
                let mut map = map.lock().expect("not poisoned");
                if map.len() > 10_000 {
                    map.retain(|_, (_, until)| *until > now);
                }
                if let Some((holder, until)) = map.get(username)
                    && *until > now
                    && Some(holder.as_str()) != renewing
                {
                    return Err(taken(until.duration_since(now).as_millis() as u64));
                }
                map.insert(username.to_owned(), (session_id.to_owned(), now + ttl));
                Ok(())
            }
        }
    }
}

/// KEYS[1] the claim; ARGV: session id, the renewing session (or ""), TTL
/// ms. Returns -1 when claimed, else the holder's remaining ms.
const CLAIM_LUA: &str = r"
local cur = redis.call('GET', KEYS[1])
if (not cur) or (ARGV[2] ~= '' and cur == ARGV[2]) then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
  return -1
end
local left = redis.call('PTTL', KEYS[1])
if left < 0 then left = 0 end
return left
";

/// The secret every pod on this Redis shares: the first to start sets it.
async fn shared_secret(mut conn: Connection) -> anyhow::Result<Vec<u8>> {
    let candidate = random_hex(32);
    let (): () = redis::cmd("SET")
        .arg(keys::AUTH_SECRET)
        .arg(&candidate)
        .arg("NX")
        .query_async(&mut conn)
        .await
        .map_err(|e| anyhow::anyhow!("Redis: storing the generated auth secret: {e}"))?;
    let secret: String = redis::cmd("GET")
        .arg(keys::AUTH_SECRET)
        .query_async(&mut conn)
        .await
        .map_err(|e| anyhow::anyhow!("Redis: reading the auth secret: {e}"))?;
    Ok(secret.into_bytes())
}

/// The single process's secret, kept in `DATA_DIR` (mode 0600) so tokens
/// outlive a restart.
fn file_secret(dir: &Path) -> anyhow::Result<Vec<u8>> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(SECRET_FILE);
    std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("DATA_DIR {}: {e}", dir.display()))?;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
    {
        Ok(mut file) => {
            let secret = random_hex(32);
            file.write_all(secret.as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            Ok(secret.into_bytes())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let secret =
                std::fs::read(&path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            let secret = secret.trim_ascii().to_vec();
            if secret.len() < crate::config::MIN_AUTH_SECRET_BYTES {
                anyhow::bail!(
                    "{} holds fewer than {} bytes; delete it to make a new secret",
                    path.display(),
                    crate::config::MIN_AUTH_SECRET_BYTES
                );
            }
            Ok(secret)
        }
        Err(e) => Err(anyhow::anyhow!("{}: {e}", path.display())),
    }
}

/// The token of an `Authorization: Bearer <token>` header: `Ok(None)` when
/// there is no such header, an error when it is there but not a bearer.
pub fn bearer(headers: &axum::http::HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(value) = headers.get(axum::http::header::AUTHORIZATION) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| Some(t.trim()))
        .ok_or_else(|| {
            ApiError::Unauthorized("the Authorization header must be `Bearer <token>`".into())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(secret: &[u8]) -> Auth {
        Auth::local(AuthMode::Open, secret, Duration::from_secs(60))
    }

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[tokio::test]
    async fn an_issued_token_verifies_to_its_username() {
        let a = auth(SECRET);
        let (token, expires) = a
            .issue("alice", None, IpAddr::from([1, 2, 3, 4]))
            .await
            .unwrap();
        let s = a.verify(&token).unwrap();
        assert_eq!(s.username, "alice");
        assert_eq!(s.expires_at, expires);
    }

    #[test]
    fn forged_foreign_expired_and_malformed_tokens_are_refused() {
        let a = auth(SECRET);
        let token = a.token("alice", "abc", now_ms() + 60_000);
        // Another name with the same signature.
        let forged = token.replacen(&B64.encode("alice"), &B64.encode("mallory"), 1);
        assert_eq!(a.verify(&forged), Err(TokenError::BadSignature));
        let other = auth(b"another secret that is 32 bytes long!!");
        assert_eq!(other.verify(&token), Err(TokenError::BadSignature));
        let expired = a.token("alice", "abc", now_ms() - 1);
        assert_eq!(a.verify(&expired), Err(TokenError::Expired));
        for bad in [
            "",
            "v1",
            "v1.a.b.c",
            "v2.YQ.a.1.sig",
            "v1.YQ.a.1.!!",
            &"x".repeat(300),
        ] {
            assert_eq!(a.verify(bad), Err(TokenError::Malformed), "{bad}");
        }
    }

    #[tokio::test]
    async fn a_claimed_name_is_refused_unless_its_session_renews() {
        let a = auth(SECRET);
        let ip = IpAddr::from([1, 2, 3, 4]);
        let (first, _) = a.issue("bob", None, ip).await.unwrap();
        let taken = a.issue("bob", None, ip).await.unwrap_err();
        assert!(matches!(taken, ApiError::UsernameTaken { .. }), "{taken:?}");
        let (renewed, _) = a.issue("bob", Some(&first), ip).await.unwrap();
        assert_eq!(
            a.verify(&renewed).unwrap().session_id,
            a.verify(&first).unwrap().session_id
        );
        // A token an earlier gateway minted for itself is no claim on the
        // name.
        let internal = a.token("bob", INTERNAL_SESSION, now_ms() + 60_000);
        assert!(a.issue("bob", Some(&internal), ip).await.is_err());
    }

    #[tokio::test]
    async fn issuance_is_limited_per_ip() {
        let a = Auth::new(
            AuthMode::Open,
            SECRET,
            Duration::from_secs(60),
            Claims::Local(Mutex::default()),
            2,
            Vec::new(),
        );
        let ip = IpAddr::from([9, 9, 9, 9]);
        a.issue("u1", None, ip).await.unwrap();
        a.issue("u2", None, ip).await.unwrap();
        let e = a.issue("u3", None, ip).await.unwrap_err();
        assert!(matches!(e, ApiError::RateLimited { .. }), "{e:?}");
        assert!(e.retry_after_ms().unwrap() > 0);
        a.issue("u3", None, IpAddr::from([8, 8, 8, 8]))
            .await
            .unwrap();
        // Every address of one IPv6 /64 is one client.
        let v6 = |s: &str| s.parse::<IpAddr>().unwrap();
        a.issue("v1", None, v6("2001:db8::1")).await.unwrap();
        a.issue("v2", None, v6("2001:db8::2:3")).await.unwrap();
        let e = a.issue("v3", None, v6("2001:db8::ffff")).await.unwrap_err();
        assert!(matches!(e, ApiError::RateLimited { .. }), "{e:?}");
        a.issue("v3", None, v6("2001:db8:0:1::1")).await.unwrap();
    }
}
