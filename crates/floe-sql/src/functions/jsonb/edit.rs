//! The functions that make a new `jsonb` value from an old one: `||`, `-`, `#-`, `jsonb_set`,
//! `jsonb_insert` and `jsonb_strip_nulls`, with PostgreSQL's rules for paths (an array step
//! must be an integer, negative from the end; a missing key is added only at the path's end).

use datafusion::common::Result as DfResult;

use super::invalid;
use super::value::{quoted, Jsonb, Raw};
use crate::error::{sqlstate, SqlError};

/// `a || b`: objects merge (the right one's keys win), anything else concatenates as arrays
/// (a scalar or an object counting as a one-element array).
pub(super) fn concat(a: Jsonb, b: Jsonb) -> Jsonb {
    match (a, b) {
        (Jsonb::Object(mut left), Jsonb::Object(right)) => {
            left.extend(right);
            Jsonb::object(left)
        }
        (a, b) => {
            let mut items = into_items(a);
            items.extend(into_items(b));
            Jsonb::Array(items)
        }
    }
}

fn into_items(v: Jsonb) -> Vec<Jsonb> {
    match v {
        Jsonb::Array(items) => items,
        other => vec![other],
    }
}

fn delete_from_scalar() -> datafusion::error::DataFusionError {
    invalid("cannot delete from scalar")
}

/// `value - index`.
pub(super) fn delete_index(value: Jsonb, index: i64) -> DfResult<Jsonb> {
    match value {
        Jsonb::Array(mut items) => {
            let len = items.len() as i64;
            let i = if index < 0 { len + index } else { index };
            if (0..len).contains(&i) {
                items.remove(i as usize);
            }
            Ok(Jsonb::Array(items))
        }
        Jsonb::Object(_) => Err(invalid("cannot delete from object using integer index")),
        _ => Err(delete_from_scalar()),
    }
}

/// `value - key` and `value - keys`: members of an object, string elements of an array.
pub(super) fn delete_keys(value: Jsonb, keys: &[String]) -> DfResult<Jsonb> {
    match value {
        Jsonb::Object(mut members) => {
            members.retain(|(k, _)| !keys.contains(k));
            Ok(Jsonb::Object(members))
        }
        Jsonb::Array(mut items) => {
            items.retain(|i| !matches!(i, Jsonb::String(s) if keys.contains(s)));
            Ok(Jsonb::Array(items))
        }
        _ => Err(delete_from_scalar()),
    }
}

/// What a path edit does at the path's end.
#[derive(Clone, Copy, PartialEq)]
enum Edit {
    /// `jsonb_set`: replace, or add when `create` and missing.
    Set { create: bool },
    /// `jsonb_insert`: add before (or after) an element; add a missing key.
    Insert { after: bool },
    /// `#-`.
    Delete,
}

/// `value #- path`.
pub(super) fn delete_path(value: Jsonb, path: &[String]) -> DfResult<Jsonb> {
    if value.is_scalar() {
        return Err(invalid("cannot delete path in scalar"));
    }
    edit_root(value, path, None, Edit::Delete)
}

/// `jsonb_set(target, path, new, create_if_missing)`.
pub(super) fn set(target: Jsonb, path: &[String], new: Jsonb, create: bool) -> DfResult<Jsonb> {
    if target.is_scalar() {
        return Err(invalid("cannot set path in scalar"));
    }
    edit_root(target, path, Some(new), Edit::Set { create })
}

/// `jsonb_insert(target, path, new, insert_after)`.
pub(super) fn insert(target: Jsonb, path: &[String], new: Jsonb, after: bool) -> DfResult<Jsonb> {
    if target.is_scalar() {
        return Err(invalid("cannot set path in scalar"));
    }
    edit_root(target, path, Some(new), Edit::Insert { after })
}

fn edit_root(mut value: Jsonb, path: &[String], new: Option<Jsonb>, edit: Edit) -> DfResult<Jsonb> {
    if path.is_empty() {
        return Ok(value);
    }
    let mut new = new;
    edit_at(&mut value, path, 0, &mut new, edit)?;
    Ok(value)
}

fn edit_at(
    value: &mut Jsonb,
    path: &[String],
    level: usize,
    new: &mut Option<Jsonb>,
    edit: Edit,
) -> DfResult<()> {
    let last = level + 1 == path.len();
    let step = &path[level];
    match value {
        Jsonb::Object(members) => {
            let found = members.iter().position(|(k, _)| k == step);
            match (found, last) {
                (Some(i), false) => edit_at(&mut members[i].1, path, level + 1, new, edit)?,
                (Some(i), true) => match edit {
                    Edit::Set { .. } => {
                        if let Some(new) = new.take() {
                            members[i].1 = new;
                        }
                    }
                    Edit::Insert { .. } => {
                        return Err(SqlError::new(
                            sqlstate::INVALID_PARAMETER_VALUE,
                            "cannot replace existing key",
                        )
                        .with_hint("Try using the function jsonb_set to replace key value.")
                        .into())
                    }
                    Edit::Delete => {
                        members.remove(i);
                    }
                },
                (None, true)
                    if matches!(edit, Edit::Set { create: true } | Edit::Insert { .. }) =>
                {
                    if let Some(new) = new.take() {
                        let mut all = std::mem::take(members);
                        all.push((step.clone(), new));
                        *value = Jsonb::object(all);
                    }
                }
                (None, _) => {}
            }
        }
        Jsonb::Array(items) => {
            let Ok(index) = step.trim().parse::<i64>() else {
                return Err(SqlError::new(
                    sqlstate::INVALID_TEXT_REPRESENTATION,
                    format!(
                        "path element at position {} is not an integer: \"{step}\"",
                        level + 1
                    ),
                )
                .into());
            };
            let len = items.len() as i64;
            let i = if index < 0 { len + index } else { index };
            if (0..len).contains(&i) {
                let i = i as usize;
                if !last {
                    return edit_at(&mut items[i], path, level + 1, new, edit);
                }
                match edit {
                    Edit::Set { .. } => {
                        if let Some(new) = new.take() {
                            items[i] = new;
                        }
                    }
                    Edit::Insert { after } => {
                        if let Some(new) = new.take() {
                            items.insert(if after { i + 1 } else { i }, new);
                        }
                    }
                    Edit::Delete => {
                        items.remove(i);
                    }
                }
            } else if last && matches!(edit, Edit::Set { create: true } | Edit::Insert { .. }) {
                if let Some(new) = new.take() {
                    if i < 0 {
                        items.insert(0, new);
                    } else {
                        items.push(new);
                    }
                }
            }
        }
        // A scalar in the middle of the path: nothing to follow, nothing changes.
        _ => {}
    }
    Ok(())
}

/// `jsonb_strip_nulls`: object members whose value is null go, at every level.
pub(super) fn strip_nulls(value: Jsonb) -> Jsonb {
    match value {
        Jsonb::Object(members) => Jsonb::Object(
            members
                .into_iter()
                .filter(|(_, v)| *v != Jsonb::Null)
                .map(|(k, v)| (k, strip_nulls(v)))
                .collect(),
        ),
        Jsonb::Array(items) => Jsonb::Array(items.into_iter().map(strip_nulls).collect()),
        other => other,
    }
}

/// `json_strip_nulls`: the same on `json` text, printed without white space.
pub(super) fn strip_json_nulls(value: &Raw<'_>) -> String {
    fn write(value: &Raw<'_>, out: &mut String) {
        match value {
            Raw::Object(members, _) => {
                out.push('{');
                let mut first = true;
                for (key, v) in members {
                    if matches!(v, Raw::Null) {
                        continue;
                    }
                    if !first {
                        out.push(',');
                    }
                    first = false;
                    out.push_str(&quoted(key.as_deref().unwrap_or("\\u0000")));
                    out.push(':');
                    write(v, out);
                }
                out.push('}');
            }
            Raw::Array(items, _) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(item, out);
                }
                out.push(']');
            }
            scalar => out.push_str(scalar.text()),
        }
    }
    let mut out = String::new();
    write(value, &mut out);
    out
}
