//! Phone numbers written in a national format, checked against the
//! numbering plans of every region in libphonenumber's metadata
//! ([`plans`](super::plans), generated).
//!
//! A region takes a national number when its digits — after the region's
//! trunk prefix where its national format writes one ("01 23 45 67 89" in
//! France), as they are where it does not ("(11) 2345-6789" in Brazil, the
//! NANP, Italy) — have a possible length of the region and match the
//! pattern of one of its number types (fixed line, mobile, toll free…), as
//! libphonenumber's `isValidNumber` checks them. The regions are all of
//! them: the detector does not know the text's locale.
//!
//! Each region's pattern is compiled the first time a number of a possible
//! length and with possible first two digits comes to it (a few hundred
//! microseconds each); the regions a number cannot belong to are ruled out
//! by those two checks without a regex.

use std::sync::{LazyLock, OnceLock};

use regex::bytes::{Regex, RegexBuilder};

use super::plans::{PLANS, Plan};

/// The compiled pattern of each plan, on first use (`None`: it failed to
/// compile, and the region takes no number).
static COMPILED: LazyLock<Vec<OnceLock<Option<Regex>>>> =
    LazyLock::new(|| PLANS.iter().map(|_| OnceLock::new()).collect());

fn pattern(i: usize) -> Option<&'static Regex> {
    COMPILED
        .get(i)?
        .get_or_init(|| {
            RegexBuilder::new(&format!("^(?:{})$", PLANS[i].pattern))
                .unicode(false)
                .build()
                .ok()
        })
        .as_ref()
}

/// Whether `nsn` (ASCII digits) is a valid national significant number of
/// plan `i`.
fn valid_in(i: usize, plan: &Plan, nsn: &[u8]) -> bool {
    let n = nsn.len();
    if !(2..32).contains(&n) || plan.lengths & (1 << n) == 0 {
        return false;
    }
    let first = u32::from(nsn[0] - b'0') * 10 + u32::from(nsn[1] - b'0');
    plan.first_two & (1 << first) != 0 && pattern(i).is_some_and(|r| r.is_match(nsn))
}

/// Whether `digits` (ASCII digits, as written without separators and
/// without an international prefix) is a valid number of some region in
/// its national format.
pub(super) fn national(digits: &[u8]) -> bool {
    PLANS.iter().enumerate().any(|(i, plan)| {
        let trunk = plan.trunk.as_bytes();
        let with_trunk = !trunk.is_empty()
            && digits.starts_with(trunk)
            && valid_in(i, plan, &digits[trunk.len()..]);
        with_trunk || !plan.trunk_written && valid_in(i, plan, digits)
    })
}

/// The index of a region's plan (ISO 3166 alpha-2, either case).
pub(super) fn region_index(region: &str) -> Option<u16> {
    PLANS
        .iter()
        .position(|p| p.region.eq_ignore_ascii_case(region))
        .and_then(|i| u16::try_from(i).ok())
}

/// Whether `digits` is a valid number, in its national format, of one of
/// the plans `regions` (indexes from [`region_index`]).
pub(super) fn national_in(digits: &[u8], regions: &[u16]) -> bool {
    regions.iter().any(|&r| {
        let i = usize::from(r);
        PLANS.get(i).is_some_and(|plan| {
            let trunk = plan.trunk.as_bytes();
            !trunk.is_empty()
                && digits.starts_with(trunk)
                && valid_in(i, plan, &digits[trunk.len()..])
                || !plan.trunk_written && valid_in(i, plan, digits)
        })
    })
}

/// Whether `digits` (ASCII, after a `+`: country code and national
/// significant number) is a valid number of the region(s) of its country
/// code.
pub(super) fn international(digits: &[u8]) -> bool {
    (1..=3).any(|k| {
        let Some((cc, nsn)) = digits.split_at_checked(k) else {
            return false;
        };
        let cc = cc.iter().fold(0u16, |a, &c| a * 10 + u16::from(c - b'0'));
        PLANS
            .iter()
            .enumerate()
            .any(|(i, plan)| plan.country_code == cc && valid_in(i, plan, nsn))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pattern_compiles() {
        for (i, plan) in PLANS.iter().enumerate() {
            assert!(pattern(i).is_some(), "{}", plan.region);
        }
    }

    #[test]
    fn national_numbers() {
        for ok in [
            "6363923321",  // Brazil, area code 63, no trunk
            "11987654321", // Brazil mobile
            "3471234567",  // Italian mobile
            "061234567",   // Italian landline, 9 digits
            "2025550143",  // NANP
            "0123456789",  // France, trunk 0
            "0201234567",  // Netherlands
            "02079460958", // United Kingdom
            "609141777",   // Poland mobile
            "0312345678",  // Japan
        ] {
            assert!(national(ok.as_bytes()), "{ok}");
        }
        for no in ["1700000000", "0000000000", "1234", "999999999999999"] {
            assert!(!national(no.as_bytes()), "{no}");
        }
        let dk = [region_index("dk").unwrap()];
        assert!(national_in(b"66225448", &dk));
        assert!(!national_in(b"06622544", &dk));
        assert!(region_index("XX").is_none());
        assert!(international(b"468123188"));
        assert!(international(b"5511987654321"));
        assert!(!international(b"999123456"));
    }
}
