//! Checks on a GraphQL document that run **before** async-graphql sees it.
//!
//! async-graphql bounds nesting depth, not fan-out: a fragment that spreads the next one twice,
//! 24 levels deep, is a 1 KB document that expands to 2^24 fields, and async-graphql's own
//! validation walks (recursion depth, complexity) re-expand fragments without memoization, so
//! they explode before any limit of theirs can answer. Everything here is linear in the
//! document's size: tokens are counted before parsing, fragment costs are memoized, and
//! arithmetic saturates. Only a document that passes is handed to the schema, already parsed.
//!
//! The second job is argument values. async-graphql 7.2 accepts a list or a scalar where an
//! input object is expected (its validator returns "valid" for any non-object value of an
//! input-object type) and fails later, during execution, with an error that prints the whole
//! value — a password included. [`Checker`] validates every argument value of the selected
//! operation, variables substituted, against the schema's SDL, and reports problems without
//! echoing the value.

use std::collections::{HashMap, HashSet};

use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, OperationType, Selection, SelectionSet,
};
use async_graphql::parser::{Pos, Positioned};
use async_graphql::{Name, ServerError, Variables};

use crate::error::codes;
/// Fan-out: aliases, fragment sizes (memoized), introspection nesting.
mod fanout;
/// Counting lexical tokens before anything is parsed.
mod lexer;
/// Argument values against the schema's SDL, variables substituted.
mod values;

use fanout::{FragmentSizes, count_aliases, introspection_depth};
pub use lexer::count_tokens;
use values::TypeIndex;

/// Per-document limits (`--max-tokens`, `--max-fields`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DocumentLimits {
    /// Lexical tokens in the document text, counted before parsing.
    pub max_tokens: usize,
    /// Selections (fields, fragment spreads, inline fragments) after every fragment is
    /// expanded where it is spread.
    pub max_fields: usize,
    /// Fields with an alias, in the document as written.
    pub max_aliases: usize,
    /// Fragment definitions.
    pub max_fragments: usize,
    /// Operation definitions.
    pub max_operations: usize,
    /// Variable definitions, over all operations.
    pub max_variables: usize,
}

/// How many of `fields`, `inputFields`, `interfaces` and `possibleTypes` may nest inside one
/// another below `__schema`/`__type` (graphql-js's `MaxIntrospectionDepthRule` uses 3). Each
/// level multiplies the answer by the size of the schema, so aliasing and nesting them is
/// the classic way to make a small introspection query return megabytes; GraphiQL needs 1.
pub const MAX_INTROSPECTION_LIST_DEPTH: usize = 3;

/// A document that passed every check, parsed once.
pub struct Prepared {
    pub document: ExecutableDocument,
    /// Whether the operation that would run is a mutation (GET refuses those).
    pub is_mutation: bool,
}

/// The checks, with the schema's input types read once from its SDL.
#[derive(Clone)]
pub struct Checker {
    limits: DocumentLimits,
    types: std::sync::Arc<TypeIndex>,
}

impl Checker {
    /// `sdl` is the schema's own SDL (`Schema::sdl()`), read once at start-up.
    pub fn new(limits: DocumentLimits, sdl: &str) -> Self {
        Self {
            limits,
            types: std::sync::Arc::new(TypeIndex::from_sdl(sdl)),
        }
    }

    /// Counts, parses and checks `query`. Errors carry `extensions.code`
    /// (`GRAPHQL_PARSE_FAILED` or `GRAPHQL_VALIDATION_FAILED`) and never quote the document.
    pub fn prepare(
        &self,
        query: &str,
        operation_name: Option<&str>,
        variables: &Variables,
    ) -> Result<Prepared, ServerError> {
        let l = &self.limits;
        if count_tokens(query, l.max_tokens) > l.max_tokens {
            return Err(invalid(
                format!("the document has more than {} tokens", l.max_tokens),
                None,
            ));
        }
        let document = async_graphql::parser::parse_query(query).map_err(parse_error)?;
        let operations: Vec<_> = document.operations.iter().collect();
        if operations.len() > l.max_operations {
            return Err(invalid(
                format!("the document has more than {} operations", l.max_operations),
                None,
            ));
        }
        if document.fragments.len() > l.max_fragments {
            return Err(invalid(
                format!("the document has more than {} fragments", l.max_fragments),
                None,
            ));
        }
        let variables_defined: usize = operations
            .iter()
            .map(|(_, op)| op.node.variable_definitions.len())
            .sum();
        if variables_defined > l.max_variables {
            return Err(invalid(
                format!(
                    "the document defines more than {} variables",
                    l.max_variables
                ),
                None,
            ));
        }
        let aliases = count_aliases(&document);
        if aliases > l.max_aliases {
            return Err(invalid(
                format!("the document uses more than {} aliases", l.max_aliases),
                None,
            ));
        }
        let mut sizes = FragmentSizes::new(&document);
        for (_, op) in &operations {
            let size = sizes.of_set(&op.node.selection_set.node)?;
            if size > l.max_fields {
                return Err(invalid(
                    format!(
                        "the operation has more than {} selections (fields and fragments) once its fragments are expanded",
                        l.max_fields
                    ),
                    Some(op.pos),
                ));
            }
        }
        // From here on, any walk that expands fragments visits at most `max_fields` nodes.
        for (_, op) in &operations {
            introspection_depth(&document, &op.node.selection_set.node, false, 0)?;
        }
        let selected = select(&document, operation_name);
        let is_mutation = match (&document.operations, operation_name) {
            (DocumentOperations::Multiple(ops), None) if ops.len() > 1 => {
                // Ambiguous: it will not execute, but GET must not try.
                ops.values().any(|op| op.node.ty == OperationType::Mutation)
            }
            _ => selected.is_some_and(|op| op.node.ty == OperationType::Mutation),
        };
        if let Some(op) = selected {
            self.types.check_operation(&document, op, variables)?;
        }
        drop(operations);
        Ok(Prepared {
            document: narrow(document, operation_name),
            is_mutation,
        })
    }
}

/// Keeps only the operation that will run, and the fragments it reaches. async-graphql
/// validates (and sums the complexity and depth of) every operation of a document, so a
/// document holding several — GraphiQL's example has `register`, `login` and
/// `changePassword`, 1000 points each — would be refused as too complex whichever one is
/// run. The others never execute; they have passed every limit above already.
fn narrow(mut document: ExecutableDocument, name: Option<&str>) -> ExecutableDocument {
    let (Some(name), DocumentOperations::Multiple(ops)) = (name, &mut document.operations) else {
        return document;
    };
    if ops.len() < 2 {
        return document;
    }
    let Some((key, op)) = ops.remove_entry(name) else {
        return document;
    };
    let mut reached: HashSet<Name> = HashSet::new();
    let mut pending: Vec<&SelectionSet> = vec![&op.node.selection_set.node];
    while let Some(set) = pending.pop() {
        for selection in &set.items {
            match &selection.node {
                Selection::Field(f) => pending.push(&f.node.selection_set.node),
                Selection::InlineFragment(f) => pending.push(&f.node.selection_set.node),
                Selection::FragmentSpread(s) => {
                    let fragment = &s.node.fragment_name.node;
                    if reached.insert(fragment.clone())
                        && let Some(definition) = document.fragments.get(fragment)
                    {
                        pending.push(&definition.node.selection_set.node);
                    }
                }
            }
        }
    }
    document.fragments.retain(|name, _| reached.contains(name));
    let mut only = HashMap::new();
    only.insert(key, op);
    document.operations = DocumentOperations::Multiple(only);
    document
}

pub(super) type Operation = Positioned<async_graphql::parser::types::OperationDefinition>;

fn select<'a>(doc: &'a ExecutableDocument, name: Option<&str>) -> Option<&'a Operation> {
    match (&doc.operations, name) {
        (DocumentOperations::Single(op), None) => Some(op),
        (DocumentOperations::Single(_), Some(_)) => None,
        (DocumentOperations::Multiple(ops), Some(name)) => ops.get(name),
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => ops.values().next(),
        (DocumentOperations::Multiple(_), None) => None,
    }
}

pub(super) fn invalid(message: String, pos: Option<Pos>) -> ServerError {
    let mut e = ServerError::new(message, pos);
    e.extensions
        .get_or_insert_with(Default::default)
        .set("code", codes::GRAPHQL_VALIDATION_FAILED);
    e
}

/// The parser's syntax messages quote the offending line of the document (which may hold a
/// password); say only what went wrong and where.
fn parse_error(e: async_graphql::parser::Error) -> ServerError {
    use async_graphql::parser::Error as E;
    let pos = e.positions().next();
    let message = match &e {
        E::Syntax { start, .. } => {
            format!(
                "syntax error at line {}, column {}",
                start.line, start.column
            )
        }
        E::RecursionLimitExceeded => "the document is nested too deeply".to_owned(),
        E::MultipleOperations { .. } => {
            "an anonymous operation must be the only operation in the document".to_owned()
        }
        E::OperationDuplicated { .. } => "an operation name is defined twice".to_owned(),
        E::FragmentDuplicated { .. } => "a fragment name is defined twice".to_owned(),
        E::MissingOperation => "the document contains no operation".to_owned(),
        _ => "the document could not be parsed".to_owned(),
    };
    let mut e = ServerError::new(message, pos);
    e.extensions
        .get_or_insert_with(Default::default)
        .set("code", codes::GRAPHQL_PARSE_FAILED);
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_counted_like_a_lexer() {
        let cases = [
            ("{ a }", 3),
            ("query Q($v: Int = 1) { a(x: $v) @skip(if: true) }", 26),
            ("{ a(s: \"x y { } \\\" z\") }", 8),
            ("{ a(s: \"\"\"block \" \"\" { }\"\"\") }", 8),
            ("# a comment { }\n{ a }", 3),
            ("{ ...F } fragment F on Q { a }", 11),
            ("{ a(f: -1.5e3) }", 8),
            ("{a...F...F...F}", 9),
            ("{ a.b }", 5),
        ];
        for (text, want) in cases {
            assert_eq!(count_tokens(text, 1000), want, "{text}");
        }
        // Stops early: cost bounded by the limit, not the text.
        assert_eq!(count_tokens(&"{ a } ".repeat(10_000), 10), 11);
    }

    fn checker() -> Checker {
        let limits = DocumentLimits {
            max_tokens: 1000,
            max_fields: 500,
            max_aliases: 15,
            max_fragments: 32,
            max_operations: 16,
            max_variables: 32,
        };
        Checker::new(limits, &crate::graphql::sdl())
    }

    /// The message of the error `doc` is refused with.
    fn refusal(doc: &str) -> String {
        checker()
            .prepare(doc, None, &Variables::default())
            .err()
            .expect("refused")
            .message
    }

    /// 30 levels of fragments, each spreading the next `width` times, ending in `end`.
    fn fan_out(width: usize, end: &str) -> String {
        let mut doc = String::from("{ ...F0 }\n");
        for i in 0..30 {
            let spreads = format!("...F{} ", i + 1).repeat(width);
            doc.push_str(&format!("fragment F{i} on Query {{ {spreads}}}\n"));
        }
        doc.push_str(&format!("fragment F30 on Query {{ {end} }}"));
        doc
    }

    #[test]
    fn fan_out_is_measured_with_memoization() {
        let doc = fan_out(2, "__typename");
        let started = std::time::Instant::now();
        let message = refusal(&doc);
        assert!(message.contains("more than 500 selections"), "{message}");
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }

    #[test]
    fn spreads_count_even_when_no_field_is_reached() {
        // Fragments made only of spreads, ending in an unknown fragment: zero fields, 3^30
        // nodes. Both the spreads and the unknown fragment must stop it.
        let message = refusal(&fan_out(3, "...Nope"));
        assert!(
            message.contains("selections") || message.contains("unknown fragment"),
            "{message}"
        );
        let message = refusal(&fan_out(3, "__typename"));
        assert!(message.contains("more than 500 selections"), "{message}");
    }

    #[test]
    fn a_fragment_cycle_is_refused_not_followed() {
        let message = refusal("{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }");
        assert!(message.contains("spreads itself"), "{message}");
    }
}
