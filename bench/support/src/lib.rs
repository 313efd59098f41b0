//! What the benchmark programs (`bench/decisions`, `bench/auth`, built
//! natively and for `wasm32-wasip2`) and `cargo xtask bench` share: their
//! `main` (subcommand dispatch, errors on stderr), option pairs, and the
//! digit grouping of the tables they print. Plain std, so it builds for
//! every target.

use std::process::ExitCode;

/// Runs `dispatch` on the command-line arguments; an error is printed as
/// `program: error` and exits 1.
pub fn main(program: &str, dispatch: impl FnOnce(&[String]) -> Result<(), String>) -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match dispatch(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{program}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `--flag value` pairs, in order; a flag without a value is an error
/// that ends with `usage`.
pub fn option_pairs<'a>(
    args: &'a [String],
    usage: &str,
) -> Result<Vec<(&'a str, &'a str)>, String> {
    let mut pairs = Vec::new();
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{usage}"))?;
        pairs.push((flag.as_str(), value.as_str()));
    }
    Ok(pairs)
}

/// The options of a bench program's `run` subcommand.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOptions {
    /// `--runtime`: the label of the runtime in reports (`native`).
    pub runtime: String,
    /// `--rounds`: timed rounds per workload (5).
    pub rounds: u32,
    /// `--seconds`: the length of one round.
    pub seconds: f64,
    /// `--only`: the workloads to run (all).
    pub only: Option<Vec<String>>,
}

impl RunOptions {
    /// Parses `--runtime`, `--rounds`, `--seconds` (default `seconds`) and
    /// `--only A,B`; anything else is an error ending with `usage`.
    pub fn parse(args: &[String], usage: &str, seconds: f64) -> Result<RunOptions, String> {
        let mut options = RunOptions {
            runtime: "native".to_owned(),
            rounds: 5,
            seconds,
            only: None,
        };
        for (flag, value) in option_pairs(args, usage)? {
            match flag {
                "--runtime" => options.runtime = value.to_owned(),
                "--rounds" => options.rounds = parse(flag, value)?,
                "--seconds" => options.seconds = parse(flag, value)?,
                "--only" => options.only = Some(value.split(',').map(str::to_owned).collect()),
                _ => return Err(format!("unknown option {flag}\n{usage}")),
            }
        }
        Ok(options)
    }
}

/// Parses the value of `flag`, naming both in the error.
pub fn parse<T: std::str::FromStr>(flag: &str, value: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    value.parse().map_err(|e| format!("{flag} {value:?}: {e}"))
}

/// `12345678.9` → `12,345,679`.
pub fn thousands(v: f64) -> String {
    let digits = format!("{:.0}", v.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0.4), "0");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(1_000.0), "1,000");
        assert_eq!(thousands(12_345_678.9), "12,345,679");
    }

    #[test]
    fn options_come_in_pairs() {
        let args: Vec<String> = ["--a", "1", "--b", "x"].map(String::from).into();
        assert_eq!(
            option_pairs(&args, "u").unwrap(),
            vec![("--a", "1"), ("--b", "x")]
        );
        let odd: Vec<String> = ["--a"].map(String::from).into();
        assert!(option_pairs(&odd, "usage").unwrap_err().ends_with("usage"));
        assert_eq!(parse::<u32>("--n", "7"), Ok(7));
        assert!(
            parse::<u32>("--n", "x")
                .unwrap_err()
                .starts_with("--n \"x\"")
        );
    }
}
