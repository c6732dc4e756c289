//! Identifier folding: how a name written in SQL becomes the name Floe stores and looks up.
//!
//! PostgreSQL folds an unquoted identifier to lower case, ASCII letters only (with a multi-byte
//! server encoding such as UTF-8, `downcase_identifier` leaves other characters alone), and
//! keeps a quoted identifier as written. DataFusion's planner folds the same way, so every
//! place Floe folds a name itself (DDL, DML targets, column naming, the catalog rewrite) goes
//! through here: a table created as `Ätab` must be found again as `Ätab`.

use datafusion::sql::sqlparser::ast::{Ident, ObjectName};

/// A name as PostgreSQL folds it: quoted names keep their case, unquoted ones lose the case of
/// their ASCII letters.
pub(crate) fn ident_name(ident: &Ident) -> String {
    if ident.quote_style.is_some() {
        ident.value.clone()
    } else {
        fold(&ident.value)
    }
}

/// The folding of an unquoted name's text.
pub(crate) fn fold(text: &str) -> String {
    text.to_ascii_lowercase()
}

/// The parts of a dotted name (`schema.table`), each folded.
pub(crate) fn object_parts(name: &ObjectName) -> Vec<String> {
    name.0
        .iter()
        .map(|part| match part.as_ident() {
            Some(ident) => ident_name(ident),
            None => part.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ascii_letters_fold() {
        assert_eq!(ident_name(&Ident::new("ÄTab_X")), "Ätab_x");
        assert_eq!(ident_name(&Ident::with_quote('"', "ÄTab")), "ÄTab");
    }
}
