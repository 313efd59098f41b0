//! `functions.toml` against what must follow it: the native runner's list
//! (`wasm_tests::native::FUNCTIONS`, each function's `EdgeFunction`
//! variables and secrets), `wrangler.toml` and `spin.toml`. The checker is
//! a function over parsed documents; the tests below also show it failing
//! on manifests with a function missing, one too many, drifted variables,
//! or a component whose `allowed_outbound_hosts` variable does not mirror
//! its manifest list.

use std::collections::BTreeSet;

use edge_core::origin::allowed::VARIABLE as ALLOWED_HOSTS_VARIABLE;
use edge_registry::Registry;
use edge_registry::scaffold::{self, Declared};
use toml::{Table, Value};
use wasm_tests::native::{FUNCTIONS, Registration};

/// The platform variable every function reads its policy from.
const POLICY: &str = "POLICY";
/// The bindings the Workers glue (`edge-workers`) opens: the store's
/// Durable Object namespace, its class, the cache's KV namespace and the
/// service binding a worker flushes its metrics through.
const STORE_BINDING: &str = "EDGE_STORE";
const STORE_CLASS: &str = "EdgeStore";
const CACHE_BINDING: &str = "EDGE_CACHE";
const METRICS_BINDING: &str = "METRICS";

/// What must agree, parsed.
struct Documents<'a> {
    registry: &'a Registry,
    native: &'a [Registration],
    wrangler: &'a Table,
    spin: &'a Table,
}

/// Every disagreement, one line each; empty when everything agrees.
fn check(docs: &Documents<'_>) -> Vec<String> {
    let mut problems = Vec::new();
    check_native(docs, &mut problems);
    check_wrangler(docs, &mut problems);
    check_spin(docs, &mut problems);
    problems
}

/// The function's variables and secrets, or none when it has no native
/// registration (reported by `check_native`).
fn registration(docs: &Documents<'_>, name: &str) -> Registration {
    docs.native
        .iter()
        .find(|r| r.name == name)
        .copied()
        .unwrap_or(Registration {
            name: "",
            variables: &[],
            secrets: &[],
        })
}

/// Names in `listed` but not in `found`, and the other way round.
fn differences<'a>(
    listed: impl IntoIterator<Item = &'a str>,
    found: impl IntoIterator<Item = &'a str>,
) -> (Vec<&'a str>, Vec<&'a str>) {
    let listed: BTreeSet<&str> = listed.into_iter().collect();
    let found: BTreeSet<&str> = found.into_iter().collect();
    (
        listed.difference(&found).copied().collect(),
        found.difference(&listed).copied().collect(),
    )
}

fn check_native(docs: &Documents<'_>, problems: &mut Vec<String>) {
    let (missing, extra) = differences(docs.registry.names(), docs.native.iter().map(|r| r.name));
    for name in missing {
        problems.push(format!(
            "native.rs: functions.toml lists {name:?} but `functions!` does not register it \
             (add its type there and its crate to wasm-tests/Cargo.toml)"
        ));
    }
    for name in extra {
        problems.push(format!(
            "native.rs: `functions!` registers {name:?}, which functions.toml does not list"
        ));
    }
    for secret in docs.registry.dev.secrets.keys() {
        if !docs
            .native
            .iter()
            .any(|r| r.secrets_read().contains(&secret.as_str()))
        {
            problems.push(format!(
                "functions.toml: dev.secrets sets {secret}, which no function declares in SECRETS"
            ));
        }
    }
}

fn str_at<'a>(value: &'a Value, path: &str) -> Option<&'a str> {
    at(value, path)?.as_str()
}

fn at<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(value, |value, key| value.get(key))
}

fn array_at<'a>(value: &'a Value, path: &str) -> &'a [Value] {
    at(value, path)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// Expects the string at `path` in `value` to be `expected`.
fn expect_str(problems: &mut Vec<String>, what: &str, value: &Value, path: &str, expected: &str) {
    match str_at(value, path) {
        Some(found) if found == expected => {}
        Some(found) => problems.push(format!(
            "{what}: {path} is {found:?}, expected {expected:?}"
        )),
        None => problems.push(format!("{what}: no {path}, expected {expected:?}")),
    }
}

fn check_wrangler(docs: &Documents<'_>, problems: &mut Vec<String>) {
    let empty = Table::new();
    let envs = docs
        .wrangler
        .get("env")
        .and_then(Value::as_table)
        .unwrap_or(&empty);
    let top_level = Value::Table(docs.wrangler.clone());
    let with_env = docs
        .registry
        .functions
        .iter()
        .filter(|f| !f.top_level_worker);
    let (missing, extra) = differences(
        with_env.map(|f| f.name.as_str()),
        envs.keys().map(String::as_str),
    );
    for name in missing {
        problems.push(format!(
            "wrangler.toml: functions.toml lists {name:?} but there is no [env.{name}]"
        ));
    }
    for name in extra {
        problems.push(format!(
            "wrangler.toml: [env.{name}] is not a function in functions.toml \
             (or not one with an environment: see top_level_worker)"
        ));
    }
    let has_top_level = docs.registry.functions.iter().any(|f| f.top_level_worker);
    if !has_top_level && docs.wrangler.contains_key("main") {
        problems.push(
            "wrangler.toml: the top level has a main, but no function in functions.toml \
             is its top_level_worker"
                .to_owned(),
        );
    }
    // Every worker that flushes its metrics flushes them to one worker,
    // the metrics function's.
    let workers: Vec<&Value> = std::iter::once(&top_level).chain(envs.values()).collect();
    let aggregators: BTreeSet<&str> = workers
        .iter()
        .flat_map(|worker| array_at(worker, "services"))
        .filter(|s| str_at(s, "binding") == Some(METRICS_BINDING))
        .filter_map(|s| str_at(s, "service"))
        .collect();
    let names: BTreeSet<&str> = workers.iter().filter_map(|w| str_at(w, "name")).collect();
    if aggregators.len() > 1 || !aggregators.is_subset(&names) {
        problems.push(format!(
            "wrangler.toml: the {METRICS_BINDING} service bindings should all name one of \
             these workers, they name {aggregators:?}"
        ));
    }
    for function in &docs.registry.functions {
        let name = function.name.as_str();
        let (worker, what) = if function.top_level_worker {
            (&top_level, "wrangler.toml's top level".to_owned())
        } else {
            match envs.get(name) {
                Some(env) => (env, format!("wrangler.toml [env.{name}]")),
                None => continue,
            }
        };
        check_worker(name, &registration(docs, name), worker, &what, problems);
    }
}

/// One function's worker: named `edge-NAME`, built by `cargo xtask
/// build-worker NAME`, its variables declared and its secrets not, the
/// store and cache the Workers glue opens, and a cron for the metrics flush.
fn check_worker(
    name: &str,
    registration: &Registration,
    worker: &Value,
    what: &str,
    problems: &mut Vec<String>,
) {
    expect_str(problems, what, worker, "name", &format!("edge-{name}"));
    expect_str(
        problems,
        what,
        worker,
        "main",
        &format!("functions/{name}/build/index.js"),
    );
    expect_str(
        problems,
        what,
        worker,
        "build.command",
        &format!("cargo xtask build-worker {name}"),
    );
    let vars: BTreeSet<&str> = at(worker, "vars")
        .and_then(Value::as_table)
        .map(|vars| vars.keys().map(String::as_str).collect())
        .unwrap_or_default();
    for var in std::iter::once(&POLICY).chain(registration.variables) {
        if !vars.contains(var) {
            problems.push(format!("{what}: vars has no {var}"));
        }
    }
    for secret in registration.secrets_read() {
        if vars.contains(secret) {
            problems.push(format!(
                "{what}: vars sets the secret {secret} (secrets come from `wrangler secret put`)"
            ));
        }
    }
    let store = array_at(worker, "durable_objects.bindings")
        .iter()
        .any(|b| {
            str_at(b, "name") == Some(STORE_BINDING) && str_at(b, "class_name") == Some(STORE_CLASS)
        });
    if !store {
        problems.push(format!(
            "{what}: no durable_objects binding {STORE_BINDING} of class {STORE_CLASS}"
        ));
    }
    let cache = array_at(worker, "kv_namespaces")
        .iter()
        .any(|kv| str_at(kv, "binding") == Some(CACHE_BINDING) && str_at(kv, "id").is_some());
    if !cache {
        problems.push(format!(
            "{what}: no kv_namespaces binding {CACHE_BINDING} with an id"
        ));
    }
    let migrated = array_at(worker, "migrations").iter().any(|m| {
        array_at(m, "new_sqlite_classes")
            .iter()
            .any(|c| c.as_str() == Some(STORE_CLASS))
    });
    if !migrated {
        problems.push(format!(
            "{what}: no migrations entry with new_sqlite_classes = [\"{STORE_CLASS}\"]"
        ));
    }
    if array_at(worker, "triggers.crons").is_empty() {
        problems.push(format!(
            "{what}: no triggers.crons (metrics flush on the cron)"
        ));
    }
}

/// The application variable a component variable's `"{{ name }}"` names.
fn template_target(template: &str) -> Option<&str> {
    let inner = template
        .trim()
        .strip_prefix("{{")?
        .strip_suffix("}}")?
        .trim();
    (!inner.is_empty() && !inner.contains(['{', '}'])).then_some(inner)
}

fn check_spin(docs: &Documents<'_>, problems: &mut Vec<String>) {
    let empty = Table::new();
    let table = |key: &str| {
        docs.spin
            .get(key)
            .and_then(Value::as_table)
            .unwrap_or(&empty)
    };
    let components = table("component");
    let app_variables = table("variables");
    let (missing, extra) =
        differences(docs.registry.names(), components.keys().map(String::as_str));
    for name in missing {
        problems.push(format!(
            "spin.toml: functions.toml lists {name:?} but there is no [component.{name}]"
        ));
    }
    for name in extra {
        problems.push(format!(
            "spin.toml: [component.{name}] is not a function in functions.toml"
        ));
    }
    let triggers: &[Value] = docs
        .spin
        .get("trigger")
        .map_or(&[], |t| array_at(t, "http"));
    for trigger in triggers {
        let component = str_at(trigger, "component").unwrap_or_default();
        let route = str_at(trigger, "route").unwrap_or_default();
        if !docs.registry.names().any(|n| n == component) {
            problems.push(format!(
                "spin.toml: the trigger on {route:?} serves {component:?}, not a function in functions.toml"
            ));
        } else if route != format!("/{component}/...") {
            problems.push(format!(
                "spin.toml: {component}'s trigger route is {route:?}, expected \"/{component}/...\""
            ));
        }
    }
    let mut referenced = BTreeSet::new();
    for function in &docs.registry.functions {
        let name = function.name.as_str();
        let routes = triggers
            .iter()
            .filter(|t| str_at(t, "component") == Some(name))
            .count();
        if routes != 1 {
            problems.push(format!(
                "spin.toml: {name} has {routes} [[trigger.http]] entries, expected one"
            ));
        }
        let Some(component) = components.get(name) else {
            continue;
        };
        let what = format!("spin.toml [component.{name}]");
        expect_str(
            problems,
            &what,
            component,
            "source",
            &format!("target/edge/spin/{name}.wasm"),
        );
        expect_str(
            problems,
            &what,
            component,
            "build.command",
            &format!("cargo xtask build-spin {name}"),
        );
        let watch = format!("functions/{name}/**/*.rs");
        if !array_at(component, "build.watch")
            .iter()
            .any(|w| w.as_str() == Some(&watch))
        {
            problems.push(format!("{what}: build.watch does not include {watch:?}"));
        }
        if !array_at(component, "key_value_stores")
            .iter()
            .any(|s| s.as_str() == Some("default"))
        {
            problems.push(format!(
                "{what}: key_value_stores does not include \"default\""
            ));
        }
        let variables = at(component, "variables")
            .and_then(Value::as_table)
            .unwrap_or(&empty);
        if let Some(problem) = allowed_hosts_mirror(
            &what,
            array_at(component, "allowed_outbound_hosts"),
            variables.get(ALLOWED_HOSTS_VARIABLE),
        ) {
            problems.push(problem);
        }
        for host in array_at(component, "allowed_outbound_hosts") {
            let Some(target) = host.as_str().and_then(template_target) else {
                continue;
            };
            if !app_variables.contains_key(target) {
                problems.push(format!(
                    "{what}: allowed_outbound_hosts names {target}, which [variables] does not declare"
                ));
            }
            referenced.insert(target.to_owned());
        }
        // The glue reads POLICY, the function's variables and its secrets,
        // each as the lower-cased Spin variable.
        let registration = registration(docs, name);
        let expected: Vec<(String, bool)> = std::iter::once((POLICY, false))
            .chain(registration.variables.iter().map(|v| (*v, false)))
            .chain(registration.secrets_read().into_iter().map(|s| (s, true)))
            .map(|(v, secret)| (v.to_ascii_lowercase(), secret))
            .collect();
        for (variable, secret) in &expected {
            let Some(template) = variables.get(variable) else {
                problems.push(format!("{what}: variables has no {variable}"));
                continue;
            };
            let target = template.as_str().and_then(template_target);
            let Some(target) = target else {
                problems.push(format!(
                    "{what}: variables.{variable} is {template:?}, expected \"{{{{ name }}}}\" naming an application variable"
                ));
                continue;
            };
            referenced.insert(target.to_owned());
            match app_variables.get(target) {
                None => problems.push(format!(
                    "spin.toml: [variables] does not declare {target} ({name}'s {variable})"
                )),
                Some(decl) => {
                    let declared_secret = at(decl, "secret").and_then(Value::as_bool) == Some(true);
                    if declared_secret != *secret {
                        problems.push(format!(
                            "spin.toml: [variables] {target} ({name}'s {variable}) should {}be secret = true",
                            if *secret { "" } else { "not " }
                        ));
                    }
                }
            }
        }
        for variable in variables.keys() {
            if variable != ALLOWED_HOSTS_VARIABLE && !expected.iter().any(|(v, _)| v == variable) {
                problems.push(format!(
                    "{what}: variables.{variable} is not read by {name} (POLICY, its VARIABLES and SECRETS are)"
                ));
            }
        }
    }
    let dev_values: BTreeSet<String> = docs
        .registry
        .dev
        .secrets
        .keys()
        .map(|k| k.to_ascii_lowercase())
        .collect();
    for (variable, decl) in app_variables {
        if !referenced.contains(variable) {
            problems.push(format!(
                "spin.toml: [variables] {variable} is not used by any component"
            ));
        }
        let required = at(decl, "required").and_then(Value::as_bool) == Some(true);
        if required && !dev_values.contains(variable) {
            problems.push(format!(
                "spin.toml: [variables] {variable} is required but functions.toml gives it no \
                 dev value (`cargo xtask dev` could not start the Spin host)"
            ));
        }
    }
}

/// A component's `allowed_outbound_hosts` against the component variable
/// mirroring it (the Spin glue reads it as the allow-list functions check
/// their policy's URLs against at start): the same entries, templates and
/// all, in the same order, joined by commas. A component with outbound
/// hosts needs it; one without may leave it out (or mirror the empty list
/// with `""`).
fn allowed_hosts_mirror(what: &str, hosts: &[Value], mirror: Option<&Value>) -> Option<String> {
    let entries: Vec<&str> = hosts
        .iter()
        .filter_map(Value::as_str)
        .map(str::trim)
        .collect();
    let expected = entries.join(",");
    let Some(mirror) = mirror else {
        return (!entries.is_empty()).then(|| {
            format!(
                "{what}: has allowed_outbound_hosts but no variables.{ALLOWED_HOSTS_VARIABLE} \
                 mirroring them (expected {ALLOWED_HOSTS_VARIABLE} = {expected:?}): without it \
                 a policy URL outside them fails per request instead of at start"
            )
        });
    };
    let found: Option<Vec<&str>> = mirror.as_str().map(|text| {
        if text.trim().is_empty() {
            Vec::new()
        } else {
            text.split(',').map(str::trim).collect()
        }
    });
    let shown = mirror
        .as_str()
        .map_or_else(|| format!("{mirror:?}"), |text| format!("{text:?}"));
    (found.as_deref() != Some(entries.as_slice())).then(|| {
        format!(
            "{what}: variables.{ALLOWED_HOSTS_VARIABLE} is {shown}, which does not mirror \
             allowed_outbound_hosts: expected {expected:?}"
        )
    })
}

fn read(file: &str) -> Table {
    let path = wasm_tests::workspace_root().join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    text.parse::<Table>()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The workspace's documents, for a test to alter.
struct Workspace {
    registry: Registry,
    native: Vec<Registration>,
    wrangler: Table,
    spin: Table,
}

impl Workspace {
    fn load() -> Self {
        Workspace {
            registry: Registry::load().unwrap(),
            native: FUNCTIONS.to_vec(),
            wrangler: read("wrangler.toml"),
            spin: read("spin.toml"),
        }
    }

    fn problems(&self) -> Vec<String> {
        check(&Documents {
            registry: &self.registry,
            native: &self.native,
            wrangler: &self.wrangler,
            spin: &self.spin,
        })
    }

    /// The table at dot-separated `path` in the `wrangler` or `spin` document.
    fn table(&mut self, document: &str, path: &str) -> &mut Table {
        let document = match document {
            "wrangler" => &mut self.wrangler,
            _ => &mut self.spin,
        };
        path.split('.').fold(document, |table, key| {
            table.get_mut(key).and_then(Value::as_table_mut).unwrap()
        })
    }

    /// Takes the top-level worker's keys out of wrangler.toml (all but
    /// `compatibility_date` and the environments).
    fn take_top_level_worker(&mut self) -> Table {
        let keys: Vec<String> = self
            .wrangler
            .keys()
            .filter(|k| !["compatibility_date", "env"].contains(&k.as_str()))
            .cloned()
            .collect();
        keys.into_iter()
            .filter_map(|k| Some((k.clone(), self.wrangler.remove(&k)?)))
            .collect()
    }

    fn spin_triggers(&mut self) -> &mut Vec<Value> {
        self.table("spin", "trigger")
            .get_mut("http")
            .and_then(Value::as_array_mut)
            .unwrap()
    }
}

/// Asserts that some problem mentions every one of `words`.
fn assert_found(problems: &[String], words: &[&str]) {
    assert!(
        problems.iter().any(|p| words.iter().all(|w| p.contains(w))),
        "no problem mentions {words:?}; problems: {problems:#?}"
    );
}

#[test]
fn registry_native_runner_and_manifests_agree() {
    let problems = Workspace::load().problems();
    assert!(
        problems.is_empty(),
        "functions.toml and what follows it disagree (`cargo xtask sync` adds what a \
         new function lacks):\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn registry_generated_lists_are_up_to_date() {
    let registry = Registry::load().unwrap();
    let root = wasm_tests::workspace_root();
    for (file, comment, body) in [
        (
            "wasm-tests/Cargo.toml",
            "#",
            scaffold::cargo_dependencies(&registry),
        ),
        (
            "wasm-tests/src/native.rs",
            "//",
            scaffold::native_functions(&registry),
        ),
    ] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        let expected = scaffold::replace_generated(&text, comment, &body).unwrap();
        assert!(
            text == expected,
            "{file}: its list of functions is not functions.toml's; run `cargo xtask sync`"
        );
    }
}

/// What `cargo xtask sync` adds for a new function passes the same check
/// as the hand-annotated entries: adding a function is its folder, a
/// registry entry and that command.
#[test]
fn registry_manifest_entries_written_by_sync_pass_the_check() {
    let new = Registration {
        name: "echo-back",
        variables: &["ECHO_MODE"],
        // One of its own and one another function declares already.
        secrets: &["ECHO_TOKEN", "METRICS_INGEST_TOKEN"],
    };
    let mut workspace = Workspace::load();
    workspace.registry.functions.push(edge_registry::Function {
        name: new.name.to_owned(),
        port: 8799,
        examples: Vec::new(),
        own_build: false,
        top_level_worker: false,
    });
    workspace.native.push(new);
    let problems = workspace.problems();
    assert_found(&problems, &["no [env.echo-back]"]);
    assert_found(&problems, &["no [component.echo-back]"]);

    let secrets = new.secrets_read();
    let declared = Declared {
        name: new.name,
        variables: new.variables,
        secrets: &secrets,
    };
    let root = wasm_tests::workspace_root();
    let wrangler = std::fs::read_to_string(root.join("wrangler.toml")).unwrap();
    let spin = std::fs::read_to_string(root.join("spin.toml")).unwrap();
    let wrangler = scaffold::add_worker(&wrangler, &declared).unwrap().unwrap();
    let spin = scaffold::add_component(&spin, &declared).unwrap().unwrap();
    workspace.wrangler = wrangler.parse().unwrap();
    workspace.spin = spin.parse().unwrap();
    let problems = workspace.problems();
    assert!(problems.is_empty(), "{problems:#?}");
    // The existing functions' entries are untouched.
    let mut original = Workspace::load();
    original.table("wrangler", "env").remove("echo-back");
    workspace.table("wrangler", "env").remove("echo-back");
    assert_eq!(workspace.wrangler, original.wrangler);
    workspace.table("spin", "component").remove("echo-back");
    assert_eq!(
        workspace.table("spin", "component"),
        original.table("spin", "component")
    );
}

#[test]
fn registry_check_finds_a_function_missing_from_a_manifest() {
    let mut workspace = Workspace::load();
    workspace.table("wrangler", "env").remove("rate-limit");
    assert_found(
        &workspace.problems(),
        &["wrangler.toml", "no [env.rate-limit]"],
    );

    let mut workspace = Workspace::load();
    workspace.table("spin", "component").remove("anonymize");
    workspace
        .spin_triggers()
        .retain(|t| str_at(t, "component") != Some("anonymize"));
    let problems = workspace.problems();
    assert_found(&problems, &["spin.toml", "no [component.anonymize]"]);
    assert_found(
        &problems,
        &["spin.toml", "anonymize has 0 [[trigger.http]]"],
    );
    // Its policy variable is left over.
    assert_found(&problems, &["anonymize_policy is not used"]);

    let mut workspace = Workspace::load();
    workspace.native.retain(|r| r.name != "metrics");
    assert_found(&workspace.problems(), &["native.rs", "\"metrics\""]);
}

#[test]
fn registry_check_finds_a_function_too_many_in_a_manifest() {
    let mut workspace = Workspace::load();
    let envs = workspace.table("wrangler", "env");
    let copy = envs["counter"].clone();
    envs.insert("extra".into(), copy);
    assert_found(&workspace.problems(), &["[env.extra] is not a function"]);

    let mut workspace = Workspace::load();
    let components = workspace.table("spin", "component");
    let copy = components["counter"].clone();
    components.insert("extra".into(), copy);
    let mut trigger = Table::new();
    trigger.insert("route".into(), "/extra/...".into());
    trigger.insert("component".into(), "extra".into());
    workspace.spin_triggers().push(trigger.into());
    let problems = workspace.problems();
    assert_found(&problems, &["[component.extra] is not a function"]);
    assert_found(&problems, &["\"/extra/...\" serves \"extra\""]);

    // A second route to one component.
    let mut workspace = Workspace::load();
    let copy = workspace.spin_triggers()[0].clone();
    workspace.spin_triggers().push(copy);
    assert_found(&workspace.problems(), &["2 [[trigger.http]] entries"]);
}

#[test]
fn registry_check_finds_a_function_only_the_registry_lists() {
    let mut workspace = Workspace::load();
    let mut extra = workspace.registry.functions[0].clone();
    extra.name = "extra".into();
    extra.port = 9999;
    extra.top_level_worker = false;
    workspace.registry.functions.push(extra);
    let problems = workspace.problems();
    assert_found(&problems, &["native.rs", "\"extra\""]);
    assert_found(&problems, &["no [env.extra]"]);
    assert_found(&problems, &["no [component.extra]"]);
}

#[test]
fn registry_check_finds_drifted_variables_and_secrets() {
    let mut workspace = Workspace::load();
    let vars = workspace.table("wrangler", "env.rate-limit.vars");
    vars.remove("RATE_LIMIT_ENABLED");
    vars.insert("RATE_LIMIT_HASH_KEY".into(), "oops".into());
    let problems = workspace.problems();
    assert_found(
        &problems,
        &["[env.rate-limit]", "vars has no RATE_LIMIT_ENABLED"],
    );
    assert_found(
        &problems,
        &["[env.rate-limit]", "sets the secret RATE_LIMIT_HASH_KEY"],
    );

    let mut workspace = Workspace::load();
    let variables = workspace.table("spin", "component.counter.variables");
    variables.remove("counter_admin_token");
    variables.insert("stale".into(), "{{ counter_policy }}".into());
    let hosts = workspace
        .table("spin", "component.counter")
        .get_mut("allowed_outbound_hosts")
        .and_then(Value::as_array_mut)
        .unwrap();
    hosts.push("{{ nowhere_host }}".into());
    let problems = workspace.problems();
    assert_found(
        &problems,
        &[
            "[component.counter]",
            "variables has no counter_admin_token",
        ],
    );
    assert_found(
        &problems,
        &["[component.counter]", "variables.stale is not read"],
    );
    assert_found(
        &problems,
        &[
            "[component.counter]",
            "names nowhere_host, which [variables]",
        ],
    );
    // Without its component variable, the policy's application variable is
    // left over.
    workspace
        .table("spin", "component.counter.variables")
        .remove("policy");
    assert_found(&workspace.problems(), &["counter_policy is not used"]);

    let mut workspace = Workspace::load();
    let secrets = &mut workspace.registry.dev.secrets;
    let value = secrets.remove("COUNTER_ADMIN_TOKEN").unwrap();
    secrets.insert("COUNTER_ADMIN_TOKN".into(), value);
    let problems = workspace.problems();
    assert_found(&problems, &["dev.secrets sets COUNTER_ADMIN_TOKN"]);
    assert_found(
        &problems,
        &["counter_admin_token is required", "no dev value"],
    );
}

#[test]
fn registry_check_takes_a_top_level_worker() {
    let mut workspace = Workspace::load();
    // Whichever function is the top-level worker (the gateway's slot)
    // moves to an environment, counter to the top level.
    if let Some(function) = workspace
        .registry
        .functions
        .iter_mut()
        .find(|f| f.top_level_worker)
    {
        function.top_level_worker = false;
        let name = function.name.clone();
        let worker = workspace.take_top_level_worker();
        workspace
            .table("wrangler", "env")
            .insert(name, worker.into());
    }
    assert_eq!(workspace.problems(), Vec::<String>::new());
    let counter = workspace
        .table("wrangler", "env")
        .remove("counter")
        .unwrap();
    for (key, value) in counter.as_table().unwrap() {
        workspace.wrangler.insert(key.clone(), value.clone());
    }
    workspace.registry.functions[0].top_level_worker = true;
    assert_eq!(workspace.problems(), Vec::<String>::new());

    workspace.registry.functions[0].top_level_worker = false;
    let problems = workspace.problems();
    assert_found(&problems, &["no [env.counter]"]);
    assert_found(&problems, &["the top level has a main"]);
}

#[test]
fn registry_check_finds_a_drifted_allowed_hosts_mirror() {
    let mirror = |workspace: &mut Workspace, component: &str| -> Option<Value> {
        workspace
            .table("spin", &format!("component.{component}.variables"))
            .remove(ALLOWED_HOSTS_VARIABLE)
    };
    // Every component with outbound hosts mirrors them.
    let mut workspace = Workspace::load();
    for component in ["gateway", "anonymize", "auth-check", "metrics"] {
        assert!(
            mirror(&mut workspace, component).is_some(),
            "{component} has no {ALLOWED_HOSTS_VARIABLE} variable"
        );
    }
    assert_found(
        &workspace.problems(),
        &[
            "[component.gateway]",
            "no variables.allowed_outbound_hosts",
            "\"{{ gateway_origin_host }},{{ auth_check_idp_host }},{{ metrics_webhook_host }}\"",
        ],
    );

    // A host added to the list but not to the mirror.
    let mut workspace = Workspace::load();
    workspace
        .table("spin", "component.anonymize")
        .get_mut("allowed_outbound_hosts")
        .and_then(Value::as_array_mut)
        .unwrap()
        .push("https://extra.example".into());
    assert_found(
        &workspace.problems(),
        &[
            "[component.anonymize]",
            "variables.allowed_outbound_hosts is \"{{ anonymize_origin_host }}\"",
            "expected \"{{ anonymize_origin_host }},https://extra.example\"",
        ],
    );

    // The mirror naming another variable, or its entries reordered.
    for drifted in [
        "{{ auth_check_idp_host }},{{ gateway_origin_host }},{{ metrics_webhook_host }}",
        "{{ gateway_origin_host }},{{ auth_check_idp_host }}",
        "{{ gateway_origin_host }},{{ auth_check_idp_host }},{{ metrics_webhook_host }},",
        "https://api.example.com,{{ auth_check_idp_host }},{{ metrics_webhook_host }}",
    ] {
        let mut workspace = Workspace::load();
        workspace
            .table("spin", "component.gateway.variables")
            .insert(ALLOWED_HOSTS_VARIABLE.into(), drifted.into());
        assert_found(
            &workspace.problems(),
            &[
                "[component.gateway]",
                "does not mirror allowed_outbound_hosts",
            ],
        );
    }
    // Blank around the commas is no drift; a component without outbound
    // hosts may mirror the empty list.
    let mut workspace = Workspace::load();
    workspace
        .table("spin", "component.gateway.variables")
        .insert(
            ALLOWED_HOSTS_VARIABLE.into(),
            " {{ gateway_origin_host }}, {{ auth_check_idp_host }} ,{{ metrics_webhook_host }}"
                .into(),
        );
    workspace
        .table("spin", "component.counter.variables")
        .insert(ALLOWED_HOSTS_VARIABLE.into(), "".into());
    assert_eq!(workspace.problems(), Vec::<String>::new());
    // Not a string at all.
    workspace
        .table("spin", "component.counter.variables")
        .insert(ALLOWED_HOSTS_VARIABLE.into(), Value::Integer(1));
    assert_found(
        &workspace.problems(),
        &[
            "[component.counter]",
            "is Integer(1), which does not mirror",
        ],
    );
}

#[test]
fn allowed_hosts_mirror_compares_entries_in_order() {
    let hosts: Vec<Value> = vec!["{{ a_host }}".into(), "https://b.example".into()];
    let check =
        |mirror: Option<&str>| allowed_hosts_mirror("c", &hosts, mirror.map(Value::from).as_ref());
    assert_eq!(check(Some("{{ a_host }},https://b.example")), None);
    assert_eq!(check(Some("{{ a_host }} , https://b.example ")), None);
    assert!(check(Some("https://b.example,{{ a_host }}")).is_some());
    assert!(check(Some("{{ a_host }}")).is_some());
    assert!(check(Some("")).is_some());
    assert!(
        check(None)
            .unwrap()
            .contains("no variables.allowed_outbound_hosts")
    );
    assert_eq!(allowed_hosts_mirror("c", &[], None), None);
    assert_eq!(allowed_hosts_mirror("c", &[], Some(&Value::from(""))), None);
    assert!(allowed_hosts_mirror("c", &[], Some(&Value::from("https://x.example"))).is_some());
}

/// The gateway's Spin build in the wasmtime host, resolved from the
/// workspace's spin.toml as `cargo xtask dev` resolves it (the dev values
/// of the secrets, `overrides` on top), its guest logs captured.
fn gateway_from_spin_toml(
    overrides: &[(&str, &str)],
) -> (wasm_tests::host::App, wasm_tests::host::GuestLogs) {
    use wasm_tests::host::{App, AppConfig, GuestLogs, KvStore, manifest};
    let registry = Registry::load().unwrap();
    let mut values: std::collections::HashMap<String, String> = registry
        .dev
        .secrets
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
        .collect();
    for (name, value) in overrides {
        values.insert((*name).to_owned(), (*value).to_owned());
    }
    let components =
        manifest::load(&wasm_tests::workspace_root().join("spin.toml"), &values).unwrap();
    let gateway = components.into_iter().find(|c| c.id == "gateway").unwrap();
    let logs = GuestLogs::new(1 << 20);
    let app = App::load(
        &gateway.source,
        AppConfig {
            variables: gateway.variables,
            kv: KvStore::new(),
            route: gateway.route,
            guest_stderr: Some(logs.clone()),
        },
    )
    .expect("the Spin build of the gateway (run `cargo xtask build`)")
    .with_allowed_outbound_hosts(gateway.allowed_outbound_hosts);
    (app, logs)
}

fn get_health(app: &wasm_tests::host::App) -> (u16, String) {
    let request = http::Request::get("http://127.0.0.1/gateway/health")
        .body(bytes::Bytes::new())
        .unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let response = runtime
        .block_on(app.handle(request, "127.0.0.1:4000".parse().unwrap()))
        .unwrap();
    (
        response.status().as_u16(),
        String::from_utf8_lossy(response.body()).into_owned(),
    )
}

#[test]
fn a_spin_gateway_route_origin_outside_the_allowed_hosts_fails_at_start() {
    // spin.toml's mirror, resolved by the host, reaches the guest: the
    // route origin outside gateway_origin_host (and the other two hosts)
    // makes /health answer the misconfigured problem, the log naming the
    // field, before any request would have been denied.
    let policy = r#"
        [gateway]
        routes = [
          { route = "/ok/**", origin = "http://127.0.0.1:9/v1" },
          { route = "/elsewhere/**", origin = "http://127.0.0.1:8443" },
        ]
    "#;
    let (app, logs) = gateway_from_spin_toml(&[
        ("gateway_policy", policy),
        ("gateway_origin_host", "http://127.0.0.1:9"),
    ]);
    let (status, body) = get_health(&app);
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("misconfigured"), "{body}");
    let logs = String::from_utf8_lossy(&logs.contents()).into_owned();
    assert!(
        logs.contains(
            "gateway.routes[1].origin: http://127.0.0.1:8443 is not in this component's \
             allowed_outbound_hosts (http://127.0.0.1:9, https://auth.example.com, \
             https://alerts.example.com); add it to spin.toml"
        ),
        "{logs}"
    );

    // The same policy with the origin's host allowed starts.
    let (app, _) = gateway_from_spin_toml(&[
        ("gateway_policy", policy),
        ("gateway_origin_host", "http://127.0.0.1:*"),
    ]);
    let (status, body) = get_health(&app);
    assert_eq!(status, 200, "{body}");
}
