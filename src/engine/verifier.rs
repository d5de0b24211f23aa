//! The stateless half of a decision: decode, signature, expiry and gate
//! (steps 1 to 4 of docs/protocol.md). It reads no records and no tasks, so it can run
//! anywhere the secret is, in front of any [`crate::state`] backend.

use crate::error::CapTokenError;
use crate::gate::Gate;
use crate::role::{Role, Verb};
use crate::signer::Signer;
use crate::token::{CapToken, Fingerprint, TokenFields, TokenRef};

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

    /// Step 1: decode the bearer into `buf`, borrowing the token's strings
    /// from it. In the `mlua-swarm` format a token whose text could be
    /// re-read with its fields shifted (a `|` in agent_id or a scope, a `,`
    /// in a scope) is malformed: see [`crate::SigningFormat::is_unambiguous`].
    pub fn decode<'b>(
        &self,
        bearer: &str,
        buf: &'b mut Vec<u8>,
    ) -> Result<TokenRef<'b>, CapTokenError> {
        let token = TokenRef::decode(bearer, buf)?;
        let format = self.signer.format();
        // A v2 token shown to an mlua-swarm store is simply of the other
        // format: step 2 refuses it as a bad signature.
        if token.v().is_none() && !format.is_unambiguous(token.agent_id(), token.scopes()) {
            return Err(CapTokenError::MalformedToken {
                reason: "agent_id or a scope holds a separator of the mlua-swarm signing text",
            });
        }
        Ok(token)
    }

    /// Step 2: the signature, in the store's format, compared in constant time.
    pub fn check_signature(&self, token: &impl TokenFields) -> Result<(), CapTokenError> {
        self.signer.verify(token)
    }

    /// Step 3: expiry at `now`; Operator tokens are exempt.
    pub fn check_expiry(
        &self,
        token: &impl TokenFields,
        fingerprint: Fingerprint,
        now: u64,
    ) -> Result<(), CapTokenError> {
        if token.is_expired(now) {
            return Err(CapTokenError::TokenExpired { fingerprint });
        }
        Ok(())
    }

    /// Step 4: whether the gate lets `role` call `verb`.
    pub fn check_gate(&self, role: Role, verb: Verb) -> Result<(), CapTokenError> {
        if self.gate.allows(role, verb) {
            Ok(())
        } else {
            Err(CapTokenError::RoleViolation { role, verb })
        }
    }

    /// Steps 1 and 2, into an owned token. Expiry is not looked at (remint
    /// needs exactly this).
    pub fn authenticate_ignoring_expiry(&self, bearer: &str) -> Result<Verified, CapTokenError> {
        let mut buf = Vec::new();
        let token = self.decode(bearer, &mut buf)?;
        self.check_signature(&token)?;
        Ok(Verified {
            fingerprint: token.fingerprint(),
            token: token.to_owned_token(),
        })
    }

    /// Steps 1 to 3: decode, signature, expiry.
    pub fn authenticate(&self, bearer: &str, now: u64) -> Result<Verified, CapTokenError> {
        let verified = self.authenticate_ignoring_expiry(bearer)?;
        self.check_expiry(&verified.token, verified.fingerprint, now)?;
        Ok(verified)
    }

    /// Steps 1 to 4: [`authenticate`](Self::authenticate), then the gate.
    pub fn authorize(&self, bearer: &str, verb: Verb, now: u64) -> Result<Verified, CapTokenError> {
        let verified = self.authenticate(bearer, now)?;
        self.check_gate(verified.token.role, verb)?;
        Ok(verified)
    }
}
