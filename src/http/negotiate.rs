use axum::http::{HeaderMap, HeaderValue, header};

/// The two response media types GraphQL over HTTP defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseType {
    /// `application/graphql-response+json`: request errors get 4xx statuses.
    GraphqlResponse,
    /// `application/json`: the legacy type; well-formed requests always get 200.
    Json,
}

impl ResponseType {
    pub fn content_type(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Self::GraphqlResponse => "application/graphql-response+json; charset=utf-8",
            Self::Json => "application/json; charset=utf-8",
        })
    }
}

/// Picks the response type from `Accept`; `None` means 406.
///
/// No `Accept` header, or only wildcards (`*/*`, `application/*`), means `application/json`,
/// as the spec asks for legacy clients. Otherwise the higher q-value wins, then the more
/// specific match; `application/graphql-response+json` is chosen when the client names it.
pub fn negotiate(headers: &HeaderMap) -> Option<ResponseType> {
    let values: Vec<&str> = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    if values.iter().all(|v| v.trim().is_empty()) {
        return Some(ResponseType::Json);
    }
    let ranges: Vec<(String, f32)> = values
        .iter()
        .flat_map(|v| v.split(','))
        .filter_map(parse_range)
        .collect();
    let q_for = |media: &str| -> (f32, u8) {
        let (ty, _) = media.split_once('/').unwrap_or((media, ""));
        let mut best: Option<(u8, f32)> = None;
        for (range, q) in &ranges {
            let specificity = if range == media {
                3
            } else if range.strip_suffix("/*") == Some(ty) {
                2
            } else if range == "*/*" {
                1
            } else {
                continue;
            };
            if best.is_none_or(|(s, _)| specificity > s) {
                best = Some((specificity, *q));
            }
        }
        best.map_or((0.0, 0), |(s, q)| (q, s))
    };
    let gql = q_for("application/graphql-response+json");
    let json = q_for("application/json");
    match (gql.0 > 0.0, json.0 > 0.0) {
        (false, false) => None,
        (true, false) => Some(ResponseType::GraphqlResponse),
        (false, true) => Some(ResponseType::Json),
        // Both acceptable: q-value, then specificity; a tie goes to the legacy type, so a
        // client that only sent wildcards gets what every client understands.
        _ if gql.0 > json.0 || (gql.0 == json.0 && gql.1 > json.1) => {
            Some(ResponseType::GraphqlResponse)
        }
        _ => Some(ResponseType::Json),
    }
}

fn parse_range(item: &str) -> Option<(String, f32)> {
    let mut parts = item.split(';');
    let media = parts.next()?.trim().to_ascii_lowercase();
    if media.is_empty() {
        return None;
    }
    let mut q = 1.0;
    for param in parts {
        if let Some((k, v)) = param.split_once('=')
            && k.trim().eq_ignore_ascii_case("q")
        {
            q = v
                .trim()
                .parse::<f32>()
                .ok()
                .filter(|q| (0.0..=1.0).contains(q))?;
        }
    }
    Some((media, q))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pick(accept: Option<&str>) -> Option<ResponseType> {
        let mut h = HeaderMap::new();
        if let Some(a) = accept {
            h.insert(header::ACCEPT, a.parse().unwrap());
        }
        negotiate(&h)
    }

    #[test]
    fn accept_headers_choose_the_response_type() {
        use ResponseType::*;
        let table = [
            (None, Some(Json), "no header means legacy JSON"),
            (Some("application/json"), Some(Json), "explicit JSON"),
            (
                Some("application/graphql-response+json"),
                Some(GraphqlResponse),
                "explicit new type",
            ),
            (
                Some("application/graphql-response+json, application/json;q=0.9"),
                Some(GraphqlResponse),
                "spec's recommended client header",
            ),
            (
                Some("application/json, application/graphql-response+json;q=0.5"),
                Some(Json),
                "q-values decide",
            ),
            (
                Some("*/*"),
                Some(Json),
                "wildcards only: legacy JSON (spec SHOULD)",
            ),
            (Some("application/*"), Some(Json), "type wildcard"),
            (
                Some("application/graphql-response+json, */*"),
                Some(GraphqlResponse),
                "named wins over wildcard",
            ),
            (Some("text/html"), None, "nothing acceptable"),
            (Some("application/json;q=0"), None, "q=0 refuses"),
            (Some("text/html, */*;q=0.8"), Some(Json), "browser default"),
        ];
        for (accept, want, why) in table {
            assert_eq!(pick(accept), want, "{why}: {accept:?}");
        }
    }
}
