//! The Confluent wire format: magic byte 0, the schema id big-endian, then the Avro datum.

/// Prefixes `datum` with the header for `schema_id`.
pub fn frame(schema_id: u32, datum: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + datum.len());
    out.push(0);
    out.extend_from_slice(&schema_id.to_be_bytes());
    out.extend_from_slice(datum);
    out
}

/// Splits a framed value into its schema id and datum.
pub fn unframe(bytes: &[u8]) -> Result<(u32, &[u8]), String> {
    match bytes {
        [0, a, b, c, d, datum @ ..] => Ok((u32::from_be_bytes([*a, *b, *c, *d]), datum)),
        [] => Err("empty value (a tombstone?)".into()),
        [magic, ..] if *magic != 0 => Err(format!(
            "not Confluent-framed Avro (first byte {magic:#04x}, expected 0x00)"
        )),
        _ => Err(format!(
            "value of {} bytes is shorter than the 5-byte header",
            bytes.len()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_bad_headers_are_named() {
        let framed = frame(258, b"xy");
        assert_eq!(framed, [0, 0, 0, 1, 2, b'x', b'y']);
        assert_eq!(unframe(&framed), Ok((258, &b"xy"[..])));
        assert!(unframe(&[1, 0, 0, 0, 0]).unwrap_err().contains("0x01"));
        assert!(unframe(&[0, 1]).unwrap_err().contains("shorter"));
        assert!(unframe(&[]).unwrap_err().contains("empty"));
    }
}
