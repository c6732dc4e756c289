//! COPY's text and CSV formats: options, a streaming parser for `COPY … FROM STDIN`, and the
//! row writer for `COPY … TO STDOUT`.
//!
//! Values travel as text (NULL as `None`); converting them to column types is the SQL layer's
//! job, exactly as for string literals, so COPY accepts what INSERT accepts.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, StringBuilder};
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

/// COPY's `ENCODING`: Floe reads and writes UTF-8 only, so another encoding is refused rather
/// than its bytes taken as UTF-8. Names are matched like PostgreSQL's (case and punctuation
/// ignored).
fn check_encoding(name: &str) -> SqlResult<()> {
    match crate::functions::encoding::known_encoding(name).as_deref() {
        Some("utf8" | "unicode") => Ok(()),
        Some(_) => Err(SqlError::not_supported(format!(
            "COPY … ENCODING '{name}' is not supported yet: Floe reads and writes UTF8"
        ))),
        None => Err(SqlError::new(
            sqlstate::INVALID_PARAMETER_VALUE,
            "argument to option \"encoding\" must be a valid encoding name",
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
                CopyOption::Freeze(_) => {}
                CopyOption::Encoding(name) => check_encoding(name)?,
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

/// Rows parsed from COPY data, held as text columns (NULL as null) until converted in bulk.
/// Values go straight from the client's bytes into the columns' buffers: no allocation per
/// value or row.
#[derive(Debug)]
pub struct TextColumns {
    names: Vec<String>,
    columns: Vec<StringBuilder>,
    /// The input line each row started on (for errors: `COPY t, line 3`).
    lines: Vec<usize>,
}

impl TextColumns {
    /// Empty columns named `names` (the COPY's target columns, in order).
    pub fn new(names: Vec<String>) -> TextColumns {
        let columns = names.iter().map(|_| StringBuilder::new()).collect();
        TextColumns {
            names,
            columns,
            lines: Vec::new(),
        }
    }

    /// Rows held.
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    /// Whether no row is held.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// The number of columns.
    pub fn width(&self) -> usize {
        self.names.len()
    }

    /// Takes the rows held as Arrow string columns and the line of each row.
    pub fn take(&mut self) -> (Vec<ArrayRef>, Vec<usize>) {
        let columns = self
            .columns
            .iter_mut()
            .map(|c| Arc::new(c.finish()) as ArrayRef)
            .collect();
        (columns, std::mem::take(&mut self.lines))
    }
}

/// Parses COPY data as it arrives in chunks of any size.
#[derive(Debug)]
pub struct CopyParser {
    options: CopyOptions,
    /// `COPY t`: the start of every error's CONTEXT line.
    context: String,
    pending: Vec<u8>,
    skip_header: bool,
    ended: bool,
    line: usize,
    /// Unescaped bytes of the current row's fields, and each field's end (`None`: NULL).
    scratch: Vec<u8>,
    fields: Vec<Option<usize>>,
}

impl CopyParser {
    /// A parser for data in `options`' format for table `table` (named in errors).
    pub fn new(options: CopyOptions, table: &str) -> CopyParser {
        CopyParser {
            skip_header: options.header,
            options,
            context: format!("COPY {table}"),
            pending: Vec::new(),
            ended: false,
            line: 0,
            scratch: Vec::new(),
            fields: Vec::new(),
        }
    }

    /// The CONTEXT line for input line `line`.
    pub fn context(&self, line: usize) -> String {
        format!("{}, line {line}", self.context)
    }

    fn bad_copy(&self, line: usize, message: impl Into<String>) -> SqlError {
        SqlError::new(sqlstate::BAD_COPY_FILE_FORMAT, message.into())
            .with_context(self.context(line))
    }

    /// Adds a chunk; complete rows are appended to `rows`.
    pub fn feed(&mut self, data: &[u8], rows: &mut TextColumns) -> SqlResult<()> {
        if self.pending.is_empty() {
            // Parse straight from the message; keep only an incomplete tail.
            let used = self.parse_complete(data, rows, false)?;
            self.pending.extend_from_slice(&data[used..]);
            return Ok(());
        }
        self.pending.extend_from_slice(data);
        let pending = std::mem::take(&mut self.pending);
        let used = self.parse_complete(&pending, rows, false);
        self.pending = pending;
        let used = used?;
        self.pending.drain(..used);
        Ok(())
    }

    /// The data ended: the last row needs no line end.
    pub fn finish(&mut self, rows: &mut TextColumns) -> SqlResult<()> {
        let pending = std::mem::take(&mut self.pending);
        let used = self.parse_complete(&pending, rows, true)?;
        if used < pending.len() && !self.ended {
            return Err(self.bad_copy(self.line + 1, "unterminated CSV quoted field"));
        }
        Ok(())
    }

    /// Parses the complete records at the start of `data`; returns the bytes consumed.
    fn parse_complete(
        &mut self,
        data: &[u8],
        rows: &mut TextColumns,
        at_end: bool,
    ) -> SqlResult<usize> {
        let mut start = 0;
        while !self.ended && start < data.len() {
            let parsed = match self.options.format {
                CopyFormat::Text => self.text_record(data, start, at_end)?,
                CopyFormat::Csv => self.csv_record(data, start, at_end)?,
            };
            let Some((row, next)) = parsed else {
                break;
            };
            start = next;
            self.line += 1;
            if !row {
                continue;
            }
            if self.skip_header {
                self.skip_header = false;
                continue;
            }
            self.push_row(rows)?;
        }
        Ok(start)
    }

    /// Appends the fields in `scratch` as a row, checking their number.
    fn push_row(&mut self, rows: &mut TextColumns) -> SqlResult<()> {
        let width = rows.width();
        if self.fields.len() > width {
            return Err(self.bad_copy(self.line, "extra data after last expected column"));
        }
        if self.fields.len() < width {
            // An empty line is one empty field in PostgreSQL's eyes too.
            let message = format!(
                "missing data for column \"{}\"",
                rows.names[self.fields.len()]
            );
            return Err(self.bad_copy(self.line, message));
        }
        let mut begin = 0;
        for (column, field) in rows.columns.iter_mut().zip(&self.fields) {
            match field {
                None => column.append_null(),
                Some(end) => {
                    let bytes = &self.scratch[begin..*end];
                    begin = *end;
                    match std::str::from_utf8(bytes) {
                        Ok(text) => column.append_value(text),
                        Err(_) => {
                            return Err(SqlError::new(
                                sqlstate::CHARACTER_NOT_IN_REPERTOIRE,
                                "invalid byte sequence for encoding \"UTF8\"",
                            )
                            .with_context(self.context(self.line)))
                        }
                    }
                }
            }
        }
        rows.lines.push(self.line);
        Ok(())
    }

    /// The line starting at `start` if complete: (its end without the line break, next start).
    fn line_end(data: &[u8], start: usize, at_end: bool) -> Option<(usize, usize)> {
        match data[start..].iter().position(|&b| b == b'\n') {
            Some(n) => {
                let mut end = start + n;
                if end > start && data[end - 1] == b'\r' {
                    end -= 1;
                }
                Some((end, start + n + 1))
            }
            None if at_end => Some((data.len(), data.len())),
            None => None,
        }
    }

    /// A text-format record: `Some((is a row, next start))` when complete; its fields are
    /// left in `scratch`/`fields`. `false` for the end marker.
    fn text_record(
        &mut self,
        data: &[u8],
        start: usize,
        at_end: bool,
    ) -> SqlResult<Option<(bool, usize)>> {
        let Some((end, next)) = Self::line_end(data, start, at_end) else {
            return Ok(None);
        };
        let line = &data[start..end];
        if line == b"\\." {
            self.ended = true;
            return Ok(Some((false, next)));
        }
        self.scratch.clear();
        self.fields.clear();
        for raw in line.split(|&b| b == self.options.delimiter) {
            if raw == self.options.null.as_bytes() {
                self.fields.push(None);
                continue;
            }
            if raw.contains(&b'\\') {
                unescape_text(raw, &mut self.scratch);
            } else {
                self.scratch.extend_from_slice(raw);
            }
            self.fields.push(Some(self.scratch.len()));
        }
        Ok(Some((true, next)))
    }

    /// A CSV record, as [`CopyParser::text_record`].
    fn csv_record(
        &mut self,
        data: &[u8],
        start: usize,
        at_end: bool,
    ) -> SqlResult<Option<(bool, usize)>> {
        // The end-of-data marker, alone on a line.
        if let Some((end, next)) = Self::line_end(data, start, at_end) {
            if &data[start..end] == b"\\." {
                self.ended = true;
                return Ok(Some((false, next)));
            }
        }
        let (quote, escape, delimiter) = (
            self.options.quote,
            self.options.escape,
            self.options.delimiter,
        );
        self.scratch.clear();
        self.fields.clear();
        let mut field_start = 0;
        let mut quoted = false;
        let mut was_quoted = false;
        let mut i = start;
        loop {
            if i >= data.len() {
                if !at_end || quoted {
                    return Ok(None);
                }
                self.finish_csv_field(field_start, was_quoted);
                return Ok(Some((true, i)));
            }
            let b = data[i];
            if quoted {
                if b == escape && escape != quote && data.get(i + 1) == Some(&quote) {
                    self.scratch.push(quote);
                    i += 2;
                    continue;
                }
                if b == quote {
                    if data.get(i + 1) == Some(&quote) {
                        self.scratch.push(quote);
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
                self.scratch.push(b);
                i += 1;
                continue;
            }
            if b == quote {
                quoted = true;
                was_quoted = true;
                i += 1;
            } else if b == delimiter {
                self.finish_csv_field(field_start, was_quoted);
                field_start = self.scratch.len();
                was_quoted = false;
                i += 1;
            } else if b == b'\n' || b == b'\r' {
                self.finish_csv_field(field_start, was_quoted);
                let mut next = i + 1;
                if b == b'\r' && data.get(next) == Some(&b'\n') {
                    next += 1;
                }
                return Ok(Some((true, next)));
            } else {
                self.scratch.push(b);
                i += 1;
            }
        }
    }

    fn finish_csv_field(&mut self, field_start: usize, was_quoted: bool) {
        if !was_quoted && self.scratch[field_start..] == *self.options.null.as_bytes() {
            self.scratch.truncate(field_start);
            self.fields.push(None);
        } else {
            self.fields.push(Some(self.scratch.len()));
        }
    }
}

/// Decodes the text format's backslash escapes, appending to `out`.
fn unescape_text(raw: &[u8], out: &mut Vec<u8>) {
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
    use datafusion::arrow::array::{Array, StringArray};

    type TextRow = Vec<Option<String>>;

    fn parse_width(
        options: CopyOptions,
        width: usize,
        chunks: &[&[u8]],
    ) -> SqlResult<(Vec<TextRow>, Vec<usize>)> {
        let mut parser = CopyParser::new(options, "t");
        let mut rows = TextColumns::new((0..width).map(|i| format!("c{i}")).collect());
        for chunk in chunks {
            parser.feed(chunk, &mut rows)?;
        }
        parser.finish(&mut rows)?;
        let (columns, lines) = rows.take();
        let out = (0..lines.len())
            .map(|r| {
                columns
                    .iter()
                    .map(|c| {
                        let c = c.as_any().downcast_ref::<StringArray>().unwrap();
                        c.is_valid(r).then(|| c.value(r).to_string())
                    })
                    .collect()
            })
            .collect();
        Ok((out, lines))
    }

    fn parse(options: CopyOptions, chunks: &[&[u8]]) -> SqlResult<Vec<TextRow>> {
        let width = match options.format {
            CopyFormat::Text => 3,
            CopyFormat::Csv => 2,
        };
        Ok(parse_width(options, width, chunks)?.0)
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
            &[b"id,name\r\n1,\"a, \"\"b\"\"", b"\nc\"\n,\"\"\n3,plain"],
        )
        .unwrap();
        assert_eq!(
            rows,
            vec![
                vec![s("1"), s("a, \"b\"\nc")],
                vec![None, s("")],
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

    #[test]
    fn rows_remember_their_lines_and_bad_widths_name_the_line() {
        let (rows, lines) =
            parse_width(CopyOptions::default(), 2, &[b"1\ta\n2\t", b"b\n3\tc"]).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(lines, vec![1, 2, 3]);
        let err = parse_width(CopyOptions::default(), 2, &[b"1\ta\n2\n"]).unwrap_err();
        assert_eq!(err.code, sqlstate::BAD_COPY_FILE_FORMAT);
        assert_eq!(err.message, "missing data for column \"c1\"");
        assert_eq!(err.context.as_deref(), Some("COPY t, line 2"));
        let err = parse_width(CopyOptions::default(), 2, &[b"1\ta\tx\n"]).unwrap_err();
        assert_eq!(err.message, "extra data after last expected column");
        assert_eq!(err.context.as_deref(), Some("COPY t, line 1"));
    }
}
