//! COPY's text and CSV formats: options, a streaming parser for `COPY … FROM STDIN`, and the
//! row writer for `COPY … TO STDOUT`.
//!
//! Values travel as text (NULL as `None`); converting them to column types is the SQL layer's
//! job, exactly as for string literals, so COPY accepts what INSERT accepts.

use datafusion::sql::sqlparser::ast::{self, CopyLegacyCsvOption, CopyLegacyOption, CopyOption};

use crate::error::{sqlstate, SqlError, SqlResult};

/// Which format COPY uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyFormat {
    /// PostgreSQL's text format: tab-separated, `\N` for NULL, backslash escapes.
    Text,
    /// Comma-separated values with quoting.
    Csv,
}

/// COPY's options, with PostgreSQL's defaults per format.
#[derive(Debug, Clone)]
pub struct CopyOptions {
    /// Text or CSV.
    pub format: CopyFormat,
    /// Field separator.
    pub delimiter: u8,
    /// The string that stands for NULL.
    pub null: String,
    /// CSV: the first line holds column names.
    pub header: bool,
    /// CSV quote character.
    pub quote: u8,
    /// CSV escape character (inside quotes).
    pub escape: u8,
}

impl Default for CopyOptions {
    fn default() -> Self {
        CopyOptions {
            format: CopyFormat::Text,
            delimiter: b'\t',
            null: "\\N".into(),
            header: false,
            quote: b'"',
            escape: b'"',
        }
    }
}

fn single_byte(option: &str, value: &str) -> SqlResult<u8> {
    match value.as_bytes() {
        [b] if b.is_ascii() => Ok(*b),
        _ => Err(SqlError::new(
            sqlstate::FEATURE_NOT_SUPPORTED,
            format!("COPY {option} must be a single one-byte character"),
        )),
    }
}

impl CopyOptions {
    /// The options of a COPY statement (new `WITH (…)` and legacy syntax).
    pub fn from_ast(options: &[CopyOption], legacy: &[CopyLegacyOption]) -> SqlResult<CopyOptions> {
        let mut out = CopyOptions::default();
        let mut delimiter = None;
        let mut null = None;
        let mut quote = None;
        let mut escape = None;
        for option in options {
            match option {
                CopyOption::Format(name) => {
                    out.format = match name.value.to_lowercase().as_str() {
                        "text" => CopyFormat::Text,
                        "csv" => CopyFormat::Csv,
                        "binary" => {
                            return Err(SqlError::not_supported(
                                "COPY in binary format is not supported yet",
                            ))
                        }
                        other => {
                            return Err(SqlError::new(
                                sqlstate::INVALID_PARAMETER_VALUE,
                                format!("COPY format \"{other}\" not recognized"),
                            ))
                        }
                    }
                }
                CopyOption::Delimiter(c) => {
                    delimiter = Some(single_byte("delimiter", &c.to_string())?)
                }
                CopyOption::Null(s) => null = Some(s.clone()),
                CopyOption::Header(h) => out.header = *h,
                CopyOption::Quote(c) => quote = Some(single_byte("quote", &c.to_string())?),
                CopyOption::Escape(c) => escape = Some(single_byte("escape", &c.to_string())?),
                CopyOption::Freeze(_) | CopyOption::Encoding(_) => {}
                other => {
                    return Err(SqlError::not_supported(format!(
                        "COPY option {other} is not supported yet"
                    )))
                }
            }
        }
        for option in legacy {
            match option {
                CopyLegacyOption::Csv(csv) => {
                    out.format = CopyFormat::Csv;
                    for c in csv {
                        match c {
                            CopyLegacyCsvOption::Header => out.header = true,
                            CopyLegacyCsvOption::Quote(q) => {
                                quote = Some(single_byte("quote", &q.to_string())?)
                            }
                            CopyLegacyCsvOption::Escape(e) => {
                                escape = Some(single_byte("escape", &e.to_string())?)
                            }
                            _ => {}
                        }
                    }
                }
                CopyLegacyOption::Delimiter(c) => {
                    delimiter = Some(single_byte("delimiter", &c.to_string())?)
                }
                CopyLegacyOption::Null(s) => null = Some(s.clone()),
                CopyLegacyOption::Binary => {
                    return Err(SqlError::not_supported(
                        "COPY in binary format is not supported yet",
                    ))
                }
                _ => {}
            }
        }
        if out.format == CopyFormat::Csv {
            out.delimiter = b',';
            out.null = String::new();
        }
        if let Some(d) = delimiter {
            out.delimiter = d;
        }
        if let Some(n) = null {
            out.null = n;
        }
        if let Some(q) = quote {
            out.quote = q;
        }
        out.escape = escape.unwrap_or(out.quote);
        if out.format == CopyFormat::Text && out.header {
            return Err(SqlError::not_supported(
                "COPY HEADER available only in CSV mode",
            ));
        }
        Ok(out)
    }
}

/// One row of values as text (`None`: NULL).
pub type TextRow = Vec<Option<String>>;

/// Parses COPY data as it arrives in chunks of any size.
#[derive(Debug)]
pub struct CopyParser {
    options: CopyOptions,
    pending: Vec<u8>,
    skip_header: bool,
    ended: bool,
    line: usize,
}

fn bad_copy(line: usize, message: impl Into<String>) -> SqlError {
    SqlError::new(sqlstate::BAD_COPY_FILE_FORMAT, message.into())
        .with_detail(format!("COPY, line {line}"))
}

impl CopyParser {
    /// A parser for data in `options`' format.
    pub fn new(options: CopyOptions) -> CopyParser {
        CopyParser {
            skip_header: options.header,
            options,
            pending: Vec::new(),
            ended: false,
            line: 0,
        }
    }

    /// Adds a chunk; complete rows are appended to `rows`.
    pub fn feed(&mut self, data: &[u8], rows: &mut Vec<TextRow>) -> SqlResult<()> {
        self.pending.extend_from_slice(data);
        self.parse_complete(rows, false)
    }

    /// The data ended: the last row needs no line end.
    pub fn finish(&mut self, rows: &mut Vec<TextRow>) -> SqlResult<()> {
        self.parse_complete(rows, true)
    }

    fn parse_complete(&mut self, rows: &mut Vec<TextRow>, at_end: bool) -> SqlResult<()> {
        let mut start = 0;
        loop {
            if self.ended || start >= self.pending.len() {
                break;
            }
            let parsed = match self.options.format {
                CopyFormat::Text => self.text_record(start, at_end)?,
                CopyFormat::Csv => self.csv_record(start, at_end)?,
            };
            let Some((row, next)) = parsed else {
                break;
            };
            start = next;
            self.line += 1;
            let Some(row) = row else { continue };
            if self.skip_header {
                self.skip_header = false;
                continue;
            }
            rows.push(row);
        }
        self.pending.drain(..start);
        if at_end && !self.pending.is_empty() && !self.ended {
            return Err(bad_copy(self.line + 1, "unterminated CSV quoted field"));
        }
        Ok(())
    }

    /// The line starting at `start` if complete: (row or `None` for the end marker, next start).
    fn line_end(&self, start: usize, at_end: bool) -> Option<(usize, usize)> {
        match self.pending[start..].iter().position(|&b| b == b'\n') {
            Some(n) => {
                let mut end = start + n;
                if end > start && self.pending[end - 1] == b'\r' {
                    end -= 1;
                }
                Some((end, start + n + 1))
            }
            None if at_end => Some((self.pending.len(), self.pending.len())),
            None => None,
        }
    }

    fn text_record(
        &mut self,
        start: usize,
        at_end: bool,
    ) -> SqlResult<Option<(Option<TextRow>, usize)>> {
        let Some((end, next)) = self.line_end(start, at_end) else {
            return Ok(None);
        };
        let line = &self.pending[start..end];
        if line == b"\\." {
            self.ended = true;
            return Ok(Some((None, next)));
        }
        let line_no = self.line + 1;
        let mut row = Vec::new();
        for raw in line.split(|&b| b == self.options.delimiter) {
            if raw == self.options.null.as_bytes() {
                row.push(None);
                continue;
            }
            row.push(Some(unescape_text(raw).map_err(|m| bad_copy(line_no, m))?));
        }
        Ok(Some((Some(row), next)))
    }

    fn csv_record(
        &mut self,
        start: usize,
        at_end: bool,
    ) -> SqlResult<Option<(Option<TextRow>, usize)>> {
        let data = &self.pending;
        let opts = &self.options;
        // The end-of-data marker, alone on a line.
        if let Some((end, next)) = self.line_end(start, at_end) {
            if &data[start..end] == b"\\." {
                self.ended = true;
                return Ok(Some((None, next)));
            }
        }
        let mut row = Vec::new();
        let mut field = Vec::new();
        let mut quoted = false;
        let mut was_quoted = false;
        let mut i = start;
        loop {
            if i >= data.len() {
                if !at_end || quoted {
                    return Ok(None);
                }
                finish_csv_field(&mut row, &mut field, was_quoted, opts)?;
                return Ok(Some((Some(row), i)));
            }
            let b = data[i];
            if quoted {
                if b == opts.escape
                    && opts.escape != opts.quote
                    && data.get(i + 1) == Some(&opts.quote)
                {
                    field.push(opts.quote);
                    i += 2;
                    continue;
                }
                if b == opts.quote {
                    if data.get(i + 1) == Some(&opts.quote) {
                        field.push(opts.quote);
                        i += 2;
                        continue;
                    }
                    if i + 1 >= data.len() && !at_end {
                        return Ok(None);
                    }
                    quoted = false;
                    i += 1;
                    continue;
                }
                field.push(b);
                i += 1;
                continue;
            }
            if b == opts.quote {
                quoted = true;
                was_quoted = true;
                i += 1;
            } else if b == opts.delimiter {
                finish_csv_field(&mut row, &mut field, was_quoted, opts)?;
                was_quoted = false;
                i += 1;
            } else if b == b'\n' || b == b'\r' {
                finish_csv_field(&mut row, &mut field, was_quoted, opts)?;
                let mut next = i + 1;
                if b == b'\r' && data.get(next) == Some(&b'\n') {
                    next += 1;
                }
                return Ok(Some((Some(row), next)));
            } else {
                field.push(b);
                i += 1;
            }
        }
    }
}

fn finish_csv_field(
    row: &mut TextRow,
    field: &mut Vec<u8>,
    was_quoted: bool,
    options: &CopyOptions,
) -> SqlResult<()> {
    let bytes = std::mem::take(field);
    if !was_quoted && bytes == options.null.as_bytes() {
        row.push(None);
        return Ok(());
    }
    let text = String::from_utf8(bytes).map_err(|_| {
        SqlError::new(
            sqlstate::CHARACTER_NOT_IN_REPERTOIRE,
            "invalid byte sequence for encoding \"UTF8\"",
        )
    })?;
    row.push(Some(text));
    Ok(())
}

/// Decodes the text format's backslash escapes.
fn unescape_text(raw: &[u8]) -> Result<String, String> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        if b != b'\\' || i + 1 >= raw.len() {
            out.push(b);
            i += 1;
            continue;
        }
        let e = raw[i + 1];
        i += 2;
        match e {
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(11),
            b'0'..=b'7' => {
                let mut value = (e - b'0') as u32;
                let mut digits = 1;
                while digits < 3 && i < raw.len() && (b'0'..=b'7').contains(&raw[i]) {
                    value = value * 8 + (raw[i] - b'0') as u32;
                    i += 1;
                    digits += 1;
                }
                out.push((value & 0xff) as u8);
            }
            b'x' if i < raw.len() && raw[i].is_ascii_hexdigit() => {
                let mut value = 0u32;
                let mut digits = 0;
                while digits < 2 && i < raw.len() && raw[i].is_ascii_hexdigit() {
                    value = value * 16 + (raw[i] as char).to_digit(16).unwrap_or(0);
                    i += 1;
                    digits += 1;
                }
                out.push(value as u8);
            }
            other => out.push(other),
        }
    }
    String::from_utf8(out).map_err(|_| "invalid byte sequence for encoding \"UTF8\"".to_string())
}

/// Appends one row in COPY's output format (values already in PostgreSQL's text form).
pub fn write_row(values: &[Option<&str>], options: &CopyOptions, out: &mut Vec<u8>) {
    for (i, value) in values.iter().enumerate() {
        if i > 0 {
            out.push(options.delimiter);
        }
        match value {
            None => out.extend_from_slice(options.null.as_bytes()),
            Some(text) => match options.format {
                CopyFormat::Text => {
                    for &b in text.as_bytes() {
                        match b {
                            b'\\' => out.extend_from_slice(b"\\\\"),
                            b'\n' => out.extend_from_slice(b"\\n"),
                            b'\r' => out.extend_from_slice(b"\\r"),
                            b'\t' => out.extend_from_slice(b"\\t"),
                            8 => out.extend_from_slice(b"\\b"),
                            12 => out.extend_from_slice(b"\\f"),
                            11 => out.extend_from_slice(b"\\v"),
                            b if b == options.delimiter => {
                                out.push(b'\\');
                                out.push(b);
                            }
                            b => out.push(b),
                        }
                    }
                }
                CopyFormat::Csv => {
                    let bytes = text.as_bytes();
                    let needs_quotes = bytes.is_empty() && options.null.is_empty()
                        || *text == options.null
                        || bytes.iter().any(|&b| {
                            b == options.delimiter || b == options.quote || b == b'\n' || b == b'\r'
                        });
                    if needs_quotes {
                        out.push(options.quote);
                        for &b in bytes {
                            if b == options.quote || b == options.escape {
                                out.push(options.escape);
                            }
                            out.push(b);
                        }
                        out.push(options.quote);
                    } else {
                        out.extend_from_slice(bytes);
                    }
                }
            },
        }
    }
    out.push(b'\n');
}

/// The column names of a COPY target list.
pub fn column_names(columns: &[ast::Ident]) -> Vec<String> {
    columns.iter().map(crate::session::fold_ident).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(options: CopyOptions, chunks: &[&[u8]]) -> SqlResult<Vec<TextRow>> {
        let mut parser = CopyParser::new(options);
        let mut rows = Vec::new();
        for chunk in chunks {
            parser.feed(chunk, &mut rows)?;
        }
        parser.finish(&mut rows)?;
        Ok(rows)
    }

    fn s(v: &str) -> Option<String> {
        Some(v.to_string())
    }

    #[test]
    fn text_format_splits_unescapes_and_stops_at_the_marker() {
        let rows = parse(
            CopyOptions::default(),
            &[b"1\ta\\tb\t\\N\n2\t", b"x\\\\y\t\\101\n\\.\nignored\n"],
        )
        .unwrap();
        assert_eq!(
            rows,
            vec![
                vec![s("1"), s("a\tb"), None],
                vec![s("2"), s("x\\y"), s("A")]
            ]
        );
    }

    #[test]
    fn csv_handles_quotes_headers_nulls_and_split_chunks() {
        let options = CopyOptions {
            format: CopyFormat::Csv,
            delimiter: b',',
            null: String::new(),
            header: true,
            ..CopyOptions::default()
        };
        let rows = parse(
            options,
            &[b"id,name\r\n1,\"a, \"\"b\"\"", b"\nc\"\n2,,\"\"\n3,plain"],
        )
        .unwrap();
        assert_eq!(
            rows,
            vec![
                vec![s("1"), s("a, \"b\"\nc")],
                vec![s("2"), None, s("")],
                vec![s("3"), s("plain")],
            ]
        );
    }

    #[test]
    fn output_escapes_what_input_unescapes() {
        let mut out = Vec::new();
        write_row(
            &[Some("a\tb"), None, Some("c\\d")],
            &CopyOptions::default(),
            &mut out,
        );
        assert_eq!(out, b"a\\tb\t\\N\tc\\\\d\n");
        let rows = parse(CopyOptions::default(), &[&out]).unwrap();
        assert_eq!(rows, vec![vec![s("a\tb"), None, s("c\\d")]]);
        let csv = CopyOptions {
            format: CopyFormat::Csv,
            delimiter: b',',
            null: String::new(),
            ..CopyOptions::default()
        };
        let mut out = Vec::new();
        write_row(&[Some("x,y"), None, Some("")], &csv, &mut out);
        assert_eq!(out, b"\"x,y\",,\"\"\n");
    }

    #[test]
    fn an_unterminated_quote_is_an_error() {
        let csv = CopyOptions {
            format: CopyFormat::Csv,
            delimiter: b',',
            null: String::new(),
            ..CopyOptions::default()
        };
        let err = parse(csv, &[b"1,\"open"]).unwrap_err();
        assert_eq!(err.code, sqlstate::BAD_COPY_FILE_FORMAT);
    }
}
