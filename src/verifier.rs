//! The stateless half of a decision: decode, signature, expiry and gate
//! (steps 1 to 4 of SPEC.md). It reads no records and no tasks, so it can run
//! anywhere the secret is, in front of any [`crate::state`] backend.

use crate::error::CapTokenError;
use crate::gate::Gate;
use crate::role::Verb;
use crate::signer::Signer;
use crate::token::{CapToken, Fingerprint};

/// A token whose bearer decoded and whose signature matched.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The decoded token (it carries its nonce: keep it inside the process).
    pub token: CapToken,
    /// The token's public identity.
    pub fingerprint: Fingerprint,
}

/// Steps 1 to 4 of a decision, with the store's signer and gate.
#[derive(Debug, Clone)]
pub struct Verifier {
    signer: Signer,
    gate: Gate,
}

impl Verifier {
    /// A verifier with this signer and gate.
    pub fn new(signer: Signer, gate: Gate) -> Self {
        Verifier { signer, gate }
    }

    /// The signer, for minting.
    pub fn signer(&self) -> &Signer {
        &self.signer
    }

    /// The gate table.
    pub fn gate(&self) -> &Gate {
        &self.gate
    }

    /// Steps 1 and 2: decode the bearer and check its signature. Expiry is not
    /// looked at (remint needs exactly this).
    pub fn authenticate_ignoring_expiry(&self, bearer: &str) -> Result<Verified, CapTokenError> {
        let token = CapToken::from_bearer(bearer)?;
        self.signer.verify(&token)?;
        let fingerprint = token.fingerprint();
        Ok(Verified { token, fingerprint })
    }

    /// Steps 1 to 3: decode, signature, expiry (Operator tokens are exempt).
    pub fn authenticate(&self, bearer: &str, now: u64) -> Result<Verified, CapTokenError> {
        let verified = self.authenticate_ignoring_expiry(bearer)?;
        if verified.token.is_expired(now) {
            return Err(CapTokenError::TokenExpired {
                fingerprint: verified.fingerprint,
            });
        }
        Ok(verified)
    }

    /// Steps 1 to 4: [`authenticate`](Self::authenticate), then the gate.
    pub fn authorize(&self, bearer: &str, verb: Verb, now: u64) -> Result<Verified, CapTokenError> {
        let verified = self.authenticate(bearer, now)?;
        let role = verified.token.role;
        if !self.gate.allows(role, verb) {
            return Err(CapTokenError::RoleViolation { role, verb });
        }
        Ok(verified)
    }
}
