//! Argument values of the selected operation against the schema's SDL, without echoing them.

use std::collections::{HashMap, HashSet};

use async_graphql::parser::types::{
    BaseType, ExecutableDocument, OperationType, Selection, SelectionSet, ServiceDocument, Type,
    TypeKind, TypeSystemDefinition,
};
use async_graphql::{Name, ServerError, Value as ConstValue, Variables};
use async_graphql_value::Value;

use super::{Operation, invalid};

/// What the SDL says about types, for checking argument values.
#[derive(Default)]
pub(super) struct TypeIndex {
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
    pub(super) fn from_sdl(sdl: &str) -> Self {
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

    pub(super) fn check_operation(
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
