//! Unit tests of the streaming pass's string scan, numbers and list indices.

use super::*;

#[test]
fn the_plain_text_scan_stops_at_every_special_byte_in_every_lane() {
    for len in 0..24 {
        for filler in [b'a', b' ', 0x21, 0x7f, 0x80, 0xff] {
            let plain = vec![filler; len];
            assert_eq!(skip_plain(&plain, 0), len);
            for at in 0..len {
                for special in [b'"', b'\\', 0x00, 0x01, 0x1f, b'\n'] {
                    let mut bytes = plain.clone();
                    bytes[at] = special;
                    // A second special byte later must not hide the first.
                    if at + 1 < len {
                        bytes[at + 1] = 0x00;
                    }
                    assert_eq!(
                        skip_plain(&bytes, 0),
                        at,
                        "{filler:#x} {special:#x} at {at}"
                    );
                    assert_eq!(skip_plain(&bytes, at), at);
                }
            }
        }
    }
}

#[test]
fn numbers_are_serde_json_numbers() {
    for raw in [
        "0",
        "-1",
        "123456789012345678",
        "1234567890123456789",
        "1245.5",
        "-0.1",
        "0.3",
        "987.25",
        "123456789.012345",
        "-0.0",
        "9.007199254740993",
        "1e2",
        "1.5E-3",
        "-0",
        "12345678901234567890",
        "0.000000000000001",
    ] {
        let expected: Number = serde_json::from_str(raw).unwrap();
        let tree = FieldTree::default();
        let mut pass = Pass {
            text: raw,
            bytes: raw.as_bytes(),
            pos: 0,
            max_depth: 8,
            out: Vec::new(),
            log: Log::default(),
            context: &Context::none(),
        };
        let _ = tree;
        let Ok(Scalar::Num(_, n)) = pass.number() else {
            panic!("{raw} is a number");
        };
        assert_eq!(pass.pos, raw.len());
        let got = Scalar::Num(raw, n).to_value();
        assert_eq!(got, Value::Number(expected), "{raw}");
    }
}
