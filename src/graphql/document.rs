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
    BaseType, DocumentOperations, ExecutableDocument, OperationType, Selection, SelectionSet,
    ServiceDocument, Type, TypeKind, TypeSystemDefinition,
};
use async_graphql::parser::{Pos, Positioned};
use async_graphql::{Name, ServerError, Value as ConstValue, Variables};
use async_graphql_value::Value;

use crate::error::codes;

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

type Operation = Positioned<async_graphql::parser::types::OperationDefinition>;

fn select<'a>(doc: &'a ExecutableDocument, name: Option<&str>) -> Option<&'a Operation> {
    match (&doc.operations, name) {
        (DocumentOperations::Single(op), None) => Some(op),
        (DocumentOperations::Single(_), Some(_)) => None,
        (DocumentOperations::Multiple(ops), Some(name)) => ops.get(name),
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => ops.values().next(),
        (DocumentOperations::Multiple(_), None) => None,
    }
}

fn invalid(message: String, pos: Option<Pos>) -> ServerError {
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

/// Counts GraphQL lexical tokens, stopping as soon as `limit` is passed. Linear and
/// allocation-free; punctuators, names, numbers and strings each count one, as in graphql-js.
pub fn count_tokens(text: &str, limit: usize) -> usize {
    let b = text.as_bytes();
    let (mut i, mut n) = (0, 0);
    while i < b.len() && n <= limit {
        match b[i] {
            b' ' | b'\t' | b'\n' | b'\r' | b',' => i += 1,
            b'#' => {
                while i < b.len() && b[i] != b'\n' && b[i] != b'\r' {
                    i += 1;
                }
            }
            b'"' if b[i..].starts_with(b"\"\"\"") => {
                i += 3;
                while i < b.len() && !b[i..].starts_with(b"\"\"\"") {
                    i += if b[i..].starts_with(b"\\\"\"\"") {
                        4
                    } else {
                        1
                    };
                }
                i += 3;
                n += 1;
            }
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' && b[i] != b'\n' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
                n += 1;
            }
            b'.' if b[i..].starts_with(b"...") => {
                i += 3;
                n += 1;
            }
            c if c == b'_' || c.is_ascii_alphabetic() => {
                i += 1;
                while i < b.len() && (b[i] == b'_' || b[i].is_ascii_alphanumeric()) {
                    i += 1;
                }
                n += 1;
            }
            c if c == b'-' || c.is_ascii_digit() => {
                // IntValue / FloatValue: -?digits (.digits)? ([eE][+-]?digits)?
                i += 1;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                if i + 1 < b.len() && b[i] == b'.' && b[i + 1].is_ascii_digit() {
                    i += 1;
                    while i < b.len() && b[i].is_ascii_digit() {
                        i += 1;
                    }
                }
                if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
                    i += 1;
                    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
                        i += 1;
                    }
                    while i < b.len() && b[i].is_ascii_digit() {
                        i += 1;
                    }
                }
                n += 1;
            }
            _ => {
                // Punctuators, and anything else (the parser will refuse it): one each.
                i += 1;
                n += 1;
            }
        }
    }
    n
}

fn count_aliases(doc: &ExecutableDocument) -> usize {
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
struct FragmentSizes<'a> {
    doc: &'a ExecutableDocument,
    /// `None` while a fragment is being computed: meeting it again is a cycle.
    memo: HashMap<&'a Name, Option<usize>>,
}

impl<'a> FragmentSizes<'a> {
    fn new(doc: &'a ExecutableDocument) -> Self {
        Self {
            doc,
            memo: HashMap::new(),
        }
    }

    fn of_set(&mut self, set: &'a SelectionSet) -> Result<usize, ServerError> {
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
fn introspection_depth(
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

/// What the SDL says about types, for checking argument values.
#[derive(Default)]
struct TypeIndex {
    /// Object type → field → argument → type.
    objects: HashMap<String, HashMap<String, ObjectField>>,
    /// Input object → field → (type, has a default).
    inputs: HashMap<String, Vec<(String, Type, bool)>>,
    enums: HashMap<String, HashSet<String>>,
    query: String,
    mutation: String,
}

struct ObjectField {
    arguments: HashMap<String, Type>,
    /// The named type the field returns (lists and non-null stripped).
    returns: String,
}

fn named(ty: &Type) -> &str {
    match &ty.base {
        BaseType::Named(n) => n.as_str(),
        BaseType::List(inner) => named(inner),
    }
}

impl TypeIndex {
    fn from_sdl(sdl: &str) -> Self {
        let mut index = TypeIndex {
            query: "Query".into(),
            mutation: "Mutation".into(),
            ..Default::default()
        };
        // The SDL is our own schema's: it always parses. Were it not to, every argument would
        // still be checked by async-graphql, and the no-echo net in the HTTP layer remains.
        let Ok(ServiceDocument { definitions }) = async_graphql::parser::parse_schema(sdl) else {
            return index;
        };
        for definition in definitions {
            match definition {
                TypeSystemDefinition::Schema(s) => {
                    if let Some(q) = &s.node.query {
                        index.query = q.node.to_string();
                    }
                    if let Some(m) = &s.node.mutation {
                        index.mutation = m.node.to_string();
                    }
                }
                TypeSystemDefinition::Type(t) => {
                    let name = t.node.name.node.to_string();
                    match t.node.kind {
                        TypeKind::Object(o) => {
                            let fields = o
                                .fields
                                .into_iter()
                                .map(|f| {
                                    let arguments = f
                                        .node
                                        .arguments
                                        .into_iter()
                                        .map(|a| (a.node.name.node.to_string(), a.node.ty.node))
                                        .collect();
                                    let returns = named(&f.node.ty.node).to_owned();
                                    (
                                        f.node.name.node.to_string(),
                                        ObjectField { arguments, returns },
                                    )
                                })
                                .collect();
                            index.objects.insert(name, fields);
                        }
                        TypeKind::InputObject(i) => {
                            let fields = i
                                .fields
                                .into_iter()
                                .map(|f| {
                                    (
                                        f.node.name.node.to_string(),
                                        f.node.ty.node,
                                        f.node.default_value.is_some(),
                                    )
                                })
                                .collect();
                            index.inputs.insert(name, fields);
                        }
                        TypeKind::Enum(e) => {
                            let values = e
                                .values
                                .into_iter()
                                .map(|v| v.node.value.node.to_string())
                                .collect();
                            index.enums.insert(name, values);
                        }
                        _ => {}
                    }
                }
                TypeSystemDefinition::Directive(_) => {}
            }
        }
        index
    }

    fn check_operation(
        &self,
        doc: &ExecutableDocument,
        op: &Operation,
        variables: &Variables,
    ) -> Result<(), ServerError> {
        let root = match op.node.ty {
            OperationType::Query => self.query.as_str(),
            OperationType::Mutation => self.mutation.as_str(),
            OperationType::Subscription => return Ok(()),
        };
        // A variable's value is what the request sent, else the definition's default.
        let mut values: HashMap<&str, ConstValue> = HashMap::new();
        for def in &op.node.variable_definitions {
            let name = def.node.name.node.as_str();
            let value = match variables.get(name) {
                Some(v) => Some(v.clone()),
                None => def.node.default_value.as_ref().map(|d| d.node.clone()),
            };
            if let Some(value) = value {
                values.insert(name, value);
            }
        }
        let mut seen = HashSet::new();
        self.check_set(doc, &op.node.selection_set.node, root, &values, &mut seen)
    }

    fn check_set<'d>(
        &self,
        doc: &'d ExecutableDocument,
        set: &'d SelectionSet,
        parent: &str,
        values: &HashMap<&str, ConstValue>,
        seen_fragments: &mut HashSet<&'d Name>,
    ) -> Result<(), ServerError> {
        for selection in &set.items {
            match &selection.node {
                Selection::Field(f) => {
                    let name = f.node.name.node.as_str();
                    // Introspection types are async-graphql's own; it checks their arguments.
                    let Some(field) = self.objects.get(parent).and_then(|fields| fields.get(name))
                    else {
                        continue;
                    };
                    for (arg_name, arg_value) in &f.node.arguments {
                        let Some(ty) = field.arguments.get(arg_name.node.as_str()) else {
                            continue; // unknown argument: async-graphql reports it
                        };
                        let Some(value) = substitute(&arg_value.node, values) else {
                            continue; // an undefined variable: async-graphql reports it
                        };
                        if let Err(problem) = self.check_value(ty, &value, 0) {
                            return Err(invalid(
                                format!(
                                    "invalid value for argument \"{}\" of field \"{name}\": {problem}",
                                    arg_name.node
                                ),
                                Some(arg_name.pos),
                            ));
                        }
                    }
                    self.check_set(
                        doc,
                        &f.node.selection_set.node,
                        &field.returns,
                        values,
                        seen_fragments,
                    )?;
                }
                Selection::InlineFragment(f) => {
                    let on = f
                        .node
                        .type_condition
                        .as_ref()
                        .map_or(parent, |c| c.node.on.node.as_str());
                    self.check_set(doc, &f.node.selection_set.node, on, values, seen_fragments)?;
                }
                Selection::FragmentSpread(s) => {
                    // A fragment's arguments do not depend on where it is spread: check once.
                    let Some((name, fragment)) =
                        doc.fragments.get_key_value(&s.node.fragment_name.node)
                    else {
                        continue;
                    };
                    if seen_fragments.insert(name) {
                        let on = fragment.node.type_condition.node.on.node.as_str();
                        self.check_set(
                            doc,
                            &fragment.node.selection_set.node,
                            on,
                            values,
                            seen_fragments,
                        )?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Checks `value` against `ty` the way GraphQL's input coercion does. The problem is
    /// described by type only: the value itself may be a secret.
    fn check_value(&self, ty: &Type, value: &ConstValue, depth: usize) -> Result<(), String> {
        if depth > 64 {
            return Err("the value is nested too deeply".into());
        }
        if matches!(value, ConstValue::Null) {
            return if ty.nullable {
                Ok(())
            } else {
                Err(format!("expected a non-null value of type {ty}"))
            };
        }
        match &ty.base {
            BaseType::List(inner) => match value {
                ConstValue::List(items) => items
                    .iter()
                    .try_for_each(|item| self.check_value(inner, item, depth + 1)),
                // Input coercion: a single value stands for a list of one.
                single => self.check_value(inner, single, depth + 1),
            },
            BaseType::Named(name) => self.check_named(name.as_str(), value, depth),
        }
    }

    fn check_named(&self, name: &str, value: &ConstValue, depth: usize) -> Result<(), String> {
        let ok = match name {
            "String" => matches!(value, ConstValue::String(_)),
            "ID" => {
                matches!(value, ConstValue::String(_))
                    || matches!(value, ConstValue::Number(n) if n.is_i64() || n.is_u64())
            }
            "Int" => matches!(value, ConstValue::Number(n)
                if n.as_i64().is_some_and(|i| i32::try_from(i).is_ok())),
            "Float" => matches!(value, ConstValue::Number(_)),
            "Boolean" => matches!(value, ConstValue::Boolean(_)),
            _ => {
                if let Some(fields) = self.inputs.get(name) {
                    let ConstValue::Object(map) = value else {
                        return Err(format!("expected an object of type {name}"));
                    };
                    for key in map.keys() {
                        if !fields.iter().any(|(f, _, _)| f == key.as_str()) {
                            return Err(format!("{name} has no field \"{key}\""));
                        }
                    }
                    for (field, ty, has_default) in fields {
                        match map.get(field.as_str()) {
                            Some(v) => self
                                .check_value(ty, v, depth + 1)
                                .map_err(|p| format!("field \"{field}\": {p}"))?,
                            None if !ty.nullable && !has_default => {
                                return Err(format!("{name}.{field} is required"));
                            }
                            None => {}
                        }
                    }
                    return Ok(());
                }
                if let Some(values) = self.enums.get(name) {
                    matches!(value, ConstValue::Enum(v) if values.contains(v.as_str()))
                        || matches!(value, ConstValue::String(v) if values.contains(v.as_str()))
                } else {
                    // A custom scalar (DateTime…): it parses strings, never lists or objects.
                    !matches!(value, ConstValue::List(_) | ConstValue::Object(_))
                }
            }
        };
        if ok {
            Ok(())
        } else {
            Err(format!("expected a value of type {name}"))
        }
    }
}

/// The argument's value with variables replaced; `None` if it uses an undefined variable.
fn substitute(value: &Value, values: &HashMap<&str, ConstValue>) -> Option<ConstValue> {
    value
        .clone()
        .into_const_with(|name| values.get(name.as_str()).cloned().ok_or(()))
        .ok()
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
