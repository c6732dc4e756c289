//! PostgreSQL's text input forms that Arrow's casts don't read: bytea (`\\x…` hex and escape
//! format) and one-dimensional array literals (`{a,"b c",NULL}`). Used for literals in SQL text
//! and for text-format parameters.

/// bytea input: hex (`\x0a0b`) or escape format (`a\\b\001`).
pub fn parse_bytea(text: &str) -> Option<Vec<u8>> {
    if let Some(hex) = text
        .strip_prefix("\\x")
        .or_else(|| text.strip_prefix("\\X"))
    {
        let digits: Vec<u8> = hex.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        if !digits.len().is_multiple_of(2) {
            return None;
        }
        return digits
            .chunks(2)
            .map(|pair| {
                let hi = (pair[0] as char).to_digit(16)?;
                let lo = (pair[1] as char).to_digit(16)?;
                Some((hi * 16 + lo) as u8)
            })
            .collect();
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            out.push(bytes[i]);
            i += 1;
        } else if bytes.get(i + 1) == Some(&b'\\') {
            out.push(b'\\');
            i += 2;
        } else if i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let v = (bytes[i + 1] - b'0') as u32 * 64
                + (bytes[i + 2] - b'0') as u32 * 8
                + (bytes[i + 3] - b'0') as u32;
            out.push(u8::try_from(v).ok()?);
            i += 4;
        } else {
            return None;
        }
    }
    Some(out)
}

/// The error of bytea input `text` that [`parse_bytea`] refused, as PostgreSQL's `byteain`
/// reports it: a bad hex digit or an odd number of them is 22023, anything else 22P02.
pub fn bytea_input_error(text: &str) -> crate::error::SqlError {
    use crate::error::{sqlstate, SqlError};
    if let Some(hex) = text
        .strip_prefix("\\x")
        .or_else(|| text.strip_prefix("\\X"))
    {
        let digits: Vec<char> = hex.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        if let Some(bad) = digits.iter().find(|c| !c.is_ascii_hexdigit()) {
            return SqlError::new(
                sqlstate::INVALID_PARAMETER_VALUE,
                format!("invalid hexadecimal digit: \"{bad}\""),
            );
        }
        if digits.len() % 2 == 1 {
            return SqlError::new(
                sqlstate::INVALID_PARAMETER_VALUE,
                "invalid hexadecimal data: odd number of digits",
            );
        }
    }
    SqlError::new(
        sqlstate::INVALID_TEXT_REPRESENTATION,
        "invalid input syntax for type bytea",
    )
}

/// A one-dimensional array literal `{a,"b c",NULL}` into its elements.
pub fn parse_array(text: &str) -> Option<Vec<Option<String>>> {
    let inner = text.trim().strip_prefix('{')?.strip_suffix('}')?;
    let mut out = Vec::new();
    if inner.trim().is_empty() {
        return Some(out);
    }
    let mut chars = inner.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek() == Some(&'"') {
            chars.next();
            let mut value = String::new();
            loop {
                match chars.next()? {
                    '\\' => value.push(chars.next()?),
                    '"' => break,
                    c => value.push(c),
                }
            }
            out.push(Some(value));
        } else {
            let mut value = String::new();
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                if c == '{' || c == '"' {
                    return None; // nested arrays and stray quotes are not 1-D literals
                }
                if c == '\\' {
                    chars.next();
                    value.push(chars.next()?);
                    continue;
                }
                value.push(c);
                chars.next();
            }
            let value = value.trim().to_string();
            if value.is_empty() {
                return None;
            }
            out.push(if value.eq_ignore_ascii_case("NULL") {
                None
            } else {
                Some(value)
            });
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        match chars.next() {
            None => return Some(out),
            Some(',') => continue,
            Some(_) => return None,
        }
    }
}

/// A `uuid` in PostgreSQL's input forms (upper or lower case, optional braces, a hyphen after
/// any group of four digits), written canonically (`a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11`);
/// `None` for anything else.
pub fn canonical_uuid(text: &str) -> Option<String> {
    let inner = match text.strip_prefix('{') {
        Some(rest) => rest.strip_suffix('}')?,
        None => text,
    };
    let mut digits = String::with_capacity(32);
    let mut after_hyphen = false;
    for c in inner.chars() {
        if c == '-' {
            // Only between groups of four digits, never twice in a row.
            if after_hyphen || digits.is_empty() || !digits.len().is_multiple_of(4) {
                return None;
            }
            after_hyphen = true;
            continue;
        }
        if !c.is_ascii_hexdigit() || digits.len() == 32 {
            return None;
        }
        digits.push(c.to_ascii_lowercase());
        after_hyphen = false;
    }
    if digits.len() != 32 || after_hyphen {
        return None;
    }
    Some(format!(
        "{}-{}-{}-{}-{}",
        &digits[..8],
        &digits[8..12],
        &digits[12..16],
        &digits[16..20],
        &digits[20..]
    ))
}

/// A `json` (`binary` false) or `jsonb` input text's value: the text itself once checked, or
/// `jsonb`'s canonical text (22P02 for text that is not JSON; see `functions::jsonb`).
pub fn read_json(text: &str, binary: bool) -> crate::SqlResult<String> {
    crate::functions::jsonb::read_literal(text, binary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_in_postgres_input_forms() {
        let canonical = Some("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11".to_string());
        for text in [
            "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
            "{a0eebc99-9c0b4ef8-bb6d6bb9-bd380a11}",
            "a0eebc999c0b4ef8bb6d6bb9bd380a11",
            "a0ee-bc99-9c0b-4ef8-bb6d-6bb9-bd38-0a11",
        ] {
            assert_eq!(canonical_uuid(text), canonical, "{text}");
        }
        for text in [
            "",
            "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            "a0eebc99--9c0b4ef8bb6d6bb9bd380a11",
            "-a0eebc999c0b4ef8bb6d6bb9bd380a11",
            "a0eebc999c0b4ef8bb6d6bb9bd380a1",
            "a0eeb-c999c0b4ef8bb6d6bb9bd380a11",
            "ä0eebc999c0b4ef8bb6d6bb9bd380a11",
        ] {
            assert_eq!(canonical_uuid(text), None, "{text}");
        }
    }

    #[test]
    fn arrays_and_bytea() {
        assert_eq!(
            parse_array(r#"{1, "a b", NULL, "x\"y"}"#).unwrap(),
            vec![
                Some("1".into()),
                Some("a b".into()),
                None,
                Some("x\"y".into())
            ]
        );
        assert_eq!(parse_array("{}").unwrap(), vec![]);
        assert!(parse_array("{{1},{2}}").is_none());
        assert!(parse_array("1,2").is_none());
        assert_eq!(parse_bytea("\\x0aff").unwrap(), vec![10, 255]);
        assert_eq!(parse_bytea("a\\\\b\\001").unwrap(), b"a\\b\x01".to_vec());
        assert!(parse_bytea("\\x0").is_none());
        assert_eq!(
            bytea_input_error("\\x0").code,
            crate::error::sqlstate::INVALID_PARAMETER_VALUE
        );
        assert_eq!(
            bytea_input_error("\\x4g").message,
            "invalid hexadecimal digit: \"g\""
        );
        assert_eq!(
            bytea_input_error("a\\9").code,
            crate::error::sqlstate::INVALID_TEXT_REPRESENTATION
        );
    }
}
