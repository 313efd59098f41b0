//! `spin:variables/variables@3.0.0`: application variables for components.
//!
//! spin-sdk 7's `spin_sdk::variables::get` calls this interface's `get`, a
//! component-model `async func`, so the host side is implemented through the
//! store-aware (`Accessor`) trait that wasmtime's bindgen generates for async
//! functions. Names are validated with Spin's rules (`spin-expressions`):
//! lower-case ASCII letters, digits and single underscores, starting with a
//! letter and not ending with an underscore.

use std::collections::HashMap;
use std::sync::Arc;

use wasmtime::component::{Accessor, HasData, Linker};

use super::bindings::spin::variables::variables::{self, Error};

/// The variables visible to one app, shared by all of its instances.
pub(crate) type Variables = Arc<HashMap<String, String>>;

/// [`HasData`] marker for `spin:variables/variables`.
pub(crate) struct VariablesHost;

impl HasData for VariablesHost {
    type Data<'a> = &'a Variables;
}

impl variables::Host for &Variables {}

impl<T> variables::HostWithStore<T> for VariablesHost {
    async fn get(
        accessor: &Accessor<T, Self>,
        name: String,
    ) -> wasmtime::Result<Result<String, Error>> {
        if let Err(reason) = validate(&name) {
            return Ok(Err(Error::InvalidName(format!("{name:?}: {reason}"))));
        }
        let value = accessor.with(|mut access| access.get().get(&name).cloned());
        Ok(value.ok_or_else(|| Error::Undefined(format!("no variable for {name:?}"))))
    }
}

/// Adds `spin:variables/variables@3.0.0` to `linker`.
pub(crate) fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    getter: fn(&mut T) -> &Variables,
) -> wasmtime::Result<()> {
    variables::add_to_linker::<T, VariablesHost>(linker, getter)
}

/// Spin's variable-name rules (`spin_expressions::Key::validate`).
pub(crate) fn validate(name: &str) -> Result<(), &'static str> {
    let bytes = name.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return Err("must not be empty");
    };
    if !bytes
        .iter()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_')
    {
        Err("variable names may contain only lower-case letters, numbers, and underscores")
    } else if !first.is_ascii_lowercase() {
        Err("must start with a lowercase ASCII letter")
    } else if !last.is_ascii_alphanumeric() {
        Err("must end with a lowercase ASCII letter or digit")
    } else if name.contains("__") {
        Err("must not contain multiple consecutive underscores")
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::validate;

    #[test]
    fn names_follow_spin_rules() {
        assert!(validate("greeting").is_ok());
        assert!(validate("api_key2").is_ok());
        for bad in ["", "Greeting", "1abc", "abc_", "a__b", "a-b"] {
            assert!(validate(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
