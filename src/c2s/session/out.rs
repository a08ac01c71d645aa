//! Bytes for a session's client: built for it alone, or shared without a copy (a delivery
//! is serialised once, in the sender's task, for every recipient; stream management keeps
//! it until acknowledged, the writer writes it, both from the same allocation).

use std::sync::Arc;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Out {
    Owned(Vec<u8>),
    Shared(Arc<[u8]>),
}

impl Out {
    /// The bytes as a vector of their own (copied when shared).
    pub fn into_vec(self) -> Vec<u8> {
        match self {
            Out::Owned(bytes) => bytes,
            Out::Shared(bytes) => bytes.to_vec(),
        }
    }
}

impl std::ops::Deref for Out {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Out::Owned(bytes) => bytes,
            Out::Shared(bytes) => bytes,
        }
    }
}

impl AsRef<[u8]> for Out {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl From<Vec<u8>> for Out {
    fn from(bytes: Vec<u8>) -> Out {
        Out::Owned(bytes)
    }
}

impl From<Arc<[u8]>> for Out {
    fn from(bytes: Arc<[u8]>) -> Out {
        Out::Shared(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_and_owned_bytes_read_alike() {
        let shared = Out::from(Arc::<[u8]>::from(&b"<message/>"[..]));
        let owned = Out::from(b"<message/>".to_vec());
        assert_eq!(&*shared, &*owned);
        assert!(shared.starts_with(b"<message"));
        assert_eq!(shared.into_vec(), owned.into_vec());
    }
}
