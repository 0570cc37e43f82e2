//! `decode_claiming`: a claimer that vouches truthfully for the container changes nothing but
//! the tape; a claim that cannot be right is ignored; limits are counted the same way.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod common;

use proptest::prelude::*;
use tessera_bencode::{ClaimLimits, Claimed, DecodeOptions, ErrorKind, Kind, Value, ValueRef};

const PATH: &[&[u8]] = &[b"info", b"files"];

/// Values in `v`, itself and dictionary keys included.
fn values(v: ValueRef<'_, '_>) -> usize {
    match v.kind() {
        Kind::Int | Kind::Bytes => 1,
        Kind::List => 1 + v.as_list().unwrap().iter().map(values).sum::<usize>(),
        Kind::Dict => {
            1 + v
                .as_dict()
                .unwrap()
                .iter()
                .map(|(_, x)| 1 + values(x))
                .sum::<usize>()
        }
    }
}

/// What an honest claimer says about the container at `start`, from a full strict decode.
fn truth(input: &[u8], start: usize) -> Option<Claimed> {
    let doc = DecodeOptions::strict().decode(input).ok()?;
    let c = common::files_value(&doc)?;
    if c.span().start != start {
        return None;
    }
    let elements = match c.kind() {
        Kind::List => c.as_list()?.len(),
        Kind::Dict => c.as_dict()?.len(),
        _ => return None,
    };
    Some(Claimed {
        end: c.span().end,
        elements,
        values: values(c),
    })
}

/// Decodes with `claim` and compares with `decode_folded`: same verdict, same values, the
/// container folded when the claim was taken.
fn agree_with(
    input: &[u8],
    opts: DecodeOptions,
    claim: &mut dyn FnMut(usize, ClaimLimits) -> Option<Claimed>,
) -> Result<bool, TestCaseError> {
    let folded = opts.decode_folded(input, PATH);
    let mut calls = 0;
    let mut taken = None;
    let claimed = opts.decode_claiming(input, PATH, &mut |start, limits| {
        calls += 1;
        taken = claim(start, limits);
        taken
    });
    prop_assert!(calls <= 1);
    match (&folded, &claimed) {
        (Err(a), Err(b)) => prop_assert_eq!(a, b),
        (Ok(a), Ok(b)) => {
            prop_assert_eq!(a.root().to_owned(), b.root().to_owned());
            prop_assert_eq!(a.warnings(), b.warnings());
            if let (Some(ca), Some(cb)) = (common::files_value(a), common::files_value(b)) {
                prop_assert_eq!(ca.span(), cb.span());
                let was_taken = taken.is_some_and(|t| t.end == cb.span().end) && cb.is_folded();
                if was_taken {
                    let n = |v: ValueRef<'_, '_>| match v.kind() {
                        Kind::List => v.as_list().unwrap().len(),
                        _ => v.as_dict().unwrap().len(),
                    };
                    prop_assert_eq!(n(ca), n(cb));
                    prop_assert!(b.token_count() < a.token_count() || n(ca) == 0);
                }
                return Ok(was_taken);
            }
        }
        _ => prop_assert!(false, "{:?} vs {:?}", folded.err(), claimed.err()),
    }
    Ok(false)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn an_honest_claim_changes_nothing_but_the_tape(
        v in common::value(),
        choices in prop::collection::vec(any::<u8>(), 0..64),
        cut in any::<prop::sample::Index>(),
    ) {
        let input = common::sloppy_with_files(v, choices);
        for opts in [DecodeOptions::strict(), DecodeOptions::lenient()] {
            let honest = |i: &[u8]| {
                let i = i.to_vec();
                move |start: usize, limits: ClaimLimits| {
                    truth(&i, start).filter(|t| t.values <= limits.values)
                }
            };
            agree_with(&input, opts, &mut honest(&input))?;
            // The values of a claimed container count towards the limit.
            if let Ok(doc) = opts.decode(&input) {
                let limited = opts.with_max_tokens(doc.token_count() - 1);
                agree_with(&input, limited, &mut honest(&input))?;
            }
            let part = &input[..cut.index(input.len() + 1)];
            agree_with(part, opts, &mut honest(part))?;
            // Claims that cannot be right are ignored.
            agree_with(&input, opts, &mut |start, _| {
                Some(Claimed { end: input.len() + 1, elements: 0, values: 1 }).filter(|_| start > 0)
            })?;
            agree_with(&input, opts, &mut |start, _| {
                Some(Claimed { end: start + 1, elements: 0, values: 1 })
            })?;
            agree_with(&input, opts, &mut |start, limits| {
                truth(&input, start).map(|t| Claimed { values: limits.values + 1, ..t })
            })?;
            agree_with(&input, opts, &mut |start, _| {
                truth(&input, start).map(|t| Claimed { elements: t.values, ..t })
            })?;
        }
    }
}

#[test]
fn a_claim_is_taken_once_and_told_its_limits() {
    let input = b"d4:infod5:filesli1ei2eeee";
    let opts = DecodeOptions::strict()
        .with_max_depth(9)
        .with_max_tokens(40);
    let mut seen = Vec::new();
    let doc = opts
        .decode_claiming(input, PATH, &mut |start, limits| {
            seen.push((start, limits));
            truth(input, start)
        })
        .unwrap();
    // The root, `info` and its key are open or counted when the list is reached.
    assert_eq!(
        seen,
        [(
            15,
            ClaimLimits {
                values: 40 - 4,
                depth: 9 - 2
            }
        )]
    );
    let files = common::files_value(&doc).unwrap();
    assert!(files.is_folded());
    assert_eq!(files.raw(), b"li1ei2ee");
    assert_eq!(files.as_list().unwrap().len(), 2);
    assert_eq!(files.as_list().unwrap().iter().count(), 0);
    assert_eq!(
        files.to_owned(),
        Value::List(vec![Value::Int(1), Value::Int(2)])
    );

    // Repeated keys: only the first container is offered.
    let twice = b"d4:infod5:filesli1ee5:filesli2eeee";
    let mut calls = 0;
    let doc = DecodeOptions::lenient()
        .decode_claiming(twice, PATH, &mut |_, _| {
            calls += 1;
            None
        })
        .unwrap();
    assert_eq!(calls, 1);
    assert!(!doc.warnings().is_empty());

    // A truthful claim past the token limit is ignored, and the decoder finds the limit.
    let err = DecodeOptions::strict()
        .with_max_tokens(6)
        .decode_claiming(input, PATH, &mut |start, _| truth(input, start))
        .unwrap_err();
    assert!(
        matches!(err.kind, ErrorKind::TooManyTokens { .. }),
        "{err:?}"
    );
}
