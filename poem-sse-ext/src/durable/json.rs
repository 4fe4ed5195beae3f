//! JSON mode: a body is validated, and a top-level array is flattened by exactly one level into
//! messages, each kept as the exact text the client sent (no re-serialization, so numbers and
//! strings are stored byte for byte).

use bytes::Bytes;

/// Why a JSON body was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum JsonError {
    /// Not one valid JSON text.
    #[error("the body is not valid JSON: {0}")]
    Invalid(String),
    /// `[]` on an append: no message, most likely a client bug.
    #[error("an empty JSON array appends nothing: send at least one message")]
    EmptyArray,
}

/// Splits a JSON body into its messages: the elements of a top-level array, or the value itself.
/// `allow_empty` admits `[]` and an empty body (a create with no initial messages).
pub(crate) fn messages(body: &Bytes, allow_empty: bool) -> Result<Vec<Bytes>, JsonError> {
    if allow_empty && body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    serde_json::from_slice::<serde::de::IgnoredAny>(body)
        .map_err(|e| JsonError::Invalid(e.to_string()))?;
    let start = body
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(0);
    let end = body
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    if body.get(start) != Some(&b'[') {
        return Ok(vec![body.slice(start..end)]);
    }
    // The text is valid JSON, so a scan that tracks strings and nesting finds the top-level
    // commas; everything between them is one element.
    let inner = start + 1..end - 1;
    let mut elements = Vec::new();
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    let mut element_start = inner.start;
    for i in inner.clone() {
        let byte = body[i];
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => depth += 1,
            b']' | b'}' => depth = depth.saturating_sub(1),
            b',' if depth == 0 => {
                elements.push(trimmed(body, element_start, i));
                element_start = i + 1;
            }
            _ => {}
        }
    }
    let last = trimmed(body, element_start, inner.end);
    if !last.is_empty() {
        elements.push(last);
    }
    if elements.is_empty() && !allow_empty {
        return Err(JsonError::EmptyArray);
    }
    Ok(elements)
}

fn trimmed(body: &Bytes, start: usize, end: usize) -> Bytes {
    let part = &body[start..end];
    let from = part
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(part.len());
    let to = part
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(from, |i| i + 1);
    body.slice(start + from..start + to)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(text: &str) -> Result<Vec<String>, JsonError> {
        messages(&Bytes::copy_from_slice(text.as_bytes()), false).map(|m| {
            m.iter()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .collect()
        })
    }

    #[test]
    fn flattens_exactly_one_level() {
        assert_eq!(
            split(r#"{"event": "created"}"#).unwrap(),
            [r#"{"event": "created"}"#]
        );
        assert_eq!(
            split(r#" [{"a":1}, {"b":"x,]}"}] "#).unwrap(),
            [r#"{"a":1}"#, r#"{"b":"x,]}"}"#]
        );
        assert_eq!(split("[[1,2], [3,4]]").unwrap(), ["[1,2]", "[3,4]"]);
        assert_eq!(split("[[[1,2,3]]]").unwrap(), ["[[1,2,3]]"]);
        assert_eq!(split(r#"["a\"],b", 2]"#).unwrap(), [r#""a\"],b""#, "2"]);
        assert_eq!(split("42").unwrap(), ["42"]);
    }

    #[test]
    fn refuses_invalid_and_empty() {
        assert_eq!(split("[]"), Err(JsonError::EmptyArray));
        assert_eq!(split(" [ ] "), Err(JsonError::EmptyArray));
        assert!(matches!(
            split("{ invalid json }"),
            Err(JsonError::Invalid(_))
        ));
        assert!(matches!(split("[1,]"), Err(JsonError::Invalid(_))));
        assert!(matches!(split("1 2"), Err(JsonError::Invalid(_))));
        assert!(matches!(split(""), Err(JsonError::Invalid(_))));
        assert_eq!(messages(&Bytes::from_static(b"[]"), true), Ok(Vec::new()));
        assert_eq!(messages(&Bytes::new(), true), Ok(Vec::new()));
    }
}
