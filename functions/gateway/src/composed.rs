//! The functions a gateway composes: one list naming each, the section of
//! the gateway's policy it reads, its variables and secrets, and how it is
//! built. The gateway's own variables and secrets are the union of theirs.

use std::rc::Rc;

use anonymize::Anonymize;
use auth_check::AuthCheck;
use counter::Counter;
use edge_core::function::{Mount, Mounted};
use edge_core::policy::POLICY_VARIABLE;
use edge_core::{Config, ConfigError, EdgeFunction};
use metrics::Metrics;
use rate_limit::RateLimit;
use serde_json::json;
use spatial_query::SpatialQuery;

use crate::policy::GatewayPolicy;

/// A function the gateway can mount, or use as a filter.
pub(crate) struct Composed {
    /// Its name (`mount = "…"`).
    pub(crate) name: &'static str,
    /// Its section in the gateway's policy (as in its own policy).
    pub(crate) section: &'static str,
    variables: &'static [&'static str],
    secrets: &'static [&'static str],
    build: fn(&mut Instances<'_>) -> Result<Rc<dyn Mounted>, ConfigError>,
}

macro_rules! composed {
    ($function:ty, $section:literal, $build:expr) => {
        Composed {
            name: <$function>::NAME,
            section: $section,
            variables: <$function>::VARIABLES,
            secrets: <$function>::SECRETS,
            build: $build,
        }
    };
}

/// Every function a gateway composes.
pub(crate) const COMPOSED: &[Composed] = &[
    composed!(Counter, "counter", |i| mount(i.build::<Counter>()?)),
    composed!(RateLimit, "rate_limit", |i| Ok(Rc::new(Mount(
        i.rate_limit()?
    )))),
    composed!(AuthCheck, "auth", |i| Ok(Rc::new(Mount(i.auth()?)))),
    composed!(Anonymize, "anonymize", |i| Ok(Rc::new(Mount(
        i.anonymize()?
    )))),
    composed!(SpatialQuery, "spatial", |i| mount(
        i.build::<SpatialQuery>()?
    )),
    composed!(Metrics, "metrics", |i| mount(i.build::<Metrics>()?)),
];

fn mount<F: EdgeFunction + 'static>(function: F) -> Result<Rc<dyn Mounted>, ConfigError> {
    Ok(Rc::new(Mount(Rc::new(function))))
}

/// Which list of names a composed function declares.
#[derive(Clone, Copy)]
enum Names {
    Variables,
    Secrets,
}

const fn names(c: &Composed, which: Names) -> &'static [&'static str] {
    match which {
        Names::Variables => c.variables,
        Names::Secrets => c.secrets,
    }
}

const fn count(which: Names) -> usize {
    let (mut i, mut n) = (0, 0);
    while i < COMPOSED.len() {
        n += names(&COMPOSED[i], which).len();
        i += 1;
    }
    n
}

const fn union<const N: usize>(which: Names) -> [&'static str; N] {
    let mut out = [""; N];
    let (mut i, mut n) = (0, 0);
    while i < COMPOSED.len() {
        let names = names(&COMPOSED[i], which);
        let mut j = 0;
        while j < names.len() {
            out[n] = names[j];
            n += 1;
            j += 1;
        }
        i += 1;
    }
    out
}

/// Every composed function's variables.
pub(crate) const VARIABLES: [&str; count(Names::Variables)] = union(Names::Variables);
/// Every composed function's secrets.
pub(crate) const SECRETS: [&str; count(Names::Secrets)] = union(Names::Secrets);

/// The functions one gateway built, each once, from its section.
pub(crate) struct Instances<'a> {
    policy: &'a GatewayPolicy,
    config: &'a Config,
    auth: Option<Rc<AuthCheck>>,
    rate_limit: Option<Rc<RateLimit>>,
    anonymize: Option<Rc<Anonymize>>,
    mounted: Vec<(&'static str, Rc<dyn Mounted>)>,
}

impl<'a> Instances<'a> {
    /// None built yet.
    pub(crate) fn new(policy: &'a GatewayPolicy, config: &'a Config) -> Self {
        Instances {
            policy,
            config,
            auth: None,
            rate_limit: None,
            anonymize: None,
            mounted: Vec::new(),
        }
    }

    /// Builds `F` from its section of the gateway's policy (its built-in
    /// policy when the section is left out), with the gateway's variables
    /// and secrets. Its errors name fields under its section.
    fn build<F: EdgeFunction>(&self) -> Result<F, ConfigError> {
        let section = COMPOSED
            .iter()
            .find(|c| c.name == F::NAME)
            .map_or("", |c| c.section);
        let text = self.policy.section(section).map_or_else(
            || F::DEFAULT_POLICY.to_owned(),
            |value| json!({ section: value }).to_string(),
        );
        F::from_config(&self.config.clone().with_var(POLICY_VARIABLE, text))
    }

    /// The auth check.
    pub(crate) fn auth(&mut self) -> Result<Rc<AuthCheck>, ConfigError> {
        if let Some(built) = &self.auth {
            return Ok(built.clone());
        }
        let built = Rc::new(self.build::<AuthCheck>()?);
        self.auth = Some(built.clone());
        Ok(built)
    }

    /// The rate limiter.
    pub(crate) fn rate_limit(&mut self) -> Result<Rc<RateLimit>, ConfigError> {
        if let Some(built) = &self.rate_limit {
            return Ok(built.clone());
        }
        let built = Rc::new(self.build::<RateLimit>()?);
        self.rate_limit = Some(built.clone());
        Ok(built)
    }

    /// The anonymizer.
    pub(crate) fn anonymize(&mut self) -> Result<Rc<Anonymize>, ConfigError> {
        if let Some(built) = &self.anonymize {
            return Ok(built.clone());
        }
        let built = Rc::new(self.build::<Anonymize>()?);
        self.anonymize = Some(built.clone());
        Ok(built)
    }

    /// The function named `name`, as a mounted one (`None`: no such function).
    pub(crate) fn mounted(&mut self, name: &str) -> Option<Result<Rc<dyn Mounted>, ConfigError>> {
        if let Some((_, found)) = self.mounted.iter().find(|(n, _)| *n == name) {
            return Some(Ok(found.clone()));
        }
        let composed = COMPOSED.iter().find(|c| c.name == name)?;
        let built = (composed.build)(self);
        if let Ok(function) = &built {
            self.mounted.push((composed.name, function.clone()));
        }
        Some(built)
    }

    /// Every function mounted so far.
    pub(crate) fn into_mounted(self) -> Vec<Rc<dyn Mounted>> {
        self.mounted.into_iter().map(|(_, f)| f).collect()
    }
}
