//! Reading a query string into statements: PostgreSQL syntax the parser lacks is rewritten on
//! the *token stream* before parsing, never on the text.
//!
//! The string is tokenized once (PostgreSQL dialect); string literals, quoted identifiers,
//! dollar-quoted bodies and comments are tokens of their own, so no rewrite can reach into
//! them (`INSERT … VALUES ('lock for key share')` keeps its text), and nothing here slices
//! user text at a byte offset. Each statement's tokens go through the rewrites below in order,
//! then the parser reads the rewritten tokens:
//!
//! 1. `COPY … (FREEZE on, HEADER off)`: PostgreSQL's `on`/`off` booleans as `true`/`false`.
//! 2. `CHECKPOINT` as [`CHECKPOINT_STATEMENT`]; `VACUUM …` and `ANALYZE …` without their
//!    options, one statement per named table (storage needs neither; see [`maintenance`]).
//! 3. `ALTER VIEW v RENAME …` as `ALTER TABLE` (PostgreSQL takes both for views).
//! 4. CREATE TABLE AS: a trailing `WITH DATA` dropped, `WITH NO DATA` as `LIMIT 0`, and bare
//!    column names (`CREATE TABLE t (a, b) AS …`) given a placeholder type.
//! 5. The lock strengths `FOR NO KEY UPDATE` and `FOR KEY SHARE` as `FOR UPDATE` and
//!    `FOR SHARE` (Floe's row locks are exclusive, so they lock alike).
//! 6. The options of `GENERATED … AS IDENTITY (…)` in the one order sqlparser reads
//!    (PostgreSQL takes them in any order).
//! 7. `DEFERRABLE` / `NOT DEFERRABLE` among a transaction's modes (`BEGIN`, `START
//!    TRANSACTION`, `SET TRANSACTION`, `SET SESSION CHARACTERISTICS`) dropped: a
//!    `SERIALIZABLE READ ONLY DEFERRABLE` transaction runs as `SERIALIZABLE READ ONLY`, which
//!    is allowed to abort where PostgreSQL's would have waited for a safe snapshot.
//! 8. `RESET TIME ZONE` as `RESET timezone`.
//! 10. `REFRESH MATERIALIZED VIEW [CONCURRENTLY] name [WITH [NO] DATA]` as
//!     [`REFRESH_STATEMENT`] `name` (with `BOOST` for `WITH NO DATA`), and
//!     `ALTER MATERIALIZED VIEW … RENAME …` as `ALTER TABLE`.
//! 9. `x IN ((SELECT …), y)`: sqlparser reads the parenthesized first element as the IN's
//!    subquery and then fails at the comma, so that element is read as `coalesce((SELECT …))`
//!    (one argument: the same value, a scalar subquery still).

use datafusion::sql::sqlparser::ast::Statement;
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer, Whitespace};

/// What `CHECKPOINT` is parsed as: a Redshift-only VACUUM form PostgreSQL clients never send.
pub(crate) const CHECKPOINT_STATEMENT: &str = "VACUUM RECLUSTER";

/// What `REFRESH MATERIALIZED VIEW` is parsed as: a Redshift-only VACUUM form PostgreSQL
/// clients never send (`VACUUM REINDEX name`, `BOOST` meaning `WITH NO DATA`).
pub(crate) const REFRESH_STATEMENT: &str = "VACUUM REINDEX";

/// Splits `sql` into statements, with the rewrites of this module applied.
pub(crate) fn parse_statements(
    sql: &str,
    recursion_limit: usize,
) -> Result<Vec<Statement>, ParserError> {
    let dialect = PostgreSqlDialect {};
    let tokens = Tokenizer::new(&dialect, sql).tokenize_with_location()?;
    trailing_junk(&tokens)?;
    reserved_after_from(&tokens)?;
    let mut rewritten = Vec::with_capacity(tokens.len());
    let mut statement = Vec::new();
    for token in tokens {
        let end = token.token == Token::SemiColon;
        statement.push(token);
        if end {
            rewrite_statement(&mut statement);
            rewritten.append(&mut statement);
        }
    }
    rewrite_statement(&mut statement);
    rewritten.append(&mut statement);
    Parser::new(&dialect)
        .with_recursion_limit(recursion_limit)
        .with_tokens_with_locations(rewritten)
        .parse_statements()
}

/// A parse error of `sql` as PostgreSQL reports it, with the 1-based character position of
/// the token it stopped at (the `P` field clients point at), or just past the end for an
/// error at the end of input.
pub(crate) fn positioned(sql: &str, err: ParserError) -> crate::error::SqlError {
    let text = match &err {
        ParserError::ParserError(msg) | ParserError::TokenizerError(msg) => msg.clone(),
        ParserError::RecursionLimitExceeded => String::new(),
    };
    let mut error = crate::error::SqlError::from(err);
    // sqlparser: "… at Line: 1, Column: 8" (both 1-based, columns in characters).
    let location = text.rsplit_once(" at Line: ").and_then(|(_, at)| {
        let (line, column) = at.split_once(", Column: ")?;
        let column: String = column.chars().take_while(char::is_ascii_digit).collect();
        Some((
            line.trim().parse::<usize>().ok()?,
            column.parse::<usize>().ok()?,
        ))
    });
    let position = match location {
        Some((line, column)) if line >= 1 && column >= 1 => {
            let before: usize = sql
                .split('\n')
                .take(line - 1)
                .map(|l| l.chars().count() + 1)
                .sum();
            Some(before + column)
        }
        _ if error.message == "syntax error at end of input" => Some(sql.chars().count() + 1),
        _ => None,
    };
    error.position = position.and_then(|p| u32::try_from(p).ok());
    error
}

/// PostgreSQL's lexer refuses a number run into a word (`1e4007EXCEPT`, `12abc`, `1_000`):
/// 42601 "trailing junk after numeric literal"; the tokenizer would read a number and a word.
fn trailing_junk(tokens: &[TokenWithSpan]) -> Result<(), ParserError> {
    for token in tokens {
        // `1_000`: digit separators came with PostgreSQL 16.
        if let Token::Number(number, _) = &token.token {
            if number.contains('_') {
                return Err(ParserError::TokenizerError(format!(
                    "trailing junk after numeric literal at or near \"{number}\""
                )));
            }
        }
    }
    for pair in tokens.windows(2) {
        let (Token::Number(number, _), Token::Word(word)) = (&pair[0].token, &pair[1].token) else {
            continue;
        };
        // Adjacent in the token list: no whitespace (or comment) token between them.
        if word.quote_style.is_none() {
            return Err(ParserError::TokenizerError(format!(
                "trailing junk after numeric literal at or near \"{number}{}\"",
                word.value
            )));
        }
    }
    Ok(())
}

/// PostgreSQL's reserved words that can never start a FROM item: `FROM WHERE` is a syntax
/// error there (sqlparser read `where` as a table name, 42P01).
const NOT_A_FROM_ITEM: [Keyword; 19] = [
    Keyword::WHERE,
    Keyword::GROUP,
    Keyword::HAVING,
    Keyword::ORDER,
    Keyword::LIMIT,
    Keyword::OFFSET,
    Keyword::WINDOW,
    Keyword::UNION,
    Keyword::INTERSECT,
    Keyword::EXCEPT,
    Keyword::FETCH,
    Keyword::FOR,
    Keyword::INTO,
    Keyword::ON,
    Keyword::USING,
    Keyword::WHEN,
    Keyword::THEN,
    Keyword::AND,
    Keyword::OR,
];

/// Refuses `FROM` followed by a reserved word that cannot name a FROM item (unquoted), with
/// the word's location.
fn reserved_after_from(tokens: &[TokenWithSpan]) -> Result<(), ParserError> {
    let significant = tokens
        .iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_)));
    let mut after_from = false;
    for token in significant {
        if let Token::Word(word) = &token.token {
            if after_from && word.quote_style.is_none() && NOT_A_FROM_ITEM.contains(&word.keyword) {
                let at = token.span.start;
                return Err(ParserError::ParserError(format!(
                    "Expected: a table, found: {} at Line: {}, Column: {}",
                    word.value, at.line, at.column
                )));
            }
            after_from = word.quote_style.is_none() && word.keyword == Keyword::FROM;
        } else {
            after_from = false;
        }
    }
    Ok(())
}

/// Applies every rewrite to one statement's tokens (its trailing `;` included, if any).
fn rewrite_statement(tokens: &mut Vec<TokenWithSpan>) {
    let words = Words::of(tokens);
    if words.is_empty() {
        return;
    }
    if words.keyword(tokens, 0) == Some(Keyword::COPY) {
        copy_boolean_options(tokens, &words);
    }
    if maintenance(tokens, &words) || refresh(tokens, &words) {
        return;
    }
    if words.is(tokens, 0, Keyword::ALTER)
        && words.is(tokens, 1, Keyword::MATERIALIZED)
        && words.is(tokens, 2, Keyword::VIEW)
        && words.any(tokens, Keyword::RENAME)
    {
        tokens[words.0[1]].token = Token::make_keyword("TABLE");
        tokens[words.0[2]].token = Token::Whitespace(Whitespace::Space);
    }
    if words.is(tokens, 0, Keyword::ALTER)
        && words.is(tokens, 1, Keyword::VIEW)
        && words.any(tokens, Keyword::RENAME)
    {
        tokens[words.0[1]].token = Token::make_keyword("TABLE");
    }
    if words.is(tokens, 0, Keyword::CREATE) && words.any(tokens, Keyword::TABLE) {
        create_table_as(tokens, &words);
    }
    if words.0.len() == 3
        && words.is(tokens, 0, Keyword::RESET)
        && words.is(tokens, 1, Keyword::TIME)
        && words.is(tokens, 2, Keyword::ZONE)
    {
        tokens[words.0[1]].token = Token::make_word("timezone", None);
        tokens[words.0[2]].token = Token::Whitespace(Whitespace::Space);
    }
    lock_strengths(tokens);
    identity_options(tokens);
    in_list_subqueries(tokens);
    if words.is(tokens, 0, Keyword::BEGIN)
        || words.is(tokens, 0, Keyword::START)
        || (words.is(tokens, 0, Keyword::SET)
            && (words.is(tokens, 1, Keyword::TRANSACTION) || words.is(tokens, 1, Keyword::SESSION)))
    {
        transaction_deferrable(tokens, &words);
    }
}

/// Drops `[NOT] DEFERRABLE` (and the comma separating it from the other modes) from a
/// statement's transaction modes.
fn transaction_deferrable(tokens: &mut Vec<TokenWithSpan>, words: &Words) {
    let mut dropped = Vec::new();
    for n in 0..words.0.len() {
        if !words.is(tokens, n, Keyword::DEFERRABLE) {
            continue;
        }
        let mut first = n;
        if n > 0 && words.is(tokens, n - 1, Keyword::NOT) {
            first = n - 1;
        }
        dropped.extend(first..=n);
        let comma = |m: usize| {
            words
                .0
                .get(m)
                .is_some_and(|&i| tokens[i].token == Token::Comma)
        };
        if first > 0 && comma(first - 1) {
            dropped.push(first - 1);
        } else if comma(n + 1) {
            dropped.push(n + 1);
        }
    }
    if dropped.is_empty() {
        return;
    }
    let positions: Vec<usize> = dropped.iter().map(|&n| words.0[n]).collect();
    let mut at = 0;
    tokens.retain(|_| {
        let keep = !positions.contains(&at);
        at += 1;
        keep
    });
}

/// Positions of a statement's significant tokens (not whitespace or comments, not `;`).
struct Words(Vec<usize>);

impl Words {
    fn of(tokens: &[TokenWithSpan]) -> Words {
        Words(
            tokens
                .iter()
                .enumerate()
                .filter(|(_, t)| !matches!(t.token, Token::Whitespace(_) | Token::SemiColon))
                .map(|(i, _)| i)
                .collect(),
        )
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The keyword of the `n`th significant token, if it is an unquoted keyword.
    fn keyword(&self, tokens: &[TokenWithSpan], n: usize) -> Option<Keyword> {
        self.0
            .get(n)
            .and_then(|&i| unquoted_keyword(&tokens[i].token))
    }

    fn is(&self, tokens: &[TokenWithSpan], n: usize, keyword: Keyword) -> bool {
        self.keyword(tokens, n) == Some(keyword)
    }

    fn any(&self, tokens: &[TokenWithSpan], keyword: Keyword) -> bool {
        (0..self.0.len()).any(|n| self.is(tokens, n, keyword))
    }
}

fn unquoted_keyword(token: &Token) -> Option<Keyword> {
    match token {
        Token::Word(w) if w.quote_style.is_none() => Some(w.keyword),
        _ => None,
    }
}

/// `FREEZE on` / `HEADER off` in COPY's options (pgbench -i sends `with (freeze on)`).
fn copy_boolean_options(tokens: &mut [TokenWithSpan], words: &Words) {
    for pair in words.0.windows(2) {
        let option = unquoted_keyword(&tokens[pair[0]].token);
        if !matches!(option, Some(Keyword::FREEZE | Keyword::HEADER)) {
            continue;
        }
        let value = match &tokens[pair[1]].token {
            Token::Word(w) if w.quote_style.is_none() => w.value.to_ascii_lowercase(),
            _ => continue,
        };
        match value.as_str() {
            "on" => tokens[pair[1]].token = Token::make_keyword("true"),
            "off" => tokens[pair[1]].token = Token::make_keyword("false"),
            _ => {}
        }
    }
}

/// `CHECKPOINT`, and `VACUUM`/`ANALYZE` in PostgreSQL's forms sqlparser does not read
/// (`vacuum analyze t`, `vacuum (verbose) t1, t2 (a)`): Floe's storage needs neither command,
/// so options and column lists are dropped and each named table becomes a statement of its
/// own, `VACUUM t` or `ANALYZE t`, which the session checks exists (42P01, as PostgreSQL) — a
/// list of tables thus completes once per table. Returns whether the statement was one of
/// them.
fn maintenance(tokens: &mut Vec<TokenWithSpan>, words: &Words) -> bool {
    let first = &tokens[words.0[0]].token;
    let is_word = |word: &str| matches!(first, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(word));
    let command = if is_word("checkpoint") && words.0.len() == 1 {
        CHECKPOINT_STATEMENT
    } else if is_word("vacuum") && words.0.len() > 1 {
        "VACUUM"
    } else if is_word("analyze") && words.0.len() > 1 {
        "ANALYZE"
    } else {
        return false;
    };
    let tables = if command == CHECKPOINT_STATEMENT {
        Vec::new()
    } else {
        maintained_tables(tokens, words)
    };
    let end = tokens
        .last()
        .filter(|t| t.token == Token::SemiColon)
        .cloned();
    tokens.clear();
    let keywords = |tokens: &mut Vec<TokenWithSpan>, text: &str| {
        for (i, word) in text.split(' ').enumerate() {
            if i > 0 {
                tokens.push(TokenWithSpan::wrap(Token::Whitespace(Whitespace::Space)));
            }
            tokens.push(TokenWithSpan::wrap(Token::make_keyword(word)));
        }
    };
    if tables.is_empty() {
        keywords(tokens, command);
    }
    for (i, table) in tables.into_iter().enumerate() {
        if i > 0 {
            tokens.push(TokenWithSpan::wrap(Token::SemiColon));
        }
        keywords(tokens, command);
        tokens.push(TokenWithSpan::wrap(Token::Whitespace(Whitespace::Space)));
        tokens.extend(table);
    }
    tokens.extend(end);
    true
}

/// `REFRESH MATERIALIZED VIEW [CONCURRENTLY] name [WITH [NO] DATA]` as [`REFRESH_STATEMENT`]
/// (see the module doc). Anything else after the name is left for the parser to refuse.
fn refresh(tokens: &mut Vec<TokenWithSpan>, words: &Words) -> bool {
    let first = &tokens[words.0[0]].token;
    let is_refresh = matches!(first, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case("refresh"));
    if !is_refresh
        || !words.is(tokens, 1, Keyword::MATERIALIZED)
        || !words.is(tokens, 2, Keyword::VIEW)
    {
        return false;
    }
    let mut at = 3;
    if words.is(tokens, at, Keyword::CONCURRENTLY) {
        at += 1;
    }
    let significant: Vec<TokenWithSpan> =
        words.0[at..].iter().map(|&i| tokens[i].clone()).collect();
    let name_end = significant
        .iter()
        .position(|t| unquoted_keyword(&t.token) == Some(Keyword::WITH))
        .unwrap_or(significant.len());
    let tail: Vec<Option<Keyword>> = significant[name_end..]
        .iter()
        .map(|t| unquoted_keyword(&t.token))
        .collect();
    let no_data = match tail.as_slice() {
        [] | [Some(Keyword::WITH), Some(Keyword::DATA)] => false,
        [Some(Keyword::WITH), Some(Keyword::NO), Some(Keyword::DATA)] => true,
        _ => return false,
    };
    let end = tokens
        .last()
        .filter(|t| t.token == Token::SemiColon)
        .cloned();
    let name: Vec<TokenWithSpan> = significant[..name_end].to_vec();
    tokens.clear();
    for (i, word) in REFRESH_STATEMENT.split(' ').enumerate() {
        if i > 0 {
            tokens.push(TokenWithSpan::wrap(Token::Whitespace(Whitespace::Space)));
        }
        tokens.push(TokenWithSpan::wrap(Token::make_keyword(word)));
    }
    tokens.push(TokenWithSpan::wrap(Token::Whitespace(Whitespace::Space)));
    tokens.extend(name);
    if no_data {
        tokens.push(TokenWithSpan::wrap(Token::Whitespace(Whitespace::Space)));
        tokens.push(TokenWithSpan::wrap(Token::make_keyword("BOOST")));
    }
    tokens.extend(end);
    true
}

/// The table names (each its tokens, `schema.table` included) a `VACUUM`/`ANALYZE` statement
/// lists after its options; none if it names none or reads in a way this does not know (the
/// command then stays bare, as Floe needs neither).
fn maintained_tables(tokens: &[TokenWithSpan], words: &Words) -> Vec<Vec<TokenWithSpan>> {
    let significant: Vec<&Token> = words.0.iter().map(|&i| &tokens[i].token).collect();
    let mut at = 1;
    let skip_parens = |at: &mut usize| {
        if significant.get(*at) != Some(&&Token::LParen) {
            return true;
        }
        let mut depth = 0usize;
        while let Some(token) = significant.get(*at) {
            *at += 1;
            match token {
                Token::LParen => depth += 1,
                Token::RParen => {
                    depth -= 1;
                    if depth == 0 {
                        return true;
                    }
                }
                _ => {}
            }
        }
        false
    };
    if !skip_parens(&mut at) {
        return Vec::new();
    }
    const OPTIONS: [&str; 5] = ["full", "freeze", "verbose", "analyze", "analyse"];
    while matches!(significant.get(at), Some(Token::Word(w)) if w.quote_style.is_none()
        && OPTIONS.iter().any(|o| w.value.eq_ignore_ascii_case(o)))
    {
        at += 1;
    }
    let mut tables = Vec::new();
    while at < significant.len() {
        let mut name = Vec::new();
        loop {
            match significant.get(at) {
                Some(word @ Token::Word(_)) => name.push(TokenWithSpan::wrap((*word).clone())),
                _ => return Vec::new(),
            }
            at += 1;
            if significant.get(at) != Some(&&Token::Period) {
                break;
            }
            name.push(TokenWithSpan::wrap(Token::Period));
            at += 1;
        }
        // A column list (`ANALYZE t (a, b)`): Floe keeps no per-column statistics.
        if !skip_parens(&mut at) {
            return Vec::new();
        }
        tables.push(name);
        match significant.get(at) {
            None => break,
            Some(Token::Comma) => at += 1,
            Some(_) => return Vec::new(),
        }
    }
    tables
}

/// CREATE TABLE AS: `WITH [NO] DATA` at the end, and a column list of bare names.
fn create_table_as(tokens: &mut Vec<TokenWithSpan>, words: &Words) {
    let n = words.0.len();
    let tail: Vec<Option<Keyword>> = (n.saturating_sub(3)..n)
        .map(|k| words.keyword(tokens, k))
        .collect();
    let has_as = words.any(tokens, Keyword::AS);
    if has_as && n >= 3 && tail == [Some(Keyword::WITH), Some(Keyword::NO), Some(Keyword::DATA)] {
        let with_at = words.0[n - 3];
        let end = tokens[words.0[n - 1] + 1..].to_vec();
        tokens.truncate(with_at);
        tokens.push(TokenWithSpan::wrap(Token::make_keyword("LIMIT")));
        tokens.push(TokenWithSpan::wrap(Token::Whitespace(Whitespace::Space)));
        tokens.push(TokenWithSpan::wrap(Token::Number("0".into(), false)));
        tokens.extend(end);
    } else if has_as
        && n >= 2
        && tail[tail.len() - 2..] == [Some(Keyword::WITH), Some(Keyword::DATA)]
    {
        let end = tokens[words.0[n - 1] + 1..].to_vec();
        tokens.truncate(words.0[n - 2]);
        tokens.extend(end);
    }
    ctas_column_names(tokens);
}

/// `CREATE [TEMP] TABLE t (a, b) AS …`: the parser wants types in the column list, so each
/// bare name gets a placeholder type (CREATE TABLE AS uses only the names).
fn ctas_column_names(tokens: &mut Vec<TokenWithSpan>) {
    let words = Words::of(tokens);
    let Some(open) = words
        .0
        .iter()
        .position(|&i| tokens[i].token == Token::LParen)
    else {
        return;
    };
    let Some(close) = words.0[open..]
        .iter()
        .position(|&i| tokens[i].token == Token::RParen)
        .map(|k| k + open)
    else {
        return;
    };
    // Only `CREATE … TABLE name (…) AS`, with nothing but names and commas between the parens.
    let before_table = (0..open).any(|k| words.is(tokens, k, Keyword::TABLE))
        && !(0..open).any(|k| words.is(tokens, k, Keyword::AS));
    if !before_table || !words.is(tokens, close + 1, Keyword::AS) || close == open + 1 {
        return;
    }
    let inner = &words.0[open + 1..close];
    let names_only = inner.iter().enumerate().all(|(k, &i)| {
        if k % 2 == 0 {
            matches!(tokens[i].token, Token::Word(_))
        } else {
            tokens[i].token == Token::Comma
        }
    });
    if !names_only || inner.len().is_multiple_of(2) {
        return;
    }
    let names: Vec<usize> = inner.iter().step_by(2).copied().collect();
    for &at in names.iter().rev() {
        tokens.insert(
            at + 1,
            TokenWithSpan::wrap(Token::Whitespace(Whitespace::Space)),
        );
        tokens.insert(at + 2, TokenWithSpan::wrap(Token::make_keyword("text")));
    }
}

/// Sequence options after `AS IDENTITY (`, reordered to INCREMENT, MINVALUE, MAXVALUE, START,
/// CACHE, CYCLE (each option keeps its own tokens).
fn identity_options(tokens: &mut [TokenWithSpan]) {
    let mut search_from = 0;
    loop {
        let words = Words::of(tokens);
        let Some(k) = (search_from..words.0.len().saturating_sub(2)).find(|&k| {
            words.is(tokens, k, Keyword::AS)
                && words.is(tokens, k + 1, Keyword::IDENTITY)
                && tokens[words.0[k + 2]].token == Token::LParen
        }) else {
            return;
        };
        search_from = k + 3;
        let open = k + 2;
        let Some(close) =
            (open + 1..words.0.len()).find(|&j| tokens[words.0[j]].token == Token::RParen)
        else {
            return;
        };
        // Split the significant tokens between the parentheses into options.
        let rank = |j: usize| -> Option<u8> {
            let next = words.keyword(tokens, j + 1);
            match words.keyword(tokens, j)? {
                Keyword::INCREMENT => Some(0),
                Keyword::MINVALUE => Some(1),
                Keyword::NO if next == Some(Keyword::MINVALUE) => Some(1),
                Keyword::MAXVALUE => Some(2),
                Keyword::NO if next == Some(Keyword::MAXVALUE) => Some(2),
                Keyword::START => Some(3),
                Keyword::CACHE => Some(4),
                Keyword::CYCLE => Some(5),
                Keyword::NO if next == Some(Keyword::CYCLE) => Some(5),
                _ => None,
            }
        };
        let mut options: Vec<(u8, Vec<Token>)> = Vec::new();
        let mut j = open + 1;
        while j < close {
            match rank(j) {
                Some(r) => {
                    options.push((r, vec![tokens[words.0[j]].token.clone()]));
                    // `NO x` is one option of two words.
                    if words.is(tokens, j, Keyword::NO) {
                        j += 1;
                        if let Some(last) = options.last_mut() {
                            last.1.push(tokens[words.0[j]].token.clone());
                        }
                    }
                }
                None => match options.last_mut() {
                    Some(last) => last.1.push(tokens[words.0[j]].token.clone()),
                    None => break,
                },
            }
            j += 1;
        }
        if j < close || options.windows(2).all(|w| w[0].0 <= w[1].0) {
            continue;
        }
        options.sort_by_key(|(r, _)| *r);
        // Write the options back over the same significant positions, in the new order.
        let reordered: Vec<Token> = options.into_iter().flat_map(|(_, t)| t).collect();
        for (slot, token) in (open + 1..close).zip(reordered) {
            tokens[words.0[slot]].token = token;
        }
    }
}

/// `FOR NO KEY UPDATE` → `FOR UPDATE`, `FOR KEY SHARE` → `FOR SHARE`.
fn lock_strengths(tokens: &mut Vec<TokenWithSpan>) {
    loop {
        let words = Words::of(tokens);
        let found = words.0.windows(4).find_map(|w| {
            let k = |i: usize| unquoted_keyword(&tokens[w[i]].token);
            match (k(0), k(1), k(2), k(3)) {
                (
                    Some(Keyword::FOR),
                    Some(Keyword::NO),
                    Some(Keyword::KEY),
                    Some(Keyword::UPDATE),
                ) => Some(w[1]..w[3]),
                (Some(Keyword::FOR), Some(Keyword::KEY), Some(Keyword::SHARE), _) => {
                    Some(w[1]..w[2])
                }
                _ => None,
            }
        });
        let found = found.or_else(|| {
            // `FOR KEY SHARE` as the statement's last three words.
            let n = words.0.len();
            (n >= 3).then(|| &words.0[n - 3..]).and_then(|w| {
                let k = |i: usize| unquoted_keyword(&tokens[w[i]].token);
                matches!(
                    (k(0), k(1), k(2)),
                    (Some(Keyword::FOR), Some(Keyword::KEY), Some(Keyword::SHARE))
                )
                .then(|| w[1]..w[2])
            })
        });
        match found {
            Some(range) => {
                tokens.drain(range);
            }
            None => return,
        }
    }
}

/// `IN ((SELECT …), …)`: the first element, a parenthesized subquery followed by more
/// elements, is wrapped in a one-argument `coalesce` (see the module doc).
fn in_list_subqueries(tokens: &mut Vec<TokenWithSpan>) {
    let words = Words::of(tokens);
    let token = |n: usize| words.0.get(n).map(|&i| &tokens[i].token);
    let mut wraps = Vec::new();
    for n in 0..words.0.len() {
        if !words.is(tokens, n, Keyword::IN)
            || token(n + 1) != Some(&Token::LParen)
            || token(n + 2) != Some(&Token::LParen)
        {
            continue;
        }
        let mut depth = 0usize;
        let mut close = None;
        for m in n + 2..words.0.len() {
            match token(m) {
                Some(Token::LParen) => depth += 1,
                Some(Token::RParen) => {
                    depth -= 1;
                    if depth == 0 {
                        close = Some(m);
                        break;
                    }
                }
                _ => {}
            }
        }
        let Some(close) = close else { continue };
        if token(close + 1) == Some(&Token::Comma) {
            wraps.push((words.0[n + 2], words.0[close]));
        }
    }
    // From the end, so earlier positions stay valid.
    let mut inserts: Vec<(usize, Vec<Token>)> = Vec::new();
    for (open, close) in wraps {
        inserts.push((
            open,
            vec![Token::make_word("coalesce", None), Token::LParen],
        ));
        inserts.push((close + 1, vec![Token::RParen]));
    }
    inserts.sort_by_key(|insert| std::cmp::Reverse(insert.0));
    for (at, new) in inserts {
        let span = tokens[at.min(tokens.len() - 1)].span;
        for (k, t) in new.into_iter().enumerate() {
            tokens.insert(at + k, TokenWithSpan::new(t, span));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_statements;

    fn reads_as(sql: &str, expected: &str) {
        let statements = parse_statements(sql, 50).unwrap();
        let expected = parse_statements(expected, 50).unwrap();
        assert_eq!(statements, expected, "{sql}");
    }

    #[test]
    fn syntax_the_parser_lacks_is_rewritten() {
        reads_as(
            "SELECT 'a' NOT IN ((SELECT 'a'), 'b', ((SELECT 1)))",
            "SELECT 'a' NOT IN (coalesce((SELECT 'a')), 'b', ((SELECT 1)))",
        );
        reads_as(
            "SELECT 1 IN ((SELECT 1), (SELECT 2)) AND 2 IN ((SELECT 2))",
            "SELECT 1 IN (coalesce((SELECT 1)), (SELECT 2)) AND 2 IN ((SELECT 2))",
        );
        reads_as("ALTER VIEW v RENAME TO w", "ALTER TABLE v RENAME TO w");
        reads_as(
            "create table t as select * from u with no data;",
            "create table t as select * from u LIMIT 0",
        );
        reads_as(
            "CREATE TABLE t AS SELECT 1 WITH DATA",
            "CREATE TABLE t AS SELECT 1",
        );
        reads_as(
            "CREATE TABLE t (a, \"B\") AS SELECT 1, 2",
            "CREATE TABLE t (a text, \"B\" text) AS SELECT 1, 2",
        );
        reads_as(
            "select * from t for no key update",
            "select * from t for update",
        );
        reads_as(
            "select * from t FOR KEY SHARE of t",
            "select * from t for share of t",
        );
        reads_as("select * from t for key share", "select * from t for share");
        reads_as(
            "copy t from stdin with (freeze on)",
            "copy t from stdin with (freeze true)",
        );
        reads_as(
            "COPY t FROM STDIN (FORMAT csv, HEADER off)",
            "COPY t FROM STDIN (FORMAT csv, HEADER false)",
        );
        reads_as("vacuum analyze pgbench_accounts", "VACUUM pgbench_accounts");
        reads_as(
            "vacuum (verbose, analyze) s.a, \"B\" (x, y);",
            "VACUUM s.a; VACUUM \"B\";",
        );
        reads_as("analyze verbose t (a)", "ANALYZE t");
        reads_as("vacuum full freeze", "VACUUM");
        reads_as(
            "BEGIN ISOLATION LEVEL SERIALIZABLE, READ ONLY, DEFERRABLE",
            "BEGIN ISOLATION LEVEL SERIALIZABLE, READ ONLY",
        );
        reads_as(
            "start transaction not deferrable, isolation level serializable",
            "start transaction isolation level serializable",
        );
        reads_as(
            "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE READ ONLY DEFERRABLE",
            "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE READ ONLY",
        );
        reads_as("select 'deferrable'", "select 'deferrable'");
        reads_as(
            "CREATE TABLE t (id int GENERATED ALWAYS AS IDENTITY (START WITH 10 INCREMENT BY 5 NO CYCLE))",
            "CREATE TABLE t (id int GENERATED ALWAYS AS IDENTITY (INCREMENT BY 5 START WITH 10 NO CYCLE))",
        );
        let checkpoint = parse_statements("checkpoint;", 50).unwrap();
        assert!(
            matches!(&checkpoint[..], [datafusion::sql::sqlparser::ast::Statement::Vacuum(v)] if v.recluster),
            "{checkpoint:?}"
        );
    }

    #[test]
    fn literals_and_comments_are_never_rewritten() {
        for sql in [
            "INSERT INTO t VALUES ('lock for key share')",
            "SELECT 'for no key update', \"for key share\"",
            "CREATE TABLE t (a INT, b TEXT)",
            "SELECT 'with no data'",
            "SELECT 'alter view v rename'",
        ] {
            let statements = parse_statements(sql, 50).unwrap();
            assert_eq!(statements[0].to_string(), sql);
        }
    }

    #[test]
    fn multi_byte_text_anywhere_is_fine() {
        for sql in [
            "-- über\nselect 1",
            "/* ü */ select 1",
            "/*ü*/copy t from stdin",
            "ü",
            "¿qué?",
            "select 'ü' for key share",
            "日本語",
        ] {
            // Errors are fine; panics are not.
            let _ = parse_statements(sql, 50);
        }
        assert_eq!(parse_statements("-- über\nselect 1", 50).unwrap().len(), 1);
        assert_eq!(parse_statements("/* ü */ select 1", 50).unwrap().len(), 1);
    }
}
