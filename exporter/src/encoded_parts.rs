//! An encoded export request held as the requests it was joined from.
//!
//! Why: an OTLP export request is one repeated field, so the encodings of
//! several requests, one after the other, are the encoding of the joined
//! request. The exporter's batcher joins the receivers' requests (16 of 512
//! records by default); copying them into one buffer took 12% of an
//! enriching, forwarding collector's CPU, much of it in page faults on the
//! fresh multi-megabyte buffer (`perf record` under `benches/cpu.sh
//! FORWARD=none`). Kept as parts, the bytes are copied once, where the gRPC
//! exporter writes them into its send buffer.

use bytes::Bytes;

/// The parts of an encoded request, in order; their concatenation is the
/// request. Each part is a whole encoded request of the same kind, as a
/// receiver accepted it or the processor rewrote it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EncodedParts {
    parts: Vec<Bytes>,
}

impl EncodedParts {
    /// The parts, in order.
    pub fn parts(&self) -> &[Bytes] {
        &self.parts
    }

    /// The parts, in order, for rewriting each in place.
    pub fn parts_mut(&mut self) -> &mut [Bytes] {
        &mut self.parts
    }

    /// Size of the joined encoding in bytes.
    pub fn len(&self) -> usize {
        self.parts.iter().map(Bytes::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.parts.iter().all(Bytes::is_empty)
    }

    /// Appends the parts of `more` after these.
    pub fn append(&mut self, more: EncodedParts) {
        self.parts.extend(more.parts);
    }

    /// The joined encoding in one buffer, for consumers that copy the
    /// request anyway (the HTTP exporter's body, the persistent queue).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut joined = Vec::with_capacity(self.len());
        for part in &self.parts {
            joined.extend_from_slice(part);
        }
        joined
    }
}

impl From<Bytes> for EncodedParts {
    fn from(bytes: Bytes) -> Self {
        EncodedParts { parts: vec![bytes] }
    }
}

impl From<Vec<u8>> for EncodedParts {
    fn from(bytes: Vec<u8>) -> Self {
        Bytes::from(bytes).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_join_in_order() {
        let mut request = EncodedParts::from(b"ab".to_vec());
        request.append(EncodedParts::from(Bytes::from_static(b"")));
        request.append(EncodedParts::from(b"cde".to_vec()));
        assert_eq!(request.parts().len(), 3);
        assert_eq!(request.len(), 5);
        assert!(!request.is_empty());
        assert_eq!(request.to_vec(), b"abcde");
        assert!(EncodedParts::default().is_empty());
        assert!(EncodedParts::default().to_vec().is_empty());
    }
}
