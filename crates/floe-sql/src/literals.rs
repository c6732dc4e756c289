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
    }
}

/// A JSON value parsed just enough to print it the way PostgreSQL's `jsonb` does.
enum Json {
    /// A scalar, as written (numbers keep their digits, strings their escapes).
    Scalar(String),
    Array(Vec<Json>),
    /// Members in input order; duplicates resolved when printing (the last one wins).
    Object(Vec<(String, String, Json)>),
}

struct JsonParser<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> JsonParser<'a> {
    fn ws(&mut self) {
        let rest = &self.text[self.pos..];
        self.pos += rest.len() - rest.trim_start_matches([' ', '\t', '\n', '\r']).len();
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn expect(&mut self, b: u8) -> Result<(), String> {
        self.ws();
        if self.peek() == Some(b) {
            self.pos += 1;
            Ok(())
        } else {
            Err(format!("expected '{}' at offset {}", b as char, self.pos))
        }
    }

    /// A string literal; returns (raw text with quotes, decoded key for ordering).
    fn string(&mut self) -> Result<(String, String), String> {
        let start = self.pos;
        self.expect(b'"')?;
        let raw_start = self.pos - 1;
        let mut decoded = String::new();
        let bytes = self.text.as_bytes();
        loop {
            match bytes.get(self.pos) {
                None => return Err("unterminated string".into()),
                Some(b'"') => {
                    self.pos += 1;
                    break;
                }
                Some(b'\\') => {
                    let esc = bytes.get(self.pos + 1).ok_or("bad escape")?;
                    match esc {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {
                            decoded.push(*esc as char);
                            self.pos += 2;
                        }
                        b'u' => {
                            let hex = self.text.get(self.pos + 2..self.pos + 6).ok_or("bad \\u")?;
                            u16::from_str_radix(hex, 16).map_err(|_| "bad \\u escape")?;
                            decoded.push_str(hex);
                            self.pos += 6;
                        }
                        _ => return Err("invalid escape".into()),
                    }
                }
                Some(c) if *c < 0x20 => return Err("control character in string".into()),
                Some(_) => {
                    let ch = self.text[self.pos..].chars().next().ok_or("bad utf-8")?;
                    decoded.push(ch);
                    self.pos += ch.len_utf8();
                }
            }
        }
        let _ = start;
        Ok((self.text[raw_start..self.pos].to_string(), decoded))
    }

    fn value(&mut self, depth: usize) -> Result<Json, String> {
        if depth > 512 {
            return Err("nesting too deep".into());
        }
        self.ws();
        match self.peek().ok_or("unexpected end of input")? {
            b'{' => {
                self.pos += 1;
                let mut members = Vec::new();
                self.ws();
                if self.peek() == Some(b'}') {
                    self.pos += 1;
                    return Ok(Json::Object(members));
                }
                loop {
                    self.ws();
                    let (raw, key) = self.string()?;
                    self.expect(b':')?;
                    let v = self.value(depth + 1)?;
                    members.push((raw, key, v));
                    self.ws();
                    match self.peek() {
                        Some(b',') => self.pos += 1,
                        Some(b'}') => {
                            self.pos += 1;
                            return Ok(Json::Object(members));
                        }
                        _ => return Err(format!("expected ',' or '}}' at offset {}", self.pos)),
                    }
                }
            }
            b'[' => {
                self.pos += 1;
                let mut items = Vec::new();
                self.ws();
                if self.peek() == Some(b']') {
                    self.pos += 1;
                    return Ok(Json::Array(items));
                }
                loop {
                    items.push(self.value(depth + 1)?);
                    self.ws();
                    match self.peek() {
                        Some(b',') => self.pos += 1,
                        Some(b']') => {
                            self.pos += 1;
                            return Ok(Json::Array(items));
                        }
                        _ => return Err(format!("expected ',' or ']' at offset {}", self.pos)),
                    }
                }
            }
            b'"' => Ok(Json::Scalar(self.string()?.0)),
            _ => {
                let rest = &self.text[self.pos..];
                for word in ["true", "false", "null"] {
                    if rest.starts_with(word) {
                        self.pos += word.len();
                        return Ok(Json::Scalar(word.into()));
                    }
                }
                let len = rest
                    .find(|c: char| !(c.is_ascii_digit() || "+-.eE".contains(c)))
                    .unwrap_or(rest.len());
                let number = &rest[..len];
                if number.is_empty() || number.parse::<f64>().is_err() || number.starts_with('+') {
                    return Err(format!("invalid token at offset {}", self.pos));
                }
                self.pos += len;
                Ok(Json::Scalar(number.to_string()))
            }
        }
    }
}

/// Parses JSON text; `Err` carries PostgreSQL's DETAIL-style reason.
fn parse_json(text: &str) -> Result<Json, String> {
    let mut parser = JsonParser { text, pos: 0 };
    let value = parser.value(0)?;
    parser.ws();
    if parser.pos != text.len() {
        return Err(format!("unexpected data at offset {}", parser.pos));
    }
    Ok(value)
}

/// Checks that `text` is valid JSON (the `json` type keeps the text as written).
pub fn validate_json(text: &str) -> Result<(), String> {
    parse_json(text).map(|_| ())
}

/// `jsonb`'s canonical text: keys ordered by length then bytes, duplicate keys collapsed (last
/// wins), `", "` and `": "` separators — what PostgreSQL prints for a `jsonb` value.
pub fn normalize_jsonb(text: &str) -> Result<String, String> {
    fn print(v: &Json, out: &mut String) {
        match v {
            Json::Scalar(s) => out.push_str(s),
            Json::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    print(item, out);
                }
                out.push(']');
            }
            Json::Object(members) => {
                let mut latest: Vec<&(String, String, Json)> = Vec::new();
                for m in members {
                    if let Some(slot) = latest.iter_mut().find(|x| x.1 == m.1) {
                        *slot = m;
                    } else {
                        latest.push(m);
                    }
                }
                latest.sort_by(|a, b| {
                    a.1.len()
                        .cmp(&b.1.len())
                        .then_with(|| a.1.as_bytes().cmp(b.1.as_bytes()))
                });
                out.push('{');
                for (i, (raw, _, value)) in latest.into_iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    out.push_str(raw);
                    out.push_str(": ");
                    print(value, out);
                }
                out.push('}');
            }
        }
    }
    let value = parse_json(text)?;
    let mut out = String::with_capacity(text.len());
    print(&value, &mut out);
    Ok(out)
}

#[cfg(test)]
mod json_tests {
    use super::*;

    #[test]
    fn jsonb_prints_like_postgres() {
        assert_eq!(
            normalize_jsonb(r#"{"bb":1,"a":[1,2.50,"x"],"bb":{"z":null,"y":true}}"#).unwrap(),
            r#"{"a": [1, 2.50, "x"], "bb": {"y": true, "z": null}}"#
        );
        assert_eq!(normalize_jsonb(" 3 ").unwrap(), "3");
        assert!(normalize_jsonb("{bad").is_err());
        assert!(normalize_jsonb("[1,]").is_err());
        assert!(validate_json(r#"{"a": "\u00e9"}"#).is_ok());
        assert!(validate_json("nul").is_err());
    }
}
