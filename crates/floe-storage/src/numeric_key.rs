//! Key identity of `numeric` values.
//!
//! A wide numeric is an Arrow `LargeBinary` holding an order-preserving encoding written by
//! `floe-sql` (`numeric/value.rs`; nothing else in Floe uses `LargeBinary`): a tag byte, for
//! finite non-zero values a biased exponent and the significant digits two per byte ending in a
//! 0 byte (all complemented for negatives), then the *display scale* as two big-endian bytes.
//! `1.5` and `1.50` are equal values that differ only in those last two bytes.
//!
//! Invariant: primary and index keys hold the *canonical* form of each numeric column, whose
//! display scale is the smallest that writes the value exactly, so equal values have one key
//! (a unique key refuses `1.50` next to `1.5`, and a lookup of `1.50` finds `1.5`) while the
//! row itself keeps the scale it was written with.

use std::borrow::Cow;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, LargeBinaryBuilder};
use datafusion::arrow::datatypes::DataType;

const SCALE_BYTES: usize = 2;
const TAG_NEG: u8 = 0x02;
const TAG_ZERO: u8 = 0x03;
const TAG_POS: u8 = 0x04;

/// The parts of a finite numeric key: value = ±0.DIGITS × 10^exponent, shown with `scale`
/// fraction digits. `None` for NaN, ±Infinity and malformed keys.
struct Finite {
    negative: bool,
    digits: Vec<u8>,
    exponent: i64,
    scale: u32,
}

fn parse(key: &[u8]) -> Option<Finite> {
    if key.len() < 1 + SCALE_BYTES {
        return None;
    }
    let (body, scale_bytes) = key.split_at(key.len() - SCALE_BYTES);
    let scale = u16::from_be_bytes([scale_bytes[0], scale_bytes[1]]) as u32;
    let negative = match body[0] {
        TAG_ZERO if body.len() == 1 => {
            return Some(Finite {
                negative: false,
                digits: Vec::new(),
                exponent: 0,
                scale,
            })
        }
        TAG_POS => false,
        TAG_NEG => true,
        _ => return None,
    };
    let body = &body[1..];
    let byte = |b: u8| if negative { !b } else { b };
    if body.len() < 5 || byte(body[body.len() - 1]) != 0 {
        return None;
    }
    let exponent =
        (u32::from_be_bytes([byte(body[0]), byte(body[1]), byte(body[2]), byte(body[3])])
            ^ 0x8000_0000) as i32 as i64;
    let mut digits = Vec::with_capacity((body.len() - 5) * 2);
    for &b in &body[4..body.len() - 1] {
        let pair = byte(b).checked_sub(1).filter(|p| *p <= 99)?;
        digits.push(b'0' + pair / 10);
        digits.push(b'0' + pair % 10);
    }
    while digits.last() == Some(&b'0') {
        digits.pop();
    }
    Some(Finite {
        negative,
        digits,
        exponent,
        scale,
    })
}

/// The key of the same value with the smallest display scale that writes it exactly
/// (borrowed when `key` already has it, and for NaN and the infinities).
pub fn canonical(key: &[u8]) -> Cow<'_, [u8]> {
    let Some(finite) = parse(key) else {
        return Cow::Borrowed(key);
    };
    let minimal = (finite.digits.len() as i64 - finite.exponent).max(0);
    let minimal = u16::try_from(minimal).unwrap_or(u16::MAX) as u32;
    if finite.digits.is_empty() && finite.scale == 0 || minimal == finite.scale {
        return Cow::Borrowed(key);
    }
    let scale = if finite.digits.is_empty() { 0 } else { minimal };
    let mut out = key[..key.len() - SCALE_BYTES].to_vec();
    out.extend((scale as u16).to_be_bytes());
    Cow::Owned(out)
}

/// The value of a numeric key as PostgreSQL prints it (`-1.50`, `NaN`, `Infinity`).
pub fn to_text(key: &[u8]) -> String {
    let Some(Finite {
        negative,
        digits,
        exponent,
        scale,
    }) = parse(key)
    else {
        return match key.first() {
            Some(0x01) => "-Infinity".into(),
            Some(0x05) => "Infinity".into(),
            Some(0x06) => "NaN".into(),
            _ => String::from_utf8_lossy(key).into_owned(),
        };
    };
    let digit = |i: i64| -> char {
        if i >= 0 && (i as usize) < digits.len() {
            digits[i as usize] as char
        } else {
            '0'
        }
    };
    let mut text = String::new();
    if negative {
        text.push('-');
    }
    if exponent > 0 {
        (0..exponent).for_each(|i| text.push(digit(i)));
    } else {
        text.push('0');
    }
    if scale > 0 {
        text.push('.');
        (0..scale as i64).for_each(|i| text.push(digit(exponent + i)));
    }
    text
}

/// `column` with numeric keys in canonical form (unchanged when it is not a wide numeric).
pub fn canonical_column(column: &ArrayRef) -> ArrayRef {
    if column.data_type() != &DataType::LargeBinary {
        return column.clone();
    }
    let keys = column.as_binary::<i64>();
    if keys
        .iter()
        .flatten()
        .all(|k| matches!(canonical(k), Cow::Borrowed(_)))
    {
        return column.clone();
    }
    let mut builder = LargeBinaryBuilder::with_capacity(keys.len(), keys.values().len());
    for key in keys.iter() {
        match key {
            Some(k) => builder.append_value(canonical(k)),
            None => builder.append_null(),
        }
    }
    Arc::new(builder.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys as `floe-sql` writes them: `±digits × 10^-scale`.
    fn key(negative: bool, digits: &str, scale: u16) -> Vec<u8> {
        let digits = digits.trim_start_matches('0');
        let mut out = Vec::new();
        if digits.is_empty() {
            out.push(TAG_ZERO);
            out.extend(scale.to_be_bytes());
            return out;
        }
        out.push(if negative { TAG_NEG } else { TAG_POS });
        let start = out.len();
        let exponent = digits.len() as i64 - scale as i64;
        out.extend(((exponent as i32 as u32) ^ 0x8000_0000).to_be_bytes());
        for pair in digits.trim_end_matches('0').as_bytes().chunks(2) {
            out.push((pair[0] - b'0') * 10 + pair.get(1).map_or(0, |d| d - b'0') + 1);
        }
        out.push(0);
        if negative {
            out[start..].iter_mut().for_each(|b| *b = !*b);
        }
        out.extend(scale.to_be_bytes());
        out
    }

    #[test]
    fn equal_values_share_one_canonical_key() {
        let cases = [
            (key(false, "150", 2), key(false, "15", 1), "1.50", "1.5"),
            (key(true, "1500", 3), key(true, "15", 1), "-1.500", "-1.5"),
            (key(false, "1200", 2), key(false, "12", 0), "12.00", "12"),
            (key(false, "1200", 0), key(false, "1200", 0), "1200", "1200"),
            (key(false, "500", 5), key(false, "5", 3), "0.00500", "0.005"),
            (key(false, "0", 3), key(false, "0", 0), "0.000", "0"),
            (key(true, "10", 0), key(true, "10", 0), "-10", "-10"),
        ];
        for (written, minimal, written_text, minimal_text) in cases {
            assert_eq!(canonical(&written).as_ref(), minimal.as_slice());
            assert_eq!(to_text(&written), written_text);
            assert_eq!(to_text(&canonical(&written)), minimal_text);
        }
        assert_eq!(to_text(&[0x06, 0, 0]), "NaN");
        assert_eq!(canonical(&[0x05, 0, 0]).as_ref(), &[0x05, 0, 0]);
    }
}
