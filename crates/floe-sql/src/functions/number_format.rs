//! `to_char` of numbers with PostgreSQL's template patterns (`formatting.c`'s `NUM_processor`):
//! `9` (digit, blank when leading), `0` (digit, zero when leading), `.`/`D` (decimal point),
//! `,`/`G` (group separator), `FM` (no padding, no trailing zeros after the point), the sign
//! patterns `S`, `MI`, `PL`, `SG`, `PR`, and literal text (double-quoted or any other
//! character). A value with more integer digits than the template has positions prints `#`
//! in every digit position. Locale patterns use the C locale (`.` and `,`).

/// One element of a number template.
#[derive(Debug, Clone, PartialEq)]
enum Token {
    Nine,
    Zero,
    Point,
    Group,
    /// `S`: `+` or `-`, next to the number.
    Sign,
    /// `MI`: `-` for negatives, else a blank.
    Minus,
    /// `PL`: `+` for positives, else a blank.
    Plus,
    /// `SG`: `+` or `-` in place.
    PlusMinus,
    /// `PR`: negatives in angle brackets.
    Brackets,
    Literal(String),
}

/// A parsed template.
#[derive(Debug)]
pub(crate) struct Template {
    tokens: Vec<Token>,
    fill_mode: bool,
}

impl Template {
    /// Parses `text` (case-insensitive pattern names, as PostgreSQL); `Err` names a pattern
    /// Floe does not format yet (`EEEE`, `V`, `RN`, `TH`, `L`), which would otherwise print as
    /// text.
    pub(crate) fn parse(text: &str) -> Result<Template, String> {
        let chars: Vec<char> = text.chars().collect();
        let mut tokens = Vec::new();
        let mut fill_mode = false;
        let mut i = 0;
        let starts = |i: usize, word: &str| {
            word.chars()
                .enumerate()
                .all(|(k, w)| chars.get(i + k).is_some_and(|c| c.eq_ignore_ascii_case(&w)))
        };
        while i < chars.len() {
            let c = chars[i];
            if starts(i, "FM") {
                fill_mode = true;
                i += 2;
                continue;
            }
            for unsupported in ["EEEE", "RN", "TH", "V", "L"] {
                if starts(i, unsupported) {
                    return Err(unsupported.to_string());
                }
            }
            let (token, width) = if starts(i, "MI") {
                (Token::Minus, 2)
            } else if starts(i, "PL") {
                (Token::Plus, 2)
            } else if starts(i, "SG") {
                (Token::PlusMinus, 2)
            } else if starts(i, "PR") {
                (Token::Brackets, 2)
            } else {
                match c {
                    '9' => (Token::Nine, 1),
                    '0' => (Token::Zero, 1),
                    '.' => (Token::Point, 1),
                    'D' | 'd' => (Token::Point, 1),
                    ',' => (Token::Group, 1),
                    'G' | 'g' => (Token::Group, 1),
                    'S' | 's' => (Token::Sign, 1),
                    '"' => {
                        let end = chars[i + 1..]
                            .iter()
                            .position(|&c| c == '"')
                            .map_or(chars.len(), |p| i + 1 + p);
                        let literal: String = chars[i + 1..end].iter().collect();
                        tokens.push(Token::Literal(literal));
                        i = end + 1;
                        continue;
                    }
                    other => (Token::Literal(other.to_string()), 1),
                }
            };
            // Only the first decimal point is one; later ones are text.
            let token = match token {
                Token::Point if tokens.contains(&Token::Point) => Token::Literal(c.to_string()),
                other => other,
            };
            tokens.push(token);
            i += width;
        }
        Ok(Template { tokens, fill_mode })
    }

    /// Digits the template shows after the decimal point (the value is rounded to them).
    pub(crate) fn fraction_digits(&self) -> usize {
        match self.tokens.iter().position(|t| *t == Token::Point) {
            Some(point) => self.tokens[point..]
                .iter()
                .filter(|t| matches!(t, Token::Nine | Token::Zero))
                .count(),
            None => 0,
        }
    }

    /// Formats a value given as its sign and decimal digits, already rounded to
    /// [`Template::fraction_digits`] (`fraction` has exactly that many digits; `integer` has
    /// no leading zeros, empty for zero).
    pub(crate) fn format(&self, negative: bool, integer: &str, fraction: &str) -> String {
        let point = self.tokens.iter().position(|t| *t == Token::Point);
        let integer_end = point.unwrap_or(self.tokens.len());
        let positions: Vec<usize> = (0..integer_end)
            .filter(|&i| matches!(self.tokens[i], Token::Nine | Token::Zero))
            .collect();
        // Zero prints as `0` in the last position when there is no fraction to show, or in
        // fill mode.
        let zero = integer.is_empty() && fraction.chars().all(|c| c == '0');
        let zero_decimals = point.is_some_and(|p| self.tokens[p..].contains(&Token::Zero));
        let fill_zero = self.fill_mode && zero && !zero_decimals;
        let integer = if integer.is_empty() && (self.fraction_digits() == 0 || fill_zero) {
            "0"
        } else {
            integer
        };
        // Without an integer position, PostgreSQL shows no value at all.
        let overflow = integer.len() > positions.len() || positions.is_empty();
        // `PL` adds a plus and leaves the minus where it would be; `PR` puts its `<` there.
        let has_sign_token = self
            .tokens
            .iter()
            .any(|t| matches!(t, Token::Sign | Token::Minus | Token::PlusMinus));
        let brackets = self.tokens.contains(&Token::Brackets);
        // Where the digits start: the first position holding a digit or a leading `0`.
        let first_digit = positions.len().saturating_sub(integer.len());
        let first_zero = positions
            .iter()
            .position(|&i| self.tokens[i] == Token::Zero)
            .unwrap_or(usize::MAX);
        let start = first_digit.min(first_zero);
        let start_token = positions.get(start).copied().unwrap_or(integer_end);
        let sign_char = if negative { '-' } else { '+' };
        let mut out = String::new();
        let mut digits = integer.chars();
        let mut position = 0;
        let mut fraction_digits = fraction.chars();
        // Where the trailing zeros of a fill-mode fraction start (in `out`).
        let mut fraction_keep = None;
        let mut implicit_sign_written = false;
        let mut push_implicit_sign = |out: &mut String| {
            if !has_sign_token && !implicit_sign_written {
                implicit_sign_written = true;
                if negative {
                    out.push(if brackets { '<' } else { '-' });
                } else if !self.fill_mode {
                    out.push(' ');
                }
            }
        };
        // `S` before the digits sits right before the first one.
        let leading_sign = self.tokens[..start_token.min(self.tokens.len())].contains(&Token::Sign)
            && !positions.is_empty();
        // Without integer positions, a leading `S` goes to the end.
        let trailing_sign =
            positions.is_empty() && self.tokens[..integer_end].contains(&Token::Sign);
        for (i, token) in self.tokens.iter().enumerate() {
            if i == start_token {
                if leading_sign {
                    out.push(sign_char);
                } else {
                    push_implicit_sign(&mut out);
                }
            }
            match token {
                Token::Nine | Token::Zero if i < integer_end => {
                    if position < start {
                        if !self.fill_mode {
                            out.push(' ');
                        }
                    } else if overflow {
                        out.push('#');
                    } else if position < first_digit {
                        out.push('0');
                    } else {
                        out.push(digits.next().unwrap_or('0'));
                    }
                    position += 1;
                }
                Token::Nine | Token::Zero => {
                    let digit = if overflow {
                        '#'
                    } else {
                        fraction_digits.next().unwrap_or('0')
                    };
                    out.push(digit);
                    if *token == Token::Zero || digit != '0' {
                        fraction_keep = Some(out.len());
                    }
                }
                Token::Point => {
                    out.push('.');
                    fraction_keep = Some(out.len());
                }
                Token::Group => {
                    if i < start_token {
                        if !self.fill_mode {
                            out.push(' ');
                        }
                    } else {
                        out.push(',');
                    }
                }
                Token::Sign if i < start_token || trailing_sign => {}
                Token::Sign => out.push(sign_char),
                Token::Minus => out.push(if negative { '-' } else { ' ' }),
                Token::Plus => out.push(if negative { ' ' } else { '+' }),
                Token::PlusMinus => out.push(sign_char),
                Token::Brackets if negative => out.push('>'),
                Token::Brackets if !self.fill_mode => out.push(' '),
                Token::Brackets => {}
                Token::Literal(text) => out.push_str(text),
            }
        }
        if start_token >= self.tokens.len() {
            if leading_sign {
                out.push(sign_char);
            } else {
                push_implicit_sign(&mut out);
            }
        }
        if trailing_sign {
            out.push(sign_char);
        }
        if self.fill_mode {
            if let Some(keep) = fraction_keep {
                // Trailing zeros of `9` positions go; literal text after them stays.
                let tail_start = out[keep..]
                    .char_indices()
                    .find(|(_, c)| *c != '0')
                    .map_or(out.len(), |(k, _)| keep + k);
                let tail = out[tail_start..].to_string();
                out.truncate(keep);
                out.push_str(&tail);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(value: &str, template: &str) -> String {
        let t = Template::parse(template).unwrap();
        let negative = value.starts_with('-');
        let value = value.trim_start_matches('-');
        let (int, frac) = value.split_once('.').unwrap_or((value, ""));
        let int = int.trim_start_matches('0');
        let mut frac = frac.to_string();
        frac.truncate(t.fraction_digits());
        while frac.len() < t.fraction_digits() {
            frac.push('0');
        }
        t.format(negative, int, &frac)
    }

    #[test]
    fn postgres_examples() {
        assert_eq!(fmt("12", "999"), "  12");
        assert_eq!(fmt("-12", "999"), " -12");
        assert_eq!(fmt("1234.50", "9999.99"), " 1234.50");
        assert_eq!(fmt("1234.50", "FM9,999.00"), "1,234.50");
        assert_eq!(fmt("12345", "999"), " ###");
        assert_eq!(fmt("0.50", "9.99"), "  .50");
        assert_eq!(fmt("0.50", "0.99"), " 0.50");
        assert_eq!(fmt("0", "999"), "   0");
        assert_eq!(fmt("5", "0999"), " 0005");
        assert_eq!(fmt("1.5", "FM9.99"), "1.5");
        assert_eq!(fmt("-12", "S999"), " -12");
        assert_eq!(fmt("12", "999S"), " 12+");
        assert_eq!(fmt("-12", "MI999"), "- 12");
        assert_eq!(fmt("-12", "999PR"), " <12>");
        assert_eq!(fmt("12", "PL999"), "+  12");
        assert_eq!(fmt("0", "FM9.99"), "0.");
    }
}
