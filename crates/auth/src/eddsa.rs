//! The one JWT algorithm Tongban uses, EdDSA over Ed25519, as a `jsonwebtoken` crypto provider.
//!
//! `jsonwebtoken`'s own `rust_crypto` provider brings every algorithm it knows (RSA, ECDSA, HMAC)
//! and their big-number and curve crates into the build. `ring` is already in every service's
//! tree (rustls, sqlx), so this provider signs and verifies Ed25519 with it and refuses every
//! other algorithm: an HS256 token (the classic public-key-as-HMAC-secret confusion) or any
//! other `alg` finds no verifier here, whatever the caller's `Validation` says.

use jsonwebtoken::{
    Algorithm, AlgorithmFamily, DecodingKey, EncodingKey,
    crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils},
    errors::{Error, ErrorKind},
    signature::{self, Signer, Verifier},
};
use ring::signature::{ED25519, Ed25519KeyPair, UnparsedPublicKey};

static PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory: signer,
    verifier_factory: verifier,
    key_utils: KeyUtils::new_unimplemented(),
};

/// Makes this the process's provider. Idempotent; called before any token is signed or checked.
pub(crate) fn install() {
    // Err means a provider is already installed: this one, by an earlier call.
    let _ = PROVIDER.install_default();
}

fn eddsa_only(algorithm: &Algorithm) -> Result<(), Error> {
    if *algorithm == Algorithm::EdDSA {
        Ok(())
    } else {
        Err(ErrorKind::InvalidAlgorithm.into())
    }
}

fn signer(algorithm: &Algorithm, key: &EncodingKey) -> Result<Box<dyn JwtSigner>, Error> {
    eddsa_only(algorithm)?;
    if key.family() != AlgorithmFamily::Ed {
        return Err(ErrorKind::InvalidKeyFormat.into());
    }
    let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(key.as_bytes())
        .map_err(|_| ErrorKind::InvalidEddsaKey)?;
    Ok(Box::new(EdSigner(pair)))
}

fn verifier(algorithm: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>, Error> {
    eddsa_only(algorithm)?;
    if key.family() != AlgorithmFamily::Ed {
        return Err(ErrorKind::InvalidKeyFormat.into());
    }
    let public = key.try_get_as_bytes()?;
    if public.len() != 32 {
        return Err(ErrorKind::InvalidEddsaKey.into());
    }
    Ok(Box::new(EdVerifier(public.to_vec())))
}

struct EdSigner(Ed25519KeyPair);

impl Signer<Vec<u8>> for EdSigner {
    fn try_sign(&self, msg: &[u8]) -> Result<Vec<u8>, signature::Error> {
        Ok(self.0.sign(msg).as_ref().to_vec())
    }
}

impl JwtSigner for EdSigner {
    fn algorithm(&self) -> Algorithm {
        Algorithm::EdDSA
    }
}

struct EdVerifier(Vec<u8>);

impl Verifier<Vec<u8>> for EdVerifier {
    fn verify(&self, msg: &[u8], sig: &Vec<u8>) -> Result<(), signature::Error> {
        UnparsedPublicKey::new(&ED25519, &self.0)
            .verify(msg, sig)
            .map_err(|_| signature::Error::new())
    }
}

impl JwtVerifier for EdVerifier {
    fn algorithm(&self) -> Algorithm {
        Algorithm::EdDSA
    }
}
