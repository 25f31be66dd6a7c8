//! The Confluent wire format: magic byte 0, the schema id as 4 big-endian bytes, then the Avro
//! datum. Every Confluent serializer writes it and every deserializer expects it.

/// Bytes before the datum.
pub const HEADER_LEN: usize = 5;
const MAGIC: u8 = 0;

/// Why a payload is not Confluent-framed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    /// No bytes at all: a tombstone, or a null value.
    #[error("value is empty (a tombstone?), not Confluent-framed Avro")]
    Empty,
    /// Shorter than the header.
    #[error("value is {0} bytes, shorter than the 5-byte Confluent header")]
    TooShort(usize),
    /// First byte is not 0.
    #[error("value starts with byte {0:#04x}, not the Confluent magic byte 0")]
    BadMagic(u8),
}

/// Splits a framed payload into schema id and datum.
pub fn strip(payload: &[u8]) -> Result<(u32, &[u8]), FramingError> {
    match payload {
        [] => Err(FramingError::Empty),
        [MAGIC, a, b, c, d, datum @ ..] => Ok((u32::from_be_bytes([*a, *b, *c, *d]), datum)),
        [MAGIC, ..] => Err(FramingError::TooShort(payload.len())),
        [magic, ..] => Err(FramingError::BadMagic(*magic)),
    }
}

/// Writes the framed payload for `datum` into `out` (cleared first), reusing its allocation.
pub fn frame_into(schema_id: u32, datum: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.reserve(HEADER_LEN + datum.len());
    out.push(MAGIC);
    out.extend_from_slice(&schema_id.to_be_bytes());
    out.extend_from_slice(datum);
}

/// The framed payload for `datum`, in a new buffer.
pub fn frame(schema_id: u32, datum: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    frame_into(schema_id, datum, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_and_strip_round_trip() {
        let framed = frame(0x01020304, b"datum");
        assert_eq!(&framed[..5], &[0, 1, 2, 3, 4]);
        assert_eq!(strip(&framed), Ok((0x01020304, &b"datum"[..])));
        let mut reused = vec![9; 64];
        frame_into(258, b"xy", &mut reused);
        assert_eq!(reused, [0, 0, 0, 1, 2, b'x', b'y']);
    }

    #[test]
    fn a_header_alone_frames_an_empty_datum() {
        assert_eq!(strip(&[0, 0, 0, 0, 7]), Ok((7, &b""[..])));
    }

    #[test]
    fn unframed_payloads_are_refused_with_what_is_wrong() {
        assert_eq!(strip(b""), Err(FramingError::Empty));
        assert_eq!(strip(&[0, 1]), Err(FramingError::TooShort(2)));
        assert_eq!(strip(b"{\"a\":1}"), Err(FramingError::BadMagic(b'{')));
        assert!(FramingError::BadMagic(1).to_string().contains("0x01"));
    }
}
