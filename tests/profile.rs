//! The per-phase profile (src/profile.rs). Its totals are process-wide, so this test has a binary of its own: no
//! other test's forward pass can run while it is on.

mod common;

use destein::model::{Cache, LoadDtype};

/// The profile counts time per phase only while it is on.
#[test]
fn profile_times_the_phases_only_when_on() {
    use destein::profile;
    let model = common::model(LoadDtype::AsIs);
    let t =
        model.token_tensor(&[model.tokenizer.encode("My favourite recipe for a quick dinner is").unwrap()]).unwrap();
    profile::enable(true);
    model.forward_last(&t, &mut Cache::new(model), None).unwrap();
    profile::enable(false);
    let on = profile::totals_ms();
    let ms = |name: &str| on.iter().find(|(n, _)| n.starts_with(name)).unwrap().1;
    assert!(ms("layer matmuls") > 0.0 && ms("lm-head") > 0.0 && ms("attention") > 0.0, "{on:?}");
    assert_eq!(ms("steering hook"), 0.0, "no hook was given");
    model.forward_last(&t, &mut Cache::new(model), None).unwrap();
    assert_eq!(profile::totals_ms(), on, "off: nothing is added");
}
