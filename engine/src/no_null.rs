//! Optional request fields that may be left out but never sent as `null`.
//!
//! Serde reads `"ends_at": null` into `None`, the same as a missing field, yet the
//! OpenAPI document types such a field as a plain string or integer: `null` is outside
//! it. Fields marked `#[serde(default, deserialize_with = "no_null::present")]` take
//! the default only when absent; a `null` is refused as the wrong type (422 naming the
//! field), so the server and the document agree.

use serde::{Deserialize, Deserializer};

/// Reads a field that is present: its value, or an error for `null`.
pub fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct Body {
        #[serde(default, deserialize_with = "super::present")]
        n: Option<i64>,
    }

    #[test]
    fn absent_is_none_and_null_is_refused() {
        let absent: Body = serde_json::from_str("{}").expect("absent");
        assert_eq!(absent.n, None);
        let given: Body = serde_json::from_str(r#"{"n": 3}"#).expect("given");
        assert_eq!(given.n, Some(3));
        assert!(serde_json::from_str::<Body>(r#"{"n": null}"#).is_err());
    }
}
