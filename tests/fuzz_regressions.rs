//! Replays the fuzz corpus the repository keeps (fuzz/regressions/TARGET/: every finding of scripts/fuzz.sh once
//! fixed, plus a minimised corpus from its runs) through the same entry points as the fuzz targets: each input must
//! end in a value or an error, never a panic. Long fuzzing is scripts/fuzz.sh, not part of the tests.
use std::path::Path;

/// A fuzz target's entry point: takes any bytes.
type Target = fn(&[u8]);

#[test]
fn fuzz_regression_inputs_do_not_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    let targets: [(&str, Target); 4] = [
        ("gguf", destein::fuzz_entry::gguf),
        ("vectors", destein::fuzz_entry::vectors),
        ("jsonl", destein::fuzz_entry::jsonl),
        ("judges", destein::fuzz_entry::judges),
    ];
    let mut replayed = 0;
    for (name, run) in targets {
        let dir = root.join(name);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "{} holds no inputs", dir.display());
        for path in files {
            let data = std::fs::read(&path).unwrap();
            let outcome = std::panic::catch_unwind(|| run(&data));
            assert!(outcome.is_ok(), "{} panicked", path.display());
            replayed += 1;
        }
    }
    assert!(replayed >= 4);
}
