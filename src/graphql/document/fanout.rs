//! How wide a document is once fragments are expanded, measured with memoization.

use std::collections::HashMap;

use async_graphql::parser::Pos;
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{Name, ServerError};

use super::{MAX_INTROSPECTION_LIST_DEPTH, invalid};

pub(super) fn count_aliases(doc: &ExecutableDocument) -> usize {
    fn walk(set: &SelectionSet) -> usize {
        set.items
            .iter()
            .map(|s| match &s.node {
                Selection::Field(f) => {
                    usize::from(f.node.alias.is_some()) + walk(&f.node.selection_set.node)
                }
                Selection::InlineFragment(f) => walk(&f.node.selection_set.node),
                Selection::FragmentSpread(_) => 0,
            })
            .fold(0, usize::saturating_add)
    }
    let ops = doc
        .operations
        .iter()
        .map(|(_, op)| walk(&op.node.selection_set.node));
    let frags = doc
        .fragments
        .values()
        .map(|f| walk(&f.node.selection_set.node));
    ops.chain(frags).fold(0, usize::saturating_add)
}

/// The expanded size of selection sets — fields, fragment spreads and inline fragments, each
/// fragment computed once. Every later walk that expands fragments (ours, and async-graphql's
/// depth, recursion and complexity checks) visits at most this many nodes.
pub(super) struct FragmentSizes<'a> {
    doc: &'a ExecutableDocument,
    /// `None` while a fragment is being computed: meeting it again is a cycle.
    memo: HashMap<&'a Name, Option<usize>>,
}

impl<'a> FragmentSizes<'a> {
    pub(super) fn new(doc: &'a ExecutableDocument) -> Self {
        Self {
            doc,
            memo: HashMap::new(),
        }
    }

    pub(super) fn of_set(&mut self, set: &'a SelectionSet) -> Result<usize, ServerError> {
        let mut total: usize = 0;
        for selection in &set.items {
            let size = match &selection.node {
                Selection::Field(f) => {
                    1usize.saturating_add(self.of_set(&f.node.selection_set.node)?)
                }
                Selection::InlineFragment(f) => self.of_set(&f.node.selection_set.node)?,
                Selection::FragmentSpread(s) => {
                    self.of_fragment(&s.node.fragment_name.node, s.pos)?
                }
            };
            total = total.saturating_add(size);
        }
        Ok(total)
    }

    fn of_fragment(&mut self, name: &'a Name, pos: Pos) -> Result<usize, ServerError> {
        match self.memo.get(name) {
            Some(Some(size)) => return Ok(*size),
            Some(None) => {
                return Err(invalid(
                    format!("fragment \"{name}\" spreads itself"),
                    Some(pos),
                ));
            }
            None => {}
        }
        let Some(fragment) = self.doc.fragments.get(name) else {
            return Err(invalid(format!("unknown fragment \"{name}\""), Some(pos)));
        };
        self.memo.insert(name, None);
        let size = self.of_set(&fragment.node.selection_set.node)?;
        self.memo.insert(name, Some(size));
        Ok(size)
    }
}

/// Refuses introspection lists nested more than [`MAX_INTROSPECTION_LIST_DEPTH`] deep.
/// Expands fragments without memoization: call only on documents within `max_fields`.
pub(super) fn introspection_depth(
    doc: &ExecutableDocument,
    set: &SelectionSet,
    inside: bool,
    depth: usize,
) -> Result<(), ServerError> {
    for selection in &set.items {
        match &selection.node {
            Selection::Field(f) => {
                let name = f.node.name.node.as_str();
                let inside = inside || name == "__schema" || name == "__type";
                let depth = if inside
                    && matches!(
                        name,
                        "fields" | "inputFields" | "interfaces" | "possibleTypes"
                    ) {
                    depth + 1
                } else {
                    depth
                };
                if depth > MAX_INTROSPECTION_LIST_DEPTH {
                    return Err(invalid(
                        format!(
                            "introspection lists (fields, inputFields, interfaces, possibleTypes) may nest at most {MAX_INTROSPECTION_LIST_DEPTH} deep"
                        ),
                        Some(f.pos),
                    ));
                }
                introspection_depth(doc, &f.node.selection_set.node, inside, depth)?;
            }
            Selection::InlineFragment(f) => {
                introspection_depth(doc, &f.node.selection_set.node, inside, depth)?;
            }
            Selection::FragmentSpread(s) => {
                if let Some(fragment) = doc.fragments.get(&s.node.fragment_name.node) {
                    introspection_depth(doc, &fragment.node.selection_set.node, inside, depth)?;
                }
            }
        }
    }
    Ok(())
}
