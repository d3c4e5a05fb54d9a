//! Spec property 15: NanoClaw isolation enforcement.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeSet;

use nova_hypercore_nanoclaw::NanoClawScope;
use nova_hypercore_serialization::{ErrorCode, LogName};
use nova_hypercore_testkit::{CaseCounter, property_config};
use proptest::collection::{btree_set, vec};
use proptest::prelude::*;
use proptest::sample::select;

/// Valid log names, short enough that a suffix or prefix keeps them valid.
fn log_name() -> impl Strategy<Value = String> {
    "[a-z0-9][a-z0-9-]{0,20}"
}

/// Lookalikes of `a`, `e`, `o`, `-`, `1` (Cyrillic, Greek, hyphen, full-width, superscript).
const LOOKALIKES: [char; 6] = ['а', 'е', 'о', '‐', 'ο', '１'];

/// Names that differ from `allowed` only by case, a suffix, a prefix, a path trick or a
/// lookalike character.
fn near_misses(allowed: &str, affix: &str, lookalike: char) -> Vec<String> {
    let mut upper = allowed.to_owned();
    if let Some(i) = upper.find(|c: char| c.is_ascii_lowercase()) {
        upper.replace_range(i..=i, &upper[i..=i].to_ascii_uppercase());
    } else {
        upper.push('A');
    }
    let mut look = allowed.to_owned();
    match look.find(['a', 'e', 'o', '-', '1']) {
        Some(i) => look.replace_range(i..=i, &lookalike.to_string()),
        None => look.insert(look.len() / 2, lookalike),
    }
    vec![
        upper,
        allowed.to_uppercase(),
        format!("{allowed}{affix}"),
        format!("{affix}{allowed}"),
        format!("../{allowed}"),
        format!("{allowed}/.."),
        format!("{allowed}%2f"),
        format!("{allowed}/x"),
        format!("./{allowed}"),
        format!(" {allowed}"),
        format!("{allowed}\0"),
        look,
    ]
}

/// The spec's sentence as a model: a name is allowed iff it is a valid log name equal to
/// an allowed name or starting with an allowed prefix, and not denied.
fn model_allows(
    name: &str,
    exact: &BTreeSet<String>,
    prefixes: &[String],
    denied: &BTreeSet<String>,
) -> bool {
    LogName::parse(name).is_ok()
        && !denied.contains(name)
        && (exact.contains(name) || prefixes.iter().any(|p| name.starts_with(p.as_str())))
}

/// Feature: p2p-hypercore-protocol, Property 15: NanoClaw isolation enforcement
#[test]
fn property_15_nanoclaw_isolation_enforcement() {
    let cases = CaseCounter::new(15);
    proptest!(property_config(), |(
        exact in btree_set(log_name(), 0..6),
        prefixes in vec("[a-z0-9][a-z0-9-]{0,6}", 0..3),
        deny_pick in vec(any::<prop::sample::Index>(), 0..2),
        others in vec(log_name(), 0..10),
        affix in "[a-z0-9-]{1,4}",
        lookalike in select(LOOKALIKES.to_vec()),
        caller in "[a-z]{1,8}",
    )| {
        cases.hit();
        let exact_list: Vec<String> = exact.iter().cloned().collect();
        let denied: BTreeSet<String> = if exact_list.is_empty() {
            BTreeSet::new()
        } else {
            deny_pick.iter().map(|i| i.get(&exact_list).clone()).collect()
        };
        let patterns: Vec<String> = exact_list
            .iter()
            .cloned()
            .chain(prefixes.iter().map(|p| format!("{p}*")))
            .collect();
        let scope = NanoClawScope::new(caller.clone(), &patterns)
            .unwrap()
            .with_denied(&denied)
            .unwrap();
        let empty = NanoClawScope::new(caller.clone(), Vec::<String>::new()).unwrap();

        let mut names: Vec<String> = others.clone();
        for allowed in exact_list.iter().chain(prefixes.iter()) {
            names.push(allowed.clone());
            names.extend(near_misses(allowed, &affix, lookalike));
        }
        for p in &prefixes {
            names.push(format!("{p}{affix}"));
        }

        let (mut granted, mut refused) = (0, 0);
        for name in &names {
            let expected = model_allows(name, &exact, &prefixes, &denied);
            let got = scope.check_name(name);
            let from_empty = empty.check_name(name);
            prop_assert_eq!(from_empty.as_ref().map_err(|e| e.code()).err(), Some(ErrorCode::Unauthorized));
            match got {
                Ok(log) => {
                    prop_assert!(expected, "{name:?} was allowed by {patterns:?} minus {denied:?}");
                    prop_assert_eq!(log.as_str(), name.as_str());
                    granted += 1;
                }
                Err(e) => {
                    prop_assert!(!expected, "{name:?} was refused by {patterns:?}: {e}");
                    prop_assert_eq!(e.code(), ErrorCode::Unauthorized);
                    prop_assert!(e.log_name().is_some());
                    if let Ok(log) = LogName::parse(name) {
                        // A valid name refused by the scope: the error names log and caller.
                        prop_assert_eq!(e.log_name(), Some(log.as_str()));
                        let caller_quoted = format!("{caller:?}");
                        prop_assert!(e.to_string().contains(&caller_quoted), "{}", e);
                    }
                    refused += 1;
                }
            }
        }
        // Every allowed entry (not denied) is granted; every near miss of an exact name
        // is refused unless a prefix pattern covers it.
        for e in &exact {
            prop_assert_eq!(scope.check_name(e).is_ok(), !denied.contains(e));
            for miss in near_misses(e, &affix, lookalike) {
                if !prefixes.iter().any(|p| miss.starts_with(p.as_str())) && !exact.contains(&miss) {
                    prop_assert!(scope.check_name(&miss).is_err(), "{miss:?} near {e:?}");
                }
            }
        }
        prop_assert_eq!(granted + refused, names.len());
    });
}
