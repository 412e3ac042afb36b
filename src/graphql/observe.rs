//! Counts every root field's outcome, and the field errors it answered, in the metrics.
//! Labels are the schema's own field names and roster's codes: a document naming an unknown
//! field never gets this far (validation refuses it), so no label is client-chosen.

use std::sync::Arc;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextResolve, ResolveInfo,
};
use async_graphql::{ServerResult, Value};

use crate::metrics::Metrics;

pub struct Observe;

impl ExtensionFactory for Observe {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(Observe)
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for Observe {
    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<Value>> {
        if info.path_node.parent.is_some() || info.name.starts_with("__") {
            return next.run(ctx, info).await;
        }
        let name = info.name;
        let result = next.run(ctx, info).await;
        if let Some(metrics) = ctx.data_opt::<Metrics>() {
            match &result {
                Ok(_) => metrics.operation(name, "ok"),
                Err(e) => {
                    let ext = e.extensions.as_ref();
                    let code = ext
                        .and_then(|x| x.get("code"))
                        .and_then(|c| match c {
                            Value::String(s) => Some(s.as_str()),
                            _ => None,
                        })
                        .unwrap_or(crate::error::codes::INTERNAL_SERVER_ERROR);
                    metrics.operation(name, code);
                    if let Some(Value::List(fields)) = ext.and_then(|x| x.get("fields")) {
                        for f in fields {
                            if let Value::Object(f) = f
                                && let (Some(Value::String(field)), Some(Value::String(code))) =
                                    (f.get("field"), f.get("code"))
                            {
                                metrics.field_error(field, code);
                            }
                        }
                    }
                }
            }
        }
        result
    }
}
