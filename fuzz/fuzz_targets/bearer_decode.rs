//! `CapToken::from_bearer` on arbitrary text.
//!
//! * decoding never panics; when it succeeds, the text was the token's one
//!   canonical bearer: re-encoding the token gives back exactly the input
//!   (docs/protocol.md, "Bearer");
//! * a store (both signing formats) deciding on the text never panics, `check`
//!   and `verify` agree, a refused `verify` changes nothing, and nothing is
//!   ever allowed that does not decode and carry a good signature;
//! * error messages never quote the nonce of the decoded token.
#![no_main]

use captoken::{
    CapToken, FixedClock, MintOptions, Role, SigningFormat, StoreConfig, TokenStore, Verb,
};
use libfuzzer_sys::fuzz_target;
use std::sync::Arc;

/// The secret the seed corpus bearers are signed with (see fuzz/README.md).
const SECRET: [u8; 32] = [7u8; 32];
/// The seed corpus' clock: the protocol's example time.
const T0: u64 = 1_764_150_000;

fn store(format: SigningFormat) -> TokenStore {
    let config = StoreConfig {
        format,
        ..StoreConfig::default()
    };
    let clock = Arc::new(FixedClock::new(T0));
    TokenStore::new(&SECRET, config, Box::new(clock)).expect("a valid store")
}

/// Snapshot text without its seal (bytes 48..112): each seal has a fresh
/// nonce, so equal states give equal text only without it.
fn state_of(store: &mut TokenStore) -> String {
    let mut text = store.snapshot().expect("a snapshot");
    text.replace_range(48..112, &"0".repeat(64));
    text
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let text: &str = &text;

    let decoded = CapToken::from_bearer(text);
    if let Ok(token) = &decoded {
        let bearer = token.to_bearer();
        assert_eq!(
            bearer, text,
            "a bearer that decodes is its token's only spelling"
        );
        let again = CapToken::from_bearer(&bearer).expect("a re-encoded token decodes");
        assert_eq!(&again, token, "re-encoding does not round-trip");
        assert_eq!(again.to_bearer(), bearer, "encoding is not stable");
        let _ = token.fingerprint();
    }

    for format in [SigningFormat::V2, SigningFormat::MluaSwarm] {
        let mut store = store(format);
        // Something recorded, so a lookup can hit.
        let _ = store.attach_operator("op-1", MintOptions::default());
        if let Ok(fingerprint) = store.adopt(text, Some("t1")) {
            // Adopting a token already recorded changes nothing.
            let before = state_of(&mut store);
            assert_eq!(store.adopt(text, None).ok(), Some(fingerprint));
            assert_eq!(
                state_of(&mut store),
                before,
                "a second adopt changed the state"
            );
        }
        let signed_ok = decoded
            .as_ref()
            .is_ok_and(|token| store.verifier().signer().verify(token).is_ok());
        let verbs: &[Verb] = if decoded.is_ok() {
            &Verb::ALL
        } else {
            &[Verb::FetchPrompt, Verb::StartTask]
        };
        for &verb in verbs {
            for task in [None, Some("t1")] {
                let before = state_of(&mut store);
                let checked = store.check(text, verb, task);
                assert_eq!(state_of(&mut store), before, "check changed the state");
                let verified = store.verify(text, verb, task);
                match (&checked, &verified) {
                    (Ok(_), Ok(_)) => {}
                    (Err(a), Err(b)) => assert_eq!(a.code(), b.code(), "check and verify disagree"),
                    _ => panic!("check {checked:?} but verify {verified:?}"),
                }
                match &verified {
                    Ok(_) => assert!(signed_ok, "allowed a token without a good signature"),
                    Err(error) => {
                        assert_eq!(
                            state_of(&mut store),
                            before,
                            "a refused verify changed the state"
                        );
                        if let Ok(token) = &decoded {
                            let message = format!("{error} {error:?}");
                            assert!(
                                !message.contains(&token.nonce) || token.nonce.is_empty(),
                                "an error quotes the nonce"
                            );
                        }
                    }
                }
            }
        }
        let _ = store.start_task(text, None);
        let _ = store.start_task(text, Some("t2"));
        let _ = store.dispatch_attempt(text, "t1", MintOptions::default());
        let _ = store.remint(text);
        let _ = store.mint("x", Role::Worker, MintOptions::default());
        let snapshot = store.snapshot().expect("a snapshot");
        if let Ok(token) = &decoded {
            assert!(
                !snapshot.contains(&token.nonce),
                "the snapshot holds a nonce"
            );
        }
    }
});
