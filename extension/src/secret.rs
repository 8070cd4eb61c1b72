//! The type that holds a secret value in memory.
//!
//! A [`SecretBody`] is the serialized success body served to clients (it embeds the secret). It is cheap to clone
//! (reference counted), its `Debug` redacts the content, and the bytes are zeroized when the last clone is dropped
//! (an evicted cache entry whose body is no longer being written to a socket).

use std::fmt;

use bytes::Bytes;
use zeroize::Zeroize;

/// Serialized response bytes that contain a secret.
#[derive(Clone)]
pub struct SecretBody(Bytes);

/// Owner of the heap buffer behind a [`SecretBody`]; wipes it on drop.
struct Wiped(Vec<u8>);

impl AsRef<[u8]> for Wiped {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Wiped {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl SecretBody {
    /// Takes ownership of `bytes`; they are zeroized once no clone refers to them any more.
    ///
    /// A buffer with spare capacity (a serializer's estimate) is copied into one of the exact size and wiped, so a
    /// cached value holds no slack: the cache keeps these for hours, and `shrink_to_fit` would free the old buffer
    /// without wiping it.
    pub fn new(mut bytes: Vec<u8>) -> Self {
        if bytes.capacity() > bytes.len() {
            let exact = bytes.as_slice().to_vec();
            bytes.zeroize();
            bytes = exact;
        }
        Self(Bytes::from_owner(Wiped(bytes)))
    }

    /// The bytes, for writing to a response without a copy.
    pub fn bytes(&self) -> Bytes {
        self.0.clone()
    }

    /// The bytes, borrowed.
    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }

    /// A part of these bytes, sharing their allocation (and its wiping).
    pub fn slice(&self, range: std::ops::Range<usize>) -> Self {
        Self(self.0.slice(range))
    }

    /// A part of these bytes, for writing to a response without a copy.
    pub fn bytes_of(&self, range: std::ops::Range<usize>) -> Bytes {
        self.0.slice(range)
    }

    /// Size in bytes (for the cache's byte budget).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the body is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SecretBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBody({} bytes, redacted)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts() {
        let b = SecretBody::new(b"{\"SecretString\":\"hunter2\"}".to_vec());
        let d = format!("{b:?}");
        assert!(!d.contains("hunter2"), "{d}");
        assert_eq!(b.len(), 26);
        assert_eq!(&b.bytes()[..], b"{\"SecretString\":\"hunter2\"}");
    }

    #[test]
    fn a_buffer_with_slack_is_kept_at_its_exact_size() {
        let mut v = Vec::with_capacity(4096);
        v.extend_from_slice(b"{\"SecretString\":\"hunter2\"}");
        let b = SecretBody::new(v);
        assert_eq!(&b.bytes()[..], b"{\"SecretString\":\"hunter2\"}");
        assert_eq!(b.len(), 26);
    }
}
