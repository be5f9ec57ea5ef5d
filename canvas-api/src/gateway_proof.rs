//! Proof that a placement comes from a gateway, and for which client.
//!
//! A gateway placing for its WebSocket client passes that client's IP (for
//! the per-IP pool) and answers that client itself. canvas-api must believe
//! neither from anyone else: a bare header is forgeable by whoever reaches
//! its `PUT /api/pixel`. So the gateway signs the placement — user, client
//! IP, pixel, color and a deadline a few seconds ahead — with a key derived
//! from `AUTH_SECRET` (never the session-token key itself, so neither can
//! pass for the other), and sends the signature as
//! [`protocol::http::HEADER_GATEWAY_PROOF`]. A captured proof replayed by
//! someone else buys nothing beyond that one request: the same user placing
//! the same color on the same pixel, counted against the same IP, within
//! its few seconds.

use std::net::IpAddr;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// How long a proof is good for: a gateway sends it at once, and its call
/// to canvas-api gives up after 3 s; the rest is clock skew between pods.
pub const PROOF_TTL: Duration = Duration::from_secs(10);
/// The version prefix of a proof.
const VERSION: &str = "g1";
/// Mixed into the secret, so the proof key differs from the token key.
const KEY_LABEL: &[u8] = b"canvas gateway placement proof v1";
/// Longer than any proof made here; a longer header is not even parsed.
const MAX_PROOF_LEN: usize = 128;

/// One placement, as the gateway saw it and as canvas-api reads it from
/// the request body.
#[derive(Debug, Clone, Copy)]
pub struct PlacementClaim<'a> {
    pub username: &'a str,
    /// The client's IP (`None`: the gateway did not know it).
    pub ip: Option<IpAddr>,
    pub x: i64,
    pub y: i64,
    pub color: &'a str,
}

/// Why a proof was refused (401 to the caller).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("malformed gateway proof")]
    Malformed,
    #[error(
        "gateway proof does not match this placement (forged, replayed for another, or another secret)"
    )]
    BadSignature,
    #[error("gateway proof expired")]
    Expired,
}

/// The key gateways sign placements with; every pod derives the same one
/// from the shared secret.
#[derive(Clone)]
pub struct GatewayKey(HmacSha256);

impl GatewayKey {
    pub fn from_secret(secret: &[u8]) -> GatewayKey {
        let mut derive = HmacSha256::new_from_slice(secret).expect("HMAC takes any key length");
        derive.update(KEY_LABEL);
        let key = derive.finalize().into_bytes();
        GatewayKey(HmacSha256::new_from_slice(&key).expect("HMAC takes any key length"))
    }

    /// A proof for `claim`, good until `now_ms + PROOF_TTL`.
    pub fn mint(&self, claim: &PlacementClaim<'_>, now_ms: u64) -> String {
        let expires = now_ms + PROOF_TTL.as_millis() as u64;
        let sig = self.mac(claim, expires).finalize().into_bytes();
        format!("{VERSION}.{expires}.{}", B64.encode(sig))
    }

    /// Checks that `proof` was made for exactly `claim` and is still good.
    pub fn verify(
        &self,
        proof: &str,
        claim: &PlacementClaim<'_>,
        now_ms: u64,
    ) -> Result<(), ProofError> {
        if proof.len() > MAX_PROOF_LEN {
            return Err(ProofError::Malformed);
        }
        let mut parts = proof.split('.');
        let (Some(VERSION), Some(expires), Some(sig), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(ProofError::Malformed);
        };
        let expires: u64 = expires.parse().map_err(|_| ProofError::Malformed)?;
        let sig = B64.decode(sig).map_err(|_| ProofError::Malformed)?;
        self.mac(claim, expires)
            .verify_slice(&sig)
            .map_err(|_| ProofError::BadSignature)?;
        if expires <= now_ms {
            return Err(ProofError::Expired);
        }
        Ok(())
    }

    /// The MAC over every field, each length-prefixed so no two claims
    /// share an encoding.
    fn mac(&self, claim: &PlacementClaim<'_>, expires: u64) -> HmacSha256 {
        let ip = claim.ip.map(|ip| ip.to_canonical().to_string());
        let fields = [
            VERSION,
            &expires.to_string(),
            claim.username,
            ip.as_deref().unwrap_or("-"),
            &claim.x.to_string(),
            &claim.y.to_string(),
            claim.color,
        ];
        let mut mac = self.0.clone();
        for field in fields {
            mac.update(&(field.len() as u32).to_le_bytes());
            mac.update(field.as_bytes());
        }
        mac
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    const NOW: u64 = 1_000_000;

    fn claim() -> PlacementClaim<'static> {
        PlacementClaim {
            username: "alice",
            ip: Some(IpAddr::from([203, 0, 113, 7])),
            x: 10,
            y: 20,
            color: "#FF4500",
        }
    }

    #[test]
    fn a_proof_holds_only_for_its_own_placement() {
        let key = GatewayKey::from_secret(SECRET);
        let proof = key.mint(&claim(), NOW);
        assert_eq!(key.verify(&proof, &claim(), NOW + 1), Ok(()));
        let others = [
            PlacementClaim {
                username: "mallory",
                ..claim()
            },
            PlacementClaim {
                ip: Some(IpAddr::from([203, 0, 113, 8])),
                ..claim()
            },
            PlacementClaim {
                ip: None,
                ..claim()
            },
            PlacementClaim { x: 11, ..claim() },
            PlacementClaim { y: 21, ..claim() },
            PlacementClaim {
                color: "#000000",
                ..claim()
            },
        ];
        for other in others {
            assert_eq!(
                key.verify(&proof, &other, NOW + 1),
                Err(ProofError::BadSignature),
                "{other:?}"
            );
        }
    }

    #[test]
    fn expired_foreign_and_malformed_proofs_are_refused() {
        let key = GatewayKey::from_secret(SECRET);
        let proof = key.mint(&claim(), NOW);
        let ttl = PROOF_TTL.as_millis() as u64;
        assert_eq!(
            key.verify(&proof, &claim(), NOW + ttl),
            Err(ProofError::Expired)
        );
        // A later deadline written in is a forgery.
        let stretched = proof.replacen(&(NOW + ttl).to_string(), &(NOW + 10 * ttl).to_string(), 1);
        assert_eq!(
            key.verify(&stretched, &claim(), NOW),
            Err(ProofError::BadSignature)
        );
        let other = GatewayKey::from_secret(b"another secret, also 32 bytes long");
        assert_eq!(
            other.verify(&proof, &claim(), NOW),
            Err(ProofError::BadSignature)
        );
        for bad in ["", "1", "g1.x.abc", "g2.1.abc", "g1.1.!!", &"g".repeat(200)] {
            assert_eq!(
                key.verify(bad, &claim(), NOW),
                Err(ProofError::Malformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_session_token_signature_is_no_proof() {
        // Tokens are signed with the secret itself, proofs with a key
        // derived from it: a MAC under one never verifies under the other.
        let key = GatewayKey::from_secret(SECRET);
        let mut token_mac = HmacSha256::new_from_slice(SECRET).unwrap();
        token_mac.update(b"anything");
        let sig = B64.encode(token_mac.finalize().into_bytes());
        let proof = format!("g1.{}.{sig}", NOW + 1000);
        assert_eq!(
            key.verify(&proof, &claim(), NOW),
            Err(ProofError::BadSignature)
        );
    }
}
