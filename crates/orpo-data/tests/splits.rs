//! Splits made in memory: a seeded held-out part (`test_size`) and concatenated datasets.

use orpo_data::{Content, PreferenceDataset, PreferenceExample};

fn dataset(tag: &str, n: usize) -> PreferenceDataset {
    let ex = (0..n)
        .map(|i| PreferenceExample {
            prompt: Content::Text(format!("{tag}{i}")),
            chosen: Content::Text("a".into()),
            rejected: Content::Text("b".into()),
        })
        .collect();
    PreferenceDataset::from_examples(ex, false)
}

fn prompts(d: &PreferenceDataset) -> Vec<String> {
    d.examples()
        .iter()
        .map(|e| match &e.prompt {
            Content::Text(t) => t.clone(),
            other => panic!("{other:?}"),
        })
        .collect()
}

#[test]
fn held_out_part_is_seeded_disjoint_and_in_order() {
    let d = dataset("p", 50);
    let (train, test) = d.train_test_split(10, 42).unwrap();
    assert_eq!((train.len(), test.len()), (40, 10));
    assert_eq!(test.split(), "test");
    let (tr, te) = (prompts(&train), prompts(&test));
    let mut all: Vec<String> = tr.iter().chain(&te).cloned().collect();
    all.sort();
    let mut want = prompts(&d);
    want.sort();
    assert_eq!(all, want, "every example in exactly one part");
    // file order kept inside each part
    let num = |s: &String| s[1..].parse::<usize>().unwrap();
    assert!(te.windows(2).all(|w| num(&w[0]) < num(&w[1])));
    assert!(tr.windows(2).all(|w| num(&w[0]) < num(&w[1])));
    // the seed picks the part; the same seed the same part
    let (_, again) = d.train_test_split(10, 42).unwrap();
    assert_eq!(prompts(&again), te);
    let (_, other) = d.train_test_split(10, 7).unwrap();
    assert_ne!(prompts(&other), te);
    // not simply the last rows
    assert_ne!(te, prompts(&d)[40..].to_vec());
    for bad in [0, 50, 51] {
        let err = d.train_test_split(bad, 42).unwrap_err().to_string();
        assert!(err.contains(&format!("{bad} examples")), "{err}");
    }
}

#[test]
fn concat_keeps_order_and_origins() {
    let d = PreferenceDataset::concat(vec![dataset("a", 3), dataset("b", 2)], "train");
    assert_eq!(prompts(&d), ["a0", "a1", "a2", "b0", "b1"]);
    assert_eq!(d.load_report().rows_kept, 5);
    assert_eq!(d.origin(4).row, 1);
    let s = d.select(&[4, 0], "x");
    assert_eq!(prompts(&s), ["b1", "a0"]);
    assert_eq!(s.split(), "x");
}
