//! The claims of a verified token and the rules they must meet: expiry,
//! not-before, issued-at and maximum age with a leeway for clock skew,
//! issuer, audience and required claims (RFC 7519 §4.1). Kept apart from
//! the signature check so that one set of rules applies however the
//! signature was verified (in Rust or by WebCrypto).

use std::time::Duration;

use edge_core::Timestamp;
use serde_json::{Map, Value};

use crate::token::TokenError;

/// The claims of a token whose signature has been verified.
#[derive(Debug, Clone, PartialEq)]
pub struct Claims(Map<String, Value>);

impl From<Map<String, Value>> for Claims {
    /// Claims from a map; only for a payload whose signature the caller
    /// has verified (e.g. with WebCrypto over
    /// [`UnverifiedToken::signing_input`](crate::token::UnverifiedToken::signing_input)).
    fn from(map: Map<String, Value>) -> Claims {
        Claims(map)
    }
}

impl Claims {
    /// The claim `name`, if present.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }

    /// The subject (`sub`), if it is a string.
    pub fn sub(&self) -> Option<&str> {
        self.0.get("sub").and_then(Value::as_str)
    }

    /// The issuer (`iss`), if it is a string.
    pub fn iss(&self) -> Option<&str> {
        self.0.get("iss").and_then(Value::as_str)
    }

    /// The audiences (`aud` as a string or an array of strings).
    pub fn audiences(&self) -> Vec<&str> {
        match self.0.get("aud") {
            Some(Value::String(s)) => vec![s.as_str()],
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        }
    }

    /// The expiry (`exp`) as a time, if it is a non-negative number.
    pub fn expires_at(&self) -> Option<Timestamp> {
        let exp = self.0.get("exp")?.as_f64()?;
        Duration::try_from_secs_f64(exp).ok().map(Timestamp)
    }

    /// The granted scopes: `scope` (RFC 8693: space-separated, or an
    /// array of strings) followed by `scp` (the same forms), without
    /// duplicates.
    pub fn scopes(&self) -> Vec<String> {
        let mut out = Vec::new();
        for name in ["scope", "scp"] {
            for s in words(self.0.get(name)) {
                if !out.contains(&s) {
                    out.push(s);
                }
            }
        }
        out
    }

    /// The roles: `roles` as an array of strings or a space-separated
    /// string, without duplicates.
    pub fn roles(&self) -> Vec<String> {
        let mut out = Vec::new();
        for s in words(self.0.get("roles")) {
            if !out.contains(&s) {
                out.push(s);
            }
        }
        out
    }

    /// The claims as a JSON map.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }

    /// The claims as a JSON map, by value.
    pub fn into_map(self) -> Map<String, Value> {
        self.0
    }
}

/// The words of a space-separated string or the strings of an array
/// (non-string items ignored).
fn words(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::String(s)) => s.split_ascii_whitespace().map(str::to_owned).collect(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

/// What the claims of a token must meet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRules {
    /// The issuer `iss` must equal exactly, if set.
    pub issuer: Option<String>,
    /// When not empty, `aud` (a string or an array) must contain one of
    /// these. When empty the audience is not checked.
    pub audiences: Vec<String>,
    /// The clock skew allowed on `exp`, `nbf`, `iat` and the maximum age.
    pub leeway: Duration,
    /// Claims that must be present (and not `null`).
    pub required: Vec<String>,
    /// The oldest `iat` accepted: `now - iat <= max_age + leeway`; when
    /// set, `iat` is required.
    pub max_age: Option<Duration>,
    /// Whether `exp` is required (default true: no token lives forever).
    pub require_exp: bool,
}

impl Default for ClaimRules {
    fn default() -> ClaimRules {
        ClaimRules {
            issuer: None,
            audiences: Vec::new(),
            leeway: Duration::from_secs(60),
            required: Vec::new(),
            max_age: None,
            require_exp: true,
        }
    }
}

/// Checks `claims` against `rules` at `now`. Registered claims, when
/// present, must have their registered types (`exp`, `nbf`, `iat` numbers;
/// `iss`, `sub`, `jti` strings; `aud` a string or an array of strings).
/// A token is expired from `exp + leeway` on (RFC 7519 §4.1.4: "on or
/// after"), not yet valid before `nbf - leeway`, and issued in the future
/// when `iat` is after `now + leeway`.
pub fn check(claims: &Claims, rules: &ClaimRules, now: Timestamp) -> Result<(), TokenError> {
    let now = now.0.as_secs_f64();
    let leeway = rules.leeway.as_secs_f64();

    let exp = numeric_date(claims, "exp")?;
    let nbf = numeric_date(claims, "nbf")?;
    let iat = numeric_date(claims, "iat")?;
    for name in ["iss", "sub", "jti"] {
        if claims.get(name).is_some_and(|v| !v.is_string()) {
            return Err(TokenError::InvalidClaim(name.to_owned()));
        }
    }

    match exp {
        Some(exp) if now >= exp + leeway => return Err(TokenError::Expired),
        None if rules.require_exp => return Err(TokenError::MissingClaim("exp".to_owned())),
        _ => {}
    }
    if nbf.is_some_and(|nbf| now < nbf - leeway) {
        return Err(TokenError::NotYetValid);
    }
    if iat.is_some_and(|iat| iat > now + leeway) {
        return Err(TokenError::IssuedInFuture);
    }
    if let Some(max_age) = rules.max_age {
        let iat = iat.ok_or_else(|| TokenError::MissingClaim("iat".to_owned()))?;
        if now - iat > max_age.as_secs_f64() + leeway {
            return Err(TokenError::TooOld);
        }
    }

    if let Some(issuer) = &rules.issuer {
        match claims.iss() {
            None => return Err(TokenError::MissingClaim("iss".to_owned())),
            Some(iss) if iss != issuer => return Err(TokenError::WrongIssuer),
            Some(_) => {}
        }
    }

    let aud = match claims.get("aud") {
        None => None,
        Some(Value::String(s)) => Some(vec![s.as_str()]),
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .map(Value::as_str)
                .collect::<Option<Vec<&str>>>()
                .ok_or_else(|| TokenError::InvalidClaim("aud".to_owned()))?,
        ),
        Some(_) => return Err(TokenError::InvalidClaim("aud".to_owned())),
    };
    if !rules.audiences.is_empty() {
        let aud = aud.ok_or_else(|| TokenError::MissingClaim("aud".to_owned()))?;
        if !aud.iter().any(|a| rules.audiences.iter().any(|r| r == a)) {
            return Err(TokenError::WrongAudience);
        }
    }

    for name in &rules.required {
        if claims.get(name).is_none_or(Value::is_null) {
            return Err(TokenError::MissingClaim(name.clone()));
        }
    }
    Ok(())
}

/// A NumericDate claim (RFC 7519 §2): a JSON number, integer or not.
fn numeric_date(claims: &Claims, name: &str) -> Result<Option<f64>, TokenError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(v) if v.is_finite() => Ok(Some(v)),
            _ => Err(TokenError::InvalidClaim(name.to_owned())),
        },
        Some(_) => Err(TokenError::InvalidClaim(name.to_owned())),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: u64 = 1_800_000_000;

    fn claims(v: Value) -> Claims {
        Claims::from(v.as_object().unwrap().clone())
    }

    fn at(secs: u64) -> Timestamp {
        Timestamp::from_millis(secs * 1000)
    }

    fn base() -> Value {
        json!({"iss": "https://issuer", "aud": "api", "sub": "u1", "exp": NOW + 600, "iat": NOW - 10})
    }

    fn rules() -> ClaimRules {
        ClaimRules {
            issuer: Some("https://issuer".into()),
            audiences: vec!["api".into()],
            ..ClaimRules::default()
        }
    }

    #[test]
    fn defaults() {
        let r = ClaimRules::default();
        assert_eq!(r.leeway, Duration::from_secs(60));
        assert!(r.require_exp);
        assert!(check(&claims(base()), &rules(), at(NOW)).is_ok());
    }

    #[test]
    fn expiry_with_leeway_edges() {
        let c = claims(json!({"exp": NOW}));
        let r = ClaimRules::default();
        assert_eq!(check(&c, &r, at(NOW + 59)), Ok(()));
        // Exactly at exp + leeway: expired.
        assert_eq!(check(&c, &r, at(NOW + 60)), Err(TokenError::Expired));
        let just_before = Timestamp::from_millis((NOW + 60) * 1000 - 1);
        assert_eq!(check(&c, &r, just_before), Ok(()));
        let no_leeway = ClaimRules {
            leeway: Duration::ZERO,
            ..ClaimRules::default()
        };
        assert_eq!(check(&c, &no_leeway, at(NOW)), Err(TokenError::Expired));
        // A fractional exp.
        let c = claims(json!({"exp": NOW as f64 + 0.5}));
        assert_eq!(check(&c, &no_leeway, at(NOW)), Ok(()));
    }

    #[test]
    fn exp_is_required_by_default() {
        let c = claims(json!({"sub": "x"}));
        assert_eq!(
            check(&c, &ClaimRules::default(), at(NOW)),
            Err(TokenError::MissingClaim("exp".into()))
        );
        let r = ClaimRules {
            require_exp: false,
            ..ClaimRules::default()
        };
        assert_eq!(check(&c, &r, at(NOW)), Ok(()));
    }

    #[test]
    fn not_before_with_leeway_edges() {
        let c = claims(json!({"exp": NOW + 1000, "nbf": NOW + 100}));
        let r = ClaimRules::default();
        assert_eq!(check(&c, &r, at(NOW + 39)), Err(TokenError::NotYetValid));
        assert_eq!(check(&c, &r, at(NOW + 40)), Ok(()));
    }

    #[test]
    fn issued_in_the_future() {
        let c = claims(json!({"exp": NOW + 1000, "iat": NOW + 60}));
        let r = ClaimRules::default();
        assert_eq!(check(&c, &r, at(NOW)), Ok(()));
        let c = claims(json!({"exp": NOW + 1000, "iat": NOW + 61}));
        assert_eq!(check(&c, &r, at(NOW)), Err(TokenError::IssuedInFuture));
    }

    #[test]
    fn max_age() {
        let r = ClaimRules {
            max_age: Some(Duration::from_secs(900)),
            ..ClaimRules::default()
        };
        let c = claims(json!({"exp": NOW + 1000, "iat": NOW - 960}));
        assert_eq!(check(&c, &r, at(NOW)), Ok(()));
        let c = claims(json!({"exp": NOW + 1000, "iat": NOW - 961}));
        assert_eq!(check(&c, &r, at(NOW)), Err(TokenError::TooOld));
        let c = claims(json!({"exp": NOW + 1000}));
        assert_eq!(
            check(&c, &r, at(NOW)),
            Err(TokenError::MissingClaim("iat".into()))
        );
    }

    #[test]
    fn numeric_dates_must_be_numbers() {
        for name in ["exp", "nbf", "iat"] {
            let mut v = json!({"exp": NOW + 10});
            v[name] = json!("1800000000");
            assert_eq!(
                check(&claims(v), &ClaimRules::default(), at(NOW)),
                Err(TokenError::InvalidClaim(name.into()))
            );
        }
        let c = claims(json!({"exp": null}));
        assert_eq!(
            check(&c, &ClaimRules::default(), at(NOW)),
            Err(TokenError::InvalidClaim("exp".into()))
        );
    }

    #[test]
    fn issuer() {
        let mut v = base();
        v["iss"] = json!("https://issuer/");
        assert_eq!(
            check(&claims(v), &rules(), at(NOW)),
            Err(TokenError::WrongIssuer)
        );
        let mut v = base();
        v.as_object_mut().unwrap().remove("iss");
        assert_eq!(
            check(&claims(v), &rules(), at(NOW)),
            Err(TokenError::MissingClaim("iss".into()))
        );
        let mut v = base();
        v["iss"] = json!(["https://issuer"]);
        assert_eq!(
            check(&claims(v), &rules(), at(NOW)),
            Err(TokenError::InvalidClaim("iss".into()))
        );
    }

    #[test]
    fn audience() {
        let r = ClaimRules {
            audiences: vec!["api".into(), "other".into()],
            ..rules()
        };
        for (aud, expected) in [
            (json!("api"), Ok(())),
            (json!("other"), Ok(())),
            (json!(["x", "other"]), Ok(())),
            (json!("API"), Err(TokenError::WrongAudience)),
            (json!([]), Err(TokenError::WrongAudience)),
            (json!(["x", 1]), Err(TokenError::InvalidClaim("aud".into()))),
            (json!(1), Err(TokenError::InvalidClaim("aud".into()))),
        ] {
            let mut v = base();
            v["aud"] = aud.clone();
            assert_eq!(check(&claims(v), &r, at(NOW)), expected, "{aud}");
        }
        let mut v = base();
        v.as_object_mut().unwrap().remove("aud");
        assert_eq!(
            check(&claims(v.clone()), &r, at(NOW)),
            Err(TokenError::MissingClaim("aud".into()))
        );
        // No audiences configured: not checked.
        let open = ClaimRules {
            audiences: vec![],
            ..rules()
        };
        assert_eq!(check(&claims(v), &open, at(NOW)), Ok(()));
    }

    #[test]
    fn required_claims() {
        let r = ClaimRules {
            required: vec!["sub".into(), "tenant".into()],
            ..rules()
        };
        assert_eq!(
            check(&claims(base()), &r, at(NOW)),
            Err(TokenError::MissingClaim("tenant".into()))
        );
        let mut v = base();
        v["tenant"] = json!(null);
        assert_eq!(
            check(&claims(v.clone()), &r, at(NOW)),
            Err(TokenError::MissingClaim("tenant".into()))
        );
        v["tenant"] = json!("t1");
        assert_eq!(check(&claims(v), &r, at(NOW)), Ok(()));
    }

    #[test]
    fn scopes_and_roles() {
        let c = claims(json!({"scope": "read  write\tadmin read", "scp": ["write", "extra", 3]}));
        assert_eq!(c.scopes(), vec!["read", "write", "admin", "extra"]);
        let c = claims(json!({"scp": "a b"}));
        assert_eq!(c.scopes(), vec!["a", "b"]);
        let c = claims(json!({"scope": ["a", "", "b"]}));
        assert_eq!(c.scopes(), vec!["a", "b"]);
        let c = claims(json!({"scope": 5}));
        assert!(c.scopes().is_empty());

        assert_eq!(claims(json!({"roles": "admin"})).roles(), vec!["admin"]);
        assert_eq!(
            claims(json!({"roles": ["admin", "editor", "admin"]})).roles(),
            vec!["admin", "editor"]
        );
        assert!(claims(json!({})).roles().is_empty());
    }

    #[test]
    fn accessors() {
        let c = claims(json!({"sub": "u", "iss": "i", "aud": ["a", "b"], "exp": 10}));
        assert_eq!(c.sub(), Some("u"));
        assert_eq!(c.iss(), Some("i"));
        assert_eq!(c.audiences(), vec!["a", "b"]);
        assert_eq!(c.expires_at(), Some(Timestamp::from_millis(10_000)));
        assert_eq!(c.get("sub"), Some(&json!("u")));
        assert_eq!(c.as_map().len(), 4);
        assert_eq!(c.into_map().len(), 4);
    }
}
