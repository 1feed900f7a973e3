//! sha256 helpers: validation of `sha256:<hex>` strings and hashing readers.

use sha2::{Digest as _, Sha256};
use std::io::{self, Read};

pub(crate) const SHA256_PREFIX: &str = "sha256:";

/// True for exactly 64 lowercase hex digits.
pub(crate) fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && is_lower_hex(s)
}

pub(crate) fn is_lower_hex(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The hex part of a `sha256:<64 hex>` digest, or `None` if it is not one.
pub(crate) fn sha256_hex(digest: &str) -> Option<&str> {
    digest.strip_prefix(SHA256_PREFIX).filter(|hex| is_sha256_hex(hex))
}

/// `sha256:<hex>`.
pub(crate) fn sha256_ref(hex: &str) -> String {
    format!("{SHA256_PREFIX}{hex}")
}

pub(crate) fn sha256_of(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A reader that hashes (sha256) and counts everything read through it.
pub(crate) struct HashReader<R> {
    inner: R,
    hasher: Sha256,
    len: u64,
}

impl<R> HashReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        HashReader {
            inner,
            hasher: Sha256::new(),
            len: 0,
        }
    }

    /// Bytes read so far.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// The hex sha256 of everything read so far, and the inner reader.
    pub(crate) fn finish(self) -> (String, R) {
        (hex::encode(self.hasher.finalize()), self.inner)
    }
}

impl<R: Read> Read for HashReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_sha256_strings() {
        let hex = sha256_of(b"");
        assert_eq!(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_eq!(sha256_hex(&format!("sha256:{hex}")), Some(hex.as_str()));
        assert_eq!(sha256_hex(&hex), None);
        assert_eq!(sha256_hex(&format!("sha256:{}", hex.to_uppercase())), None);
        assert_eq!(sha256_hex("sha256:abc"), None);
        assert!(!is_sha256_hex(&hex[..63]));
    }

    #[test]
    fn hash_reader_hashes_and_counts() {
        let mut r = HashReader::new(&b"hello world"[..]);
        io::copy(&mut r, &mut io::sink()).unwrap();
        assert_eq!(r.len(), 11);
        let (hex, _) = r.finish();
        assert_eq!(hex, sha256_of(b"hello world"));
    }
}
