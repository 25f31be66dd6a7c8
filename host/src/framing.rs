//! The Confluent wire format: magic byte 0, the schema id as 4 big-endian bytes, then the Avro
//! datum. Every Confluent serializer writes it and every deserializer expects it.

/// Bytes before the datum.
pub const HEADER_LEN: usize = 5;
const MAGIC: u8 = 0;

/// Why a payload is not Confluent-framed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    /// Null or shorter than the header.
    #[error("value is {0} bytes, shorter than the 5-byte Confluent header")]
    TooShort(usize),
    /// First byte is not 0.
    #[error("value starts with byte {0:#04x}, not the Confluent magic byte 0")]
    BadMagic(u8),
}

/// Splits a framed payload into schema id and datum.
pub fn strip(payload: &[u8]) -> Result<(u32, &[u8]), FramingError> {
    if payload.len() < HEADER_LEN {
        return Err(FramingError::TooShort(payload.len()));
    }
    if payload[0] != MAGIC {
        return Err(FramingError::BadMagic(payload[0]));
    }
    let id = u32::from_be_bytes([payload[1], payload[2], payload[3], payload[4]]);
    Ok((id, &payload[HEADER_LEN..]))
}

/// Writes the framed payload for `datum` into `out` (cleared first).
pub fn frame_into(schema_id: u32, datum: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.reserve(HEADER_LEN + datum.len());
    out.push(MAGIC);
    out.extend_from_slice(&schema_id.to_be_bytes());
    out.extend_from_slice(datum);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_and_strip_round_trip() {
        let mut buf = Vec::new();
        frame_into(0x01020304, b"datum", &mut buf);
        assert_eq!(&buf[..5], &[0, 1, 2, 3, 4]);
        assert_eq!(strip(&buf), Ok((0x01020304, &b"datum"[..])));
    }

    #[test]
    fn unframed_payloads_are_refused() {
        assert_eq!(strip(b"abc"), Err(FramingError::TooShort(3)));
        assert_eq!(strip(b"{\"a\":1}"), Err(FramingError::BadMagic(b'{')));
    }
}
